"""Reader contribution: a sonolabel project opens its first video; a video file or frame folder opens
its (cropped) frames and offers to import them into a project."""

from __future__ import annotations

import json
from pathlib import Path

from sonolabel.io.sources import IMAGE_SUFFIXES, VIDEO_SUFFIXES


def _is_project(path: Path) -> bool:
    try:
        return "sonolabel" in json.loads((path / "zarr.json").read_text()).get("attributes", {})
    except (OSError, ValueError):
        return False


def _is_recording(path: Path) -> bool:
    if path.is_file():
        return path.suffix.lower() in VIDEO_SUFFIXES
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
    from sonolabel.store import Project

    from ._layers import video_layers

    path = Path(path[0] if isinstance(path, list) else path)
    project = Project.open(path)
    ids = project.video_ids()
    return video_layers(project.video(ids[0])) if ids else []


def read_recording(path):
    """Frames of a video or frame folder, cropped to the detected ultrasound box, not yet in a project."""
    import numpy as np
    from napari.utils.notifications import show_info

    from sonolabel.io import detect_box, open_source

    path = Path(path[0] if isinstance(path, list) else path)
    source = open_source(path)
    box = detect_box(source.sample())
    frames = np.stack([box.apply(f) for f in source.frames()])
    show_info(f"{path.name} is not in a project yet: import it with the sonolabel dock (Import recording) "
              f"or `sonolabel import PROJECT {path} --subject ID`")
    return [(frames, {"name": path.stem, "metadata": {"sonolabel_source": str(path), "crop": box.as_list()}}, "image")]
