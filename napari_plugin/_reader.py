"""Reader contribution: opens a sonolabel project (its first video, or all videos as layers)."""

from __future__ import annotations

from pathlib import Path


def _is_project(path: Path) -> bool:
    try:
        import json

        return "sonolabel" in json.loads((path / "zarr.json").read_text()).get("attributes", {})
    except (OSError, ValueError):
        return False


def get_reader(path):
    if isinstance(path, list):
        path = path[0]
    path = Path(path)
    if not (path.is_dir() and _is_project(path)):
        return None
    return read_project


def read_project(path):
    from sonolabel.store import Project

    from ._layers import video_layers

    path = Path(path[0] if isinstance(path, list) else path)
    project = Project.open(path)
    ids = project.video_ids()
    return video_layers(project.video(ids[0])) if ids else []
