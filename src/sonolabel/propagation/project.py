"""Propagate many videos: in this process (one engine for all of them), or as dask tasks (one video each)
on a local or remote cluster."""

from __future__ import annotations

from pathlib import Path

from ..errors import InputError
from ..store import Project, Video
from ..tasks import map_videos
from .config import PropagationConfig
from .engine import Engine
from .propagate import PropagationReport, propagate_video
from .weights import load_engine, load_weights, model_path, resolve_mode


def _run(video: Video, engine: Engine, model_id: str, progress: bool) -> PropagationReport:
    from tqdm import tqdm

    with tqdm(total=video.n_frames - len(video.annotated_frames()), desc=f"propagate {video.id}", unit="frame", disable=not progress) as bar:
        return propagate_video(video, engine.config, engine=engine, model_id=model_id, progress=bar.update)


def _propagate_one(video: Video, config: dict, weights: str | None, progress: bool) -> PropagationReport:
    engine, model_id = load_engine(video.project, PropagationConfig.from_dict(config), weights)
    return _run(video, engine, model_id, progress)


def propagate_project(
    project: Project,
    video_ids: list[str] | None = None,
    config: PropagationConfig | None = None,
    weights: str | Path | None = None,
    scheduler: str | None = None,
    workers: int | None = 1,
    progress: bool = True,
) -> list[PropagationReport]:
    """Propagate the given videos (default: every video with keyframes) of a writable project.

    The mode is resolved once (``auto``: learned when trained). ``workers`` > 1 or a ``scheduler``
    address spreads the videos over dask workers (each loads the engine); labels are the same."""
    project.require_writable()
    ids = list(video_ids) if video_ids else [v.id for v in project.videos() if v.annotated_frames()]
    if not ids:
        raise InputError("no video has keyframes", project.path, "annotate keyframes first")
    config = resolve_mode(project, config or PropagationConfig(), weights)
    parallel = scheduler is not None or (workers or 1) > 1
    if not parallel:
        engine, model_id = load_engine(project, config, weights)
        return [_run(project.video(v), engine, model_id, progress) for v in ids]
    if config.mode == "learned":  # a bad weights file fails here, once, not in every task
        load_weights(Path(weights) if weights else model_path(project), len(project.palette))
    return map_videos(
        project, _propagate_one, ids, config.to_dict(), str(weights) if weights else None, False, scheduler=scheduler, workers=workers, label="propagate"
    )
