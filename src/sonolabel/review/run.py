"""``sonolabel drift``: signals, flags and a report for each video, stored in the project."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from ..store import LabelSource, Project
from .drift import DriftConfig, detect_drift, project_flags
from .log import REVIEW_DIR, ReviewLog
from .report import write_report
from .signals import label_signals, signal_table


@dataclass
class DriftReport:
    video: str
    flags: int
    trend: int
    outlier: int
    project: int
    report: Path


def run_drift(project: Project, videos: list[str] | None = None, model: str | Path | None = None,
              cfg: DriftConfig | None = None, progress: Callable[[str], None] | None = None) -> list[DriftReport]:
    """Compute every video's signals (after predicting with ``model`` when given), flag drift, store
    the flags (review states of earlier actions are kept), and write ``review/<video>.png`` and ``.csv``."""
    project.require_writable()
    cfg = cfg or DriftConfig()
    ids = videos or [v for v in project.video_ids() if (project.video(v).sources() != LabelSource.NONE).any()]
    if model is not None:
        from ..trainers.predict import predict_project

        predict_project(project, model, ids)
    log = ReviewLog(project)
    out_dir = Path(project.path) / REVIEW_DIR
    out_dir.mkdir(exist_ok=True)
    names = list(project.palette.names)
    per_video, summary = {}, {}
    for vid in ids:
        if progress:
            progress(vid)
        v = project.video(vid)
        sig = signal_table(v, label_signals(v))
        labelled = sig["source"].astype(str) != "none"
        area = sig.loc[labelled, [f"area_{c}" for c in names]].to_numpy().mean(0) if labelled.any() else np.zeros(len(names))
        per_video[vid] = (v, sig, detect_drift(vid, sig, v.annotated_frames(), cfg))
        summary[vid] = {"subject": str(v.attrs.get("subject")), "frames": v.n_frames, "area": area}
    cross = project_flags(summary, names, cfg) if len(ids) > 1 else []
    reports = []
    for vid, (v, sig, flags) in per_video.items():
        flags = sorted(flags + [f for f in cross if f["video"] == vid], key=lambda f: -f["severity"])
        log.set_flags(vid, flags)
        tmp = out_dir / f".{vid}.csv.tmp"
        sig.to_csv(tmp, index=False, float_format="%.5g")
        tmp.replace(out_dir / f"{vid}.csv")
        png = write_report(out_dir / f"{vid}.png", vid, sig, flags, v.annotated_frames(), cfg)
        kinds = [f["kind"] for f in flags]
        reports.append(DriftReport(vid, len(flags), kinds.count("trend"), kinds.count("outlier"), kinds.count("project"), png))
    return reports
