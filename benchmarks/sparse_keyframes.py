"""Keyframes every 400 frames: what the working size buys, training-free, on phantom subjects.

    python benchmarks/sparse_keyframes.py [--seeds 0 1 2] [--frames 801] [--every 400] [--sizes 240 360 480] [--threads 2]

For each seed: a 480x480 phantom video (``propagation.render``), keyframes from the ground truth every
``--every`` frames, propagated training-free at each working size (``PropagationConfig.working_size``:
frames are resized to it before keys are computed, so 480 matches keys every 4 store pixels instead of
every 8). Reported per seed and size: mean and worst-frame mIoU over the frames between keyframes, per
class IoU, and the seconds propagation took (``--threads`` torch threads). Target (issue: half the
keyframes): mean >= 0.95 and worst >= 0.85 on every subject.

Writes benchmarks/results/sparse_keyframes.json.
"""

from __future__ import annotations

import argparse
import json
import platform
import tempfile
import time
from pathlib import Path

import numpy as np

from propagation import RESULTS, build_project, render


def main() -> None:
    import torch

    from sonolabel.propagation import PropagationConfig, propagate_video
    from sonolabel.propagation.loko import class_ious
    from sonolabel.propagation.modes import Engines

    ap = argparse.ArgumentParser()
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--frames", type=int, default=801)
    ap.add_argument("--every", type=int, default=400)
    ap.add_argument("--sizes", type=int, nargs="+", default=[240, 360, 480])
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    path = RESULTS / "sparse_keyframes.json"
    old = json.loads(path.read_text()) if path.exists() else {}
    rows = {(r["seed"], r["working_size"]): r for r in old.get("runs", []) if old.get("frames") == args.frames and old.get("every") == args.every}
    for seed in args.seeds:
        out = list(render(seed, args.frames))
        frames, truth = np.stack([o[0] for o in out]), np.stack([o[1] for o in out])
        inner = [t for t in range(args.frames) if t % args.every]
        for size in args.sizes:
            with tempfile.TemporaryDirectory() as tmp:
                p, v = build_project(Path(tmp) / "p.zarr", frames, truth, every=args.every)
                engine, model_id, _ = Engines(p, PropagationConfig(mode="free", working_size=size, device="cpu")).for_video(v)
                t0 = time.perf_counter()
                propagate_video(v, engine.config, engine, model_id)
                seconds = time.perf_counter() - t0
                ious = np.array([class_ious(v.labels(t), truth[t], 8) for t in inner])
                p.close()
            mious = np.nanmean(ious, 1)
            row = {
                "seed": seed,
                "working_size": size,
                "mean": float(mious.mean()),
                "worst": float(mious.min()),
                "class_iou": [round(float(x), 4) for x in np.nanmean(ious, 0)],
                "seconds": round(seconds, 1),
            }
            rows[seed, size] = row
            print(json.dumps(row), flush=True)
            doc = {
                "machine": f"{platform.machine()}, {args.threads} torch threads",
                "frames": args.frames,
                "every": args.every,
                "runs": sorted(rows.values(), key=lambda r: (r["seed"], r["working_size"])),
            }
            RESULTS.mkdir(exist_ok=True)
            path.write_text(json.dumps(doc, indent=1))


if __name__ == "__main__":
    main()
