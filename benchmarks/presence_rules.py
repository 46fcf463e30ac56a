"""The presence rules of drift, each switched off in turn, on leave-plane videos of seeds no rule was read off.

    python benchmarks/presence_rules.py [--seeds 14 15 16]

A muscle leaves the imaging plane between keyframes (``drift_scoring.render(seed, 600, "leave_plane")``,
keyframes every 100, the truth on every frame, propagated training-free). Every signal is computed
(``run_drift``), then the video is flagged with the present rules and again with the newer ones off:

* ``TRANSIT`` (``review.drift``): labels keep none of a structure while the image's reading still moves;
* ``GHOST``: any of it kept where the image shows the structure gone (a speck included; at 1 % before);
* ``PARTED`` (``review.consistency``): keyframes disagree on a structure below half its area (a quarter before).

Scored frame by frame as ``drift_scoring`` does (an error frame: mIoU < 0.85 or a class IoU < 0.7).
Results go to benchmarks/results/presence_rules.json (quoted in docs/review.md).
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np

from drift_scoring import RESULTS, covered, frame_errors, render, score
from propagation import build_project

VARIANTS = {  # name: rule settings switched off
    "every rule": {},
    "specks let through (GHOST at 1 %)": {"GHOST": 0.01},
    "specks let through, without TRANSIT": {"GHOST": 0.01, "TRANSIT": np.inf},
    "without TRANSIT and GHOST": {"TRANSIT": np.inf, "GHOST": np.inf},
    "without the three (PARTED at a quarter)": {"TRANSIT": np.inf, "GHOST": np.inf, "PARTED": 0.25},
}


def flagged_with(project, video: str, n: int, off: dict) -> np.ndarray:
    """Frames flagged by every signal with the rules in ``off`` set as given (restored afterwards)."""
    import sonolabel.review.consistency as consistency
    import sonolabel.review.drift as drift
    from sonolabel.review import DriftConfig, ReviewLog, run_drift

    owners = {"TRANSIT": drift, "GHOST": drift, "PARTED": consistency}
    kept = {k: getattr(owners[k], k) for k in off}
    try:
        for k, value in off.items():
            setattr(owners[k], k, value)
        run_drift(project, [video], cfg=DriftConfig(device="cpu"))
        return covered(ReviewLog(project).flags(video), n)
    finally:
        for k, value in kept.items():
            setattr(owners[k], k, value)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seeds", type=int, nargs="+", default=[14, 15, 16])
    ap.add_argument("--frames", type=int, default=600)
    ap.add_argument("--every", type=int, default=100)
    args = ap.parse_args()
    from sonolabel.propagation import propagate_video

    t0, rows = time.perf_counter(), []
    with tempfile.TemporaryDirectory() as tmp:
        for seed in args.seeds:
            frames, truth = render(seed, args.frames, "leave_plane")
            keys = list(range(0, args.frames, args.every))
            project, video = build_project(Path(tmp) / f"{seed}.zarr", frames, truth, every=args.frames + 1)
            for k in keys:
                video.save_annotation(k, truth[k])
            propagate_video(video)
            final = np.where(np.isin(np.arange(args.frames), keys)[:, None, None], truth, np.asarray(video.propagated[:]))
            bad = frame_errors(final, truth)
            for name, off in VARIANTS.items():
                flagged = flagged_with(project, video.id, args.frames, off)
                rows.append({"seed": seed, "rules": name, **score(bad, flagged), "hit": int((bad & flagged).sum())})
                print(json.dumps(rows[-1]), flush=True)
            project.close()
    pooled = {}
    for name in VARIANTS:
        mine = [r for r in rows if r["rules"] == name]
        errors, flagged, hit = (sum(r[k] for r in mine) for k in ("error_frames", "flagged_frames", "hit"))
        pooled[name] = {"error_frames": errors, "flagged_frames": flagged, "recall": hit / max(errors, 1), "precision": hit / max(flagged, 1)}
    seconds = round(time.perf_counter() - t0, 1)
    out = {"seeds": args.seeds, "frames": args.frames, "keyframe_every": args.every, "rows": rows, "pooled": pooled, "seconds": seconds}
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "presence_rules.json").write_text(json.dumps(out, indent=1))
    print(json.dumps(pooled, indent=1))


if __name__ == "__main__":
    main()
