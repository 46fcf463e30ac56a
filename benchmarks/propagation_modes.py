"""Does ``--mode auto`` keep the better mode? Phantom subjects with trained weights: the true mIoU of both
modes, the leave-one-keyframe-out scores auto compares, and the mode it chose.

For each seed: a 480x480 phantom video with keyframes every ``--every`` frames from the ground truth;
propagate training-free; train propagation on the project (``--minutes``); propagate with the trained
keys; then let auto choose. Target: auto never more than 0.005 mIoU below the better mode.
``--variant thin`` renders the thin-band phantom (FCR and FCU as bright bands 8-15 px thick,
``phantom.variants.thin_bands``) and also reports the bands' IoU, and the training-free mode with its
labels held on the key grid (as before thin classes got a finer label grid).

    python benchmarks/propagation_modes.py [--seeds 0 1] [--frames 1001] [--every 200] [--minutes 4] [--variant plain|thin] [--working-size 240]

Writes benchmarks/results/propagation_modes[_every400][_thin][_ws360].json.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np

from propagation import RESULTS, build_project, miou, render
from sonolabel.propagation.loko import class_ious


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
    ap.add_argument("--every", type=int, default=200)
    ap.add_argument("--variant", default="plain", choices=("plain", "thin"))
    ap.add_argument("--working-size", type=int, default=240, help="propagation's working size (training stays at 240)")
    args = ap.parse_args()
    torch.set_num_threads(2)
    rows = []
    for seed in args.seeds:
        frames, labels = _render(seed, args.frames, args.variant)
        keys = set(range(0, args.frames, args.every))
        row = {"seed": seed}
        with tempfile.TemporaryDirectory() as tmp:
            p, v = build_project(Path(tmp) / "p.zarr", frames, labels, every=args.every)
            modes = ("free_key_grid", "free", "learned") if args.variant == "thin" else ("free", "learned")
            for mode in modes:
                if mode == "learned":
                    t0 = time.perf_counter()
                    train_propagation(p, TrainConfig(minutes=args.minutes, seed=seed, device=args.device), log=lambda s: None)
                    row["train_minutes"] = (time.perf_counter() - t0) / 60
                propagate_video(v, *_engine(p, v, mode, args.device, args.working_size))
                scores = [miou(v.labels(t), labels[t]) for t in range(args.frames) if t not in keys]
                row[mode], row[f"{mode}_worst"] = float(np.mean(scores)), float(np.min(scores))
                if args.variant == "thin":
                    ious = np.array([class_ious(v.labels(t), labels[t], 8) for t in range(args.frames) if t not in keys])
                    row[f"{mode}_bands"] = [float(x) for x in np.nanmean(ious[:, [4, 5]], 0)]
            t0 = time.perf_counter()
            _, _, choice = Engines(p, PropagationConfig(device=args.device, working_size=args.working_size)).for_video(v)
            row["choice_seconds"] = time.perf_counter() - t0
            row["auto_mode"], row["auto_scores"], row["auto_reason"] = choice.mode, choice.scores, choice.reason
            row["auto"] = row[choice.mode]
            row["auto_minus_best"] = row["auto"] - max(row["free"], row["learned"])
            row["learned_minus_free"] = row["learned"] - row["free"]
            p.close()
        rows.append(row)
        print(json.dumps(row), flush=True)
    doc = {
        "frames": args.frames,
        "keyframe_every": args.every,
        "variant": args.variant,
        "train_minutes": args.minutes,
        "working_size": args.working_size,
        "device": args.device if args.device == "cpu" else torch.cuda.get_device_name(),
        "videos": rows,
        "worst_auto_minus_best": float(min(r["auto_minus_best"] for r in rows)),
    }
    RESULTS.mkdir(exist_ok=True)
    name = "propagation_modes" + ("" if args.every == 200 else f"_every{args.every}") + ("" if args.variant == "plain" else f"_{args.variant}")
    name += "" if args.working_size == 240 else f"_ws{args.working_size}"
    (RESULTS / (name + ("" if args.device == "cpu" else f"_{args.device}") + ".json")).write_text(json.dumps(doc, indent=1))
    print(json.dumps({k: v for k, v in doc.items() if k != "videos"}))


def _render(seed: int, n: int, variant: str) -> tuple[np.ndarray, np.ndarray]:
    if variant == "plain":
        out = list(render(seed, n))
    else:
        from sonolabel.phantom import make_sequence
        from sonolabel.phantom.render import PhantomRenderer
        from sonolabel.phantom.variants import thin_bands

        seq = make_sequence(seed, 1, n)
        thin_bands(seq, np.random.default_rng(seed))
        r = PhantomRenderer(seq)
        out = [r.render(t) for t in range(n)]
    return np.stack([o[0] for o in out]), np.stack([o[1] for o in out])


def _engine(project, video, mode: str, device: str, working_size: int = 240):
    from sonolabel.propagation import PropagationConfig
    from sonolabel.propagation.modes import Engines

    engine, model_id, _ = Engines(project, PropagationConfig(mode=mode.replace("_key_grid", ""), device=device, working_size=working_size)).for_video(video)
    if mode.endswith("_key_grid"):  # labels held on the key grid whatever the keyframes hold
        engine.label_scale = lambda masks: 1
    return engine.config, engine, model_id


if __name__ == "__main__":
    main()
