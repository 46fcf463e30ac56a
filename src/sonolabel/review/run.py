"""``sonolabel drift``: signals, flags and a report for each video, stored in the project."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from ..tasks import map_videos
from ..store import LabelSource, Project
from .drift import DRIFT_KINDS, DriftConfig, detect_drift, project_flags
from .log import REVIEW_DIR, ReviewLog
from .report import write_report
from .consistency import consistency_signals, edge_signals
from .regions import locate
from .signals import label_signals, signal_table


@dataclass
class DriftReport:
    video: str
    flags: int
    trend: int
    outlier: int
    project: int
    report: Path
    consistency: int = 0


def _video_signals(video, cfg: DriftConfig) -> tuple:
    sig = signal_table(video, label_signals(video))
    keyframes = video.annotated_frames()
    if keyframes:
        sig = sig.merge(edge_signals(video), on="frame")
    if cfg.consistency and keyframes and len(keyframes) < video.n_frames:
        from ..propagation import PropagationConfig
        from ..propagation.modes import Engines

        engine, _, _ = Engines(video.project, PropagationConfig(device=cfg.device)).for_video(video)
        sig = sig.merge(consistency_signals(video, engine), on="frame")
    return sig, keyframes, str(video.attrs.get("subject")), video.n_frames


def run_drift(
    project: Project,
    videos: list[str] | None = None,
    model: str | Path | None = None,
    cfg: DriftConfig | None = None,
    progress: Callable[[str], None] | None = None,
    scheduler: str | None = None,
    workers: int | None = 1,
) -> list[DriftReport]:
    """Compute every video's signals (after predicting with ``model`` when given; with
    ``cfg.consistency``, re-reading every segment from its keyframes), flag drift, store the flags
    (review states of earlier actions are kept), and write ``review/<video>.png`` and ``.csv``."""
    project.require_writable()
    cfg = cfg or DriftConfig()
    ids = videos or [v for v in project.video_ids() if (project.video(v).sources() != LabelSource.NONE).any()]
    if model is not None:
        from ..unet.predict import predict_project

        predict_project(project, model, ids, scheduler=scheduler, workers=workers)
    log = ReviewLog(project)
    out_dir = Path(project.path) / REVIEW_DIR
    out_dir.mkdir(exist_ok=True)
    names = list(project.palette.names)
    per_video, summary = {}, {}
    computed = map_videos(project, _video_signals, ids, cfg, scheduler=scheduler, workers=workers, label="drift-signals")
    for vid, (sig, keyframes, subject, n_frames) in zip(ids, computed):
        if progress:
            progress(vid)
        labelled = sig["source"].astype(str) != "none"
        area = sig.loc[labelled, [f"area_{c}" for c in names]].to_numpy().mean(0) if labelled.any() else np.zeros(len(names))
        v = project.video(vid)
        flags = [locate(v, f, names) for f in detect_drift(vid, sig, keyframes, cfg, names, v.width)]  # each names its class and region
        per_video[vid] = (v, sig, flags)
        summary[vid] = {"subject": subject, "frames": n_frames, "area": area}
    cross = project_flags(summary, names, cfg) if len(ids) > 1 else []
    reports = []
    for vid, (v, sig, flags) in per_video.items():
        flags = sorted(flags + [locate(v, f, names) for f in cross if f["video"] == vid], key=lambda f: -f["severity"])
        log.set_flags(vid, flags, kinds=DRIFT_KINDS)
        tmp = out_dir / f".{vid}.csv.tmp"
        sig.to_csv(tmp, index=False, float_format="%.5g")
        tmp.replace(out_dir / f"{vid}.csv")
        png = write_report(out_dir / f"{vid}.png", vid, sig, flags, v.annotated_frames(), cfg, v.width)
        kinds = [f["kind"] for f in flags]
        reports.append(DriftReport(vid, len(flags), kinds.count("trend"), kinds.count("outlier"), kinds.count("project"), png, kinds.count("consistency")))
    return reports
