"""Does ``--mode auto`` keep the better mode? Phantom subjects with trained weights: the true mIoU of both
modes, the leave-one-keyframe-out scores auto compares, and the mode it chose.

For each seed: a 480x480 phantom video with keyframes every 200 frames from the ground truth; propagate
training-free; train propagation on the project (``--minutes``); propagate with the trained keys; then
let auto choose. Target: auto never more than 0.005 mIoU below the better mode.

    python benchmarks/propagation_modes.py [--seeds 0 1] [--frames 1001] [--minutes 4]

Writes benchmarks/results/propagation_modes.json.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np

from propagation import RESULTS, build_project, miou, render


def main() -> None:
    import torch

    from sonolabel.propagation import PropagationConfig, propagate_video
    from sonolabel.propagation.modes import Engines
    from sonolabel.propagation.train import TrainConfig, train_propagation

    ap = argparse.ArgumentParser()
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    ap.add_argument("--frames", type=int, default=1001)
    ap.add_argument("--minutes", type=float, default=4.0)
    ap.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    args = ap.parse_args()
    torch.set_num_threads(2)
    rows = []
    for seed in args.seeds:
        out = list(render(seed, args.frames))
        frames, labels = np.stack([o[0] for o in out]), np.stack([o[1] for o in out])
        row = {"seed": seed}
        with tempfile.TemporaryDirectory() as tmp:
            p, v = build_project(Path(tmp) / "p.zarr", frames, labels)
            for mode in ("free", "learned"):
                if mode == "learned":
                    t0 = time.perf_counter()
                    train_propagation(p, TrainConfig(minutes=args.minutes, seed=seed, device=args.device), log=lambda s: None)
                    row["train_minutes"] = (time.perf_counter() - t0) / 60
                propagate_video(v, *_engine(p, v, mode, args.device))
                row[mode] = float(np.mean([miou(v.labels(t), labels[t]) for t in range(args.frames)]))
            t0 = time.perf_counter()
            _, _, choice = Engines(p, PropagationConfig(device=args.device)).for_video(v)
            row["choice_seconds"] = time.perf_counter() - t0
            row["auto_mode"], row["auto_scores"], row["auto_reason"] = choice.mode, choice.scores, choice.reason
            row["auto"] = row[choice.mode]
            row["auto_minus_best"] = row["auto"] - max(row["free"], row["learned"])
            p.close()
        rows.append(row)
        print(json.dumps(row), flush=True)
    doc = {
        "frames": args.frames,
        "keyframe_every": 200,
        "train_minutes": args.minutes,
        "device": args.device if args.device == "cpu" else torch.cuda.get_device_name(),
        "videos": rows,
        "worst_auto_minus_best": float(min(r["auto_minus_best"] for r in rows)),
    }
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / ("propagation_modes.json" if args.device == "cpu" else f"propagation_modes_{args.device}.json")).write_text(json.dumps(doc, indent=1))
    print(json.dumps({k: v for k, v in doc.items() if k != "videos"}))


def _engine(project, video, mode: str, device: str):
    from sonolabel.propagation import PropagationConfig
    from sonolabel.propagation.modes import Engines

    engine, model_id, _ = Engines(project, PropagationConfig(mode=mode, device=device)).for_video(video)
    return engine.config, engine, model_id


if __name__ == "__main__":
    main()
