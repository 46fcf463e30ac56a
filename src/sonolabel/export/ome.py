"""OME-Zarr 0.5 metadata so the exported images and labels open in OME-Zarr tools (napari-ome-zarr)."""

from __future__ import annotations

from ..palette import Palette

VERSION = "0.5"


def image_metadata(name: str, spacing_mm: tuple[float, float] | None = None) -> dict:
    """``attributes.ome`` of a (t, y, x) image with one resolution level at path ``0``; with ``spacing_mm``
    (row, column) the y and x axes are in millimetres and the scale carries the pixel size."""
    space = {"type": "space", **({"unit": "millimeter"} if spacing_mm else {})}
    scale = [1.0, *(float(v) for v in spacing_mm)] if spacing_mm else [1.0, 1.0, 1.0]
    return {
        "version": VERSION,
        "multiscales": [
            {
                "name": name,
                "axes": [{"name": "t", "type": "time"}, {"name": "y", **space}, {"name": "x", **space}],
                "datasets": [{"path": "0", "coordinateTransformations": [{"type": "scale", "scale": scale}]}],
            }
        ],
    }


def labels_group_metadata(label_names: list[str]) -> dict:
    return {"version": VERSION, "labels": label_names}


def label_image_metadata(name: str, palette: Palette, spacing_mm: tuple[float, float] | None = None) -> dict:
    """``attributes.ome`` of a label image: multiscales plus ``image-label`` colours and class names."""
    meta = image_metadata(name, spacing_mm)
    meta["image-label"] = {
        "version": VERSION,
        "colors": [{"label-value": i, "rgba": [*palette.colors[i], 0 if i == 0 else 255]} for i in range(len(palette))],
        "properties": [{"label-value": i, "class": n} for i, n in enumerate(palette.names)],
        "source": {"image": "../../"},
    }
    return meta
