"""Reader contribution: a sonolabel project opens its first video; a video file, frame folder, DICOM file
or TIFF stack opens its (cropped) frames and offers to import them into a project."""

from __future__ import annotations

import json
from pathlib import Path

from sonolabel.io.sources import DICOM_SUFFIXES, IMAGE_SUFFIXES, TIFF_SUFFIXES, VIDEO_SUFFIXES


def _is_project(path: Path) -> bool:
    try:
        return "sonolabel" in json.loads((path / "zarr.json").read_text()).get("attributes", {})
    except (OSError, ValueError):
        return False


def _is_stack(path: Path) -> bool:
    """A multi-page TIFF (a single page is an ordinary image, left to napari's own reader)."""
    import tifffile

    try:
        with tifffile.TiffFile(str(path)) as tif:
            shape, axes = tif.series[0].shape, tif.series[0].axes
            colour = axes[-1] == "S" and shape[-1] in (3, 4)
            return len(shape) >= (4 if colour else 3) and shape[0] > 1
    except Exception:  # not a TIFF we can read: not ours
        return False


def _is_recording(path: Path) -> bool:
    from sonolabel.io.dicom import is_dicom

    if path.is_file():
        suffix = path.suffix.lower()
        if suffix in TIFF_SUFFIXES:
            return _is_stack(path)
        return suffix in VIDEO_SUFFIXES or suffix in DICOM_SUFFIXES or is_dicom(path)
    return path.is_dir() and any(p.suffix.lower() in IMAGE_SUFFIXES for p in path.iterdir())


def get_reader(path):
    if isinstance(path, list):
        path = path[0]
    path = Path(path)
    if path.is_dir() and _is_project(path):
        return read_project
    if _is_recording(path):
        return read_recording
    return None


def read_project(path):
    """Open the project in the viewer's session (for every sonolabel dock, for writing) and show its first
    video there; without a viewer (or when another viewer holds the project), read-only layers."""
    import napari

    from sonolabel.store import Project

    from ._layers import video_layers
    from ._session import session_for

    path = Path(path[0] if isinstance(path, list) else path)
    viewer = napari.current_viewer()
    if viewer is not None:
        session = session_for(viewer)
        if session.open(path) is not None:
            ids = session.project.video_ids()
            if ids:
                session.show(ids[0])
            return [(None,)]  # the session added the layers
    project = Project.open(path)
    ids = project.video_ids()
    return video_layers(project.video(ids[0])) if ids else []


def read_recording(path):
    """Frames of a video or frame folder, cropped to the detected ultrasound box, not yet in a project."""
    import numpy as np
    from napari.utils.notifications import show_info

    from sonolabel.io import detect_box, open_source

    path = Path(path[0] if isinstance(path, list) else path)
    from sonolabel.io.region import Crop

    source = open_source(path)
    box = Crop(*source.region) if source.region is not None else detect_box(source.sample())
    frames = np.stack([box.apply(f) for f in source.frames()])
    show_info(f"{path.name} is not in a project yet: import it with the sonolabel dock (Import recording) or `sonolabel import PROJECT {path} --subject ID`")
    return [(frames, {"name": path.stem, "metadata": {"sonolabel_source": str(path), "crop": box.as_list()}}, "image")]
