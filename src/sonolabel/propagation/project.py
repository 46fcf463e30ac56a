"""Propagate many videos: in this process (one engine for all of them), or as dask tasks (one video each)
on a local or remote cluster."""

from __future__ import annotations

from pathlib import Path

from ..errors import InputError
from ..store import Project, Video
from ..tasks import map_videos
from .config import PropagationConfig
from .propagate import PropagationReport, propagate_video
from .modes import Engines
from .weights import load_weights, model_path, resolve_mode


def _run(video: Video, engines: Engines, progress: bool) -> PropagationReport:
    from tqdm import tqdm

    engine, model_id, choice = engines.for_video(video)
    with tqdm(total=video.n_frames - len(video.annotated_frames()), desc=f"propagate {video.id}", unit="frame", disable=not progress) as bar:
        report = propagate_video(video, engine.config, engine=engine, model_id=model_id, progress=bar.update)
    report.mode, report.choice = engine.config.mode, choice
    return report


def _propagate_one(video: Video, config: dict, weights: str | None, progress: bool) -> PropagationReport:
    return _run(video, Engines(video.project, PropagationConfig.from_dict(config), weights), progress)


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

    The engines are loaded once; ``auto`` with trained weights chooses each video's mode by
    leave-one-keyframe-out quality (:mod:`.modes`). ``workers`` > 1 or a ``scheduler`` address spreads
    the videos over dask workers (each loads the engines); labels are the same."""
    project.require_writable()
    ids = list(video_ids) if video_ids else [v.id for v in project.videos() if v.annotated_frames()]
    if not ids:
        raise InputError("no video has keyframes", project.path, "annotate keyframes first")
    config = config or PropagationConfig()
    parallel = scheduler is not None or (workers or 1) > 1
    if not parallel:
        engines = Engines(project, config, weights)
        return [_run(project.video(v), engines, progress) for v in ids]
    if resolve_mode(project, config, weights).mode == "learned":  # missing or bad weights fail here, once, not in every task
        load_weights(Path(weights) if weights else model_path(project), len(project.palette))
    return map_videos(
        project, _propagate_one, ids, config.to_dict(), str(weights) if weights else None, False, scheduler=scheduler, workers=workers, label="propagate"
    )
