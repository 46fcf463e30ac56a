"""Propagate many videos: in this process, or as dask tasks (one video each) on a local or remote cluster."""

from __future__ import annotations

from pathlib import Path

from ..tasks import map_videos
from ..errors import InputError
from ..store import Project, Video
from .config import PropagationConfig
from .weights import load_engine
from .propagate import PropagationReport, propagate_video


def _propagate_one(video: Video, config: dict, explicit_mode: bool, weights: str | None, progress: bool) -> PropagationReport:
    from tqdm import tqdm

    cfg = PropagationConfig.from_dict(config)
    engine, model_id = load_engine(video.project, cfg, explicit_mode=explicit_mode, weights=weights)
    with tqdm(total=video.n_frames - len(video.annotated_frames()), desc=f"propagate {video.id}", unit="frame",
              disable=not progress) as bar:
        return propagate_video(video, engine.config, engine=engine, model_id=model_id, progress=bar.update)


def propagate_project(project: Project, video_ids: list[str] | None = None, config: PropagationConfig | None = None,
                      explicit_mode: bool = False, weights: str | Path | None = None, scheduler: str | None = None,
                      workers: int | None = 1, progress: bool = True) -> list[PropagationReport]:
    """Propagate the given videos (default: every video with keyframes) of a writable project.
    ``workers`` > 1 or a ``scheduler`` address spreads the videos over dask workers; labels are the same."""
    project.require_writable()
    config = config or PropagationConfig()
    ids = list(video_ids) if video_ids else [v.id for v in project.videos() if v.annotated_frames()]
    if not ids:
        raise InputError("no video has keyframes", project.path, "annotate keyframes first")
    load_engine(project, PropagationConfig.from_dict(config.to_dict()), explicit_mode, weights)  # fail early, here
    parallel = scheduler is not None or (workers or 1) > 1
    return map_videos(project, _propagate_one, ids, config.to_dict(), explicit_mode, str(weights) if weights else None,
                      progress and not parallel, scheduler=scheduler, workers=workers, label="propagate")
