"""Leave-one-keyframe-out check (`sonolabel check`) on phantom videos with ground truth on every frame.

For each seed: an 800-frame phantom video at 480x480 with keyframes every 200 frames (the users' spacing).

* **Estimate**: the check's estimated mIoU (the video read at twice the spacing) against the true mean
  mIoU of the video propagated with keyframes every 400 frames, and against the true quality of its
  labels at the 200-frame spacing.
* **Wrong keyframes**: one interior keyframe drawn wrong per trial, two trials per seed: two
  neighbouring classes swapped, or one structure shifted 10 px. A trial passes when that keyframe is
  flagged; flags on other keyframes are counted as false.

    python benchmarks/check.py [--seeds 1 2 3 4 5] [--frames 800]

Writes benchmarks/results/check.json.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np

from propagation import RESULTS, build_project, miou, render

EVERY = 200


def _damage(lab: np.ndarray, kind: str, cls: int) -> np.ndarray:
    from sonolabel.phantom.corrupt import nearest_neighbour_class

    out = lab.copy()
    if kind == "swap":  # with the touching muscle or bone, else the one whose centre is nearest
        other = nearest_neighbour_class(lab, cls)
        if other == 0:
            centres = {c: np.argwhere(lab == c).mean(0) for c in np.unique(lab) if c not in (0, cls)}
            other = min(centres, key=lambda c: np.hypot(*(centres[c] - np.argwhere(lab == cls).mean(0))))
        out[lab == cls], out[lab == other] = other, cls
    else:
        mask = lab == cls
        out[mask] = 0
        out[np.roll(mask, 10, axis=1)] = cls
    return out


def main() -> None:
    import torch

    from sonolabel.propagation import PropagationConfig, propagate_video
    from sonolabel.review.check import run_check

    ap = argparse.ArgumentParser()
    ap.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3, 4, 5])
    ap.add_argument("--frames", type=int, default=800)
    args = ap.parse_args()
    torch.set_num_threads(2)
    cfg = PropagationConfig(mode="free", device="cpu")
    rows, trials = [], []
    for i, seed in enumerate(args.seeds):
        out = list(render(seed, args.frames))
        frames, labels = np.stack([o[0] for o in out]), np.stack([o[1] for o in out])
        with tempfile.TemporaryDirectory() as tmp:
            p, v = build_project(Path(tmp) / "a.zarr", frames, labels, every=EVERY)
            t0 = time.perf_counter()
            (r,) = run_check(p, ["v"], cfg)
            check_s = time.perf_counter() - t0
            t0 = time.perf_counter()
            propagate_video(v, cfg)
            propagate_s = time.perf_counter() - t0
            true_d = float(np.mean([miou(v.labels(t), labels[t]) for t in range(args.frames)]))
            p2, v2 = build_project(Path(tmp) / "b.zarr", frames, labels, every=2 * EVERY)
            propagate_video(v2, cfg)
            true_2d = float(np.mean([miou(v2.labels(t), labels[t]) for t in range(args.frames)]))
            p2.close()
            row = {
                "seed": seed,
                "estimate": r.estimate_miou,
                "true_at_2x_spacing": true_2d,
                "true_at_spacing": true_d,
                "error": r.estimate_miou - true_2d,
                "clean_false_flags": len(r.flags),
                "clean_flag_reasons": [f["reason"] for f in r.flags],
                "check_seconds": check_s,
                "propagate_seconds": propagate_s,
            }
            rows.append(row)
            print(json.dumps(row), flush=True)
            interior = v.annotated_frames()[1:-1]
            for j, kind in enumerate(("swap", "shift")):
                key = interior[(i + j) % len(interior)]
                cls = 1 + (2 * i + j) % 7
                v.save_annotation(key, _damage(labels[key], kind, cls))
                (r,) = run_check(p, ["v"], cfg)
                flagged = [f["start"] for f in r.flags]
                trial = {
                    "seed": seed,
                    "kind": kind,
                    "class": p.palette.names[cls],
                    "keyframe": key,
                    "found": key in flagged,
                    "false_flags": len([k for k in flagged if k != key]),
                    "reason": [f["reason"] for f in r.flags],
                }
                trials.append(trial)
                print(json.dumps(trial), flush=True)
                v.save_annotation(key, labels[key])
            p.close()
    doc = {
        "frames": args.frames,
        "keyframe_every": EVERY,
        "seeds": args.seeds,
        "videos": rows,
        "trials": trials,
        "max_estimate_error": float(np.max(np.abs([r["error"] for r in rows]))),
        "found": f"{sum(t['found'] for t in trials)}/{len(trials)}",
        "false_flags": int(sum(t["false_flags"] for t in trials) + sum(r["clean_false_flags"] for r in rows)),
        "check_over_propagate_seconds": float(np.mean([r["check_seconds"] / r["propagate_seconds"] for r in rows])),
    }
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "check.json").write_text(json.dumps(doc, indent=1))
    print(json.dumps({k: v for k, v in doc.items() if k not in ("videos", "trials")}))


if __name__ == "__main__":
    main()
