"""How much of a finer working size a boundary-band refinement could keep: an upper bound, measured.

    python benchmarks/refine_bound.py [--seeds 0 1 2] [--frames 601] [--fine 480]

Each phantom recording (keyframes, the truth, every 200 frames) is propagated training-free at the
default working size (240) and at a finer one (480). The bound combines them: the default's labels,
with the finer pass's labels only where the default's stored margin (top minus runner-up probability,
``labels/margin``) is below a threshold. A refinement that re-reads only those pixels at the finer size
could at best reach the combined score; its cost would scale with the share of query blocks (6x6
cells of the finer grid) holding such a pixel, which the script reports too. Every third frame that
is not a keyframe is scored. Results: ``benchmarks/results/refine_bound.json`` (``refine_bound-<fine>.json``
for another finer size).
"""

from __future__ import annotations

import argparse
import json
import platform
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from propagation import build_project, miou, render

RESULTS = Path(__file__).parent / "results"
THRESHOLDS = (0.3, 0.5, 0.7, 0.9)
BLOCK = 6  # query cells per block side: propagation.readout.LocalMemory's default


def propagated(frames: np.ndarray, labels: np.ndarray, size: int, scored: list[int]) -> tuple[np.ndarray, np.ndarray, float]:
    """Labels and margins (in [0, 1], on the label grid) of the scored frames, and the seconds propagation took."""
    from sonolabel.propagation import PropagationConfig, propagate_video
    from sonolabel.store import layout

    with tempfile.TemporaryDirectory() as tmp:
        _, v = build_project(Path(tmp) / "p.zarr", frames, labels)
        t0 = time.perf_counter()
        propagate_video(v, PropagationConfig(mode="free", device="cpu", working_size=size))
        seconds = time.perf_counter() - t0
        return np.stack([v.labels(t) for t in scored]), v.margin[scored].astype(np.float32) / layout.MARGIN_SCALE, seconds


def scores(pred: np.ndarray, labels: np.ndarray, scored: list[int]) -> dict:
    s = np.array([miou(p, labels[t]) for p, t in zip(pred, scored)])
    return {"mean": float(s.mean()), "worst": float(s.min()), "below_095": float(np.mean(s < 0.95))}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--frames", type=int, default=601)
    ap.add_argument("--fine", type=int, default=480)
    args = ap.parse_args()
    from sonolabel.propagation import PropagationConfig
    from sonolabel.propagation.encoders import IntensityKeys

    default = PropagationConfig().working_size
    torch.set_num_threads(2)
    rows = []
    for seed in args.seeds:
        out = list(render(seed, args.frames))
        frames, labels = np.stack([o[0] for o in out]), np.stack([o[1] for o in out])
        scored = [t for t in range(0, args.frames, 3) if t % 200]
        coarse, margin, s_coarse = propagated(frames, labels, default, scored)
        fine, _, s_fine = propagated(frames, labels, args.fine, scored)
        f = labels.shape[1] // margin.shape[1]
        margin = margin.repeat(f, 1).repeat(f, 2)
        block = BLOCK * IntensityKeys.stride * labels.shape[1] // args.fine  # store pixels per query block of the finer pass
        row = {"seed": seed, str(default): {**scores(coarse, labels, scored), "seconds": s_coarse}}
        row[str(args.fine)] = {**scores(fine, labels, scored), "seconds": s_fine}
        for thr in THRESHOLDS:
            low = margin < thr
            nb = labels.shape[1] // block
            blocks = low[:, : nb * block, : nb * block].reshape(len(low), nb, block, nb, block).any(axis=(2, 4))
            row[f"margin_below_{thr}"] = {**scores(np.where(low, fine, coarse), labels, scored), "pixels": float(low.mean()), "blocks": float(blocks.mean())}
        rows.append(row)
        print(json.dumps(row), flush=True)
    RESULTS.mkdir(exist_ok=True)
    result = {"machine": {"cpu_threads": torch.get_num_threads(), "platform": platform.platform()}, "frames": args.frames, "fine": args.fine, "rows": rows}
    name = "refine_bound.json" if args.fine == 480 else f"refine_bound-{args.fine}.json"
    (RESULTS / name).write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
