"""OME-Zarr 0.5 metadata so the exported images and labels open in OME-Zarr tools (napari-ome-zarr)."""

from __future__ import annotations

from ..palette import Palette

VERSION = "0.5"


def image_metadata(name: str) -> dict:
    """``attributes.ome`` of a (t, y, x) image with one resolution level at path ``0``."""
    return {
        "version": VERSION,
        "multiscales": [{
            "name": name,
            "axes": [{"name": "t", "type": "time"}, {"name": "y", "type": "space"}, {"name": "x", "type": "space"}],
            "datasets": [{"path": "0", "coordinateTransformations": [{"type": "scale", "scale": [1.0, 1.0, 1.0]}]}],
        }],
    }


def labels_group_metadata(label_names: list[str]) -> dict:
    return {"version": VERSION, "labels": label_names}


def label_image_metadata(name: str, palette: Palette) -> dict:
    """``attributes.ome`` of a label image: multiscales plus ``image-label`` colours and class names."""
    meta = image_metadata(name)
    meta["image-label"] = {
        "version": VERSION,
        "colors": [{"label-value": i, "rgba": [*palette.colors[i], 0 if i == 0 else 255]} for i in range(len(palette))],
        "properties": [{"label-value": i, "class": n} for i, n in enumerate(palette.names)],
        "source": {"image": "../../"},
    }
    return meta
