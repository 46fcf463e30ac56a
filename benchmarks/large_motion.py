"""Large motion: propagation with and without re-centring the search windows on coarse motion.

    python benchmarks/large_motion.py [--seeds 0 1 2] [--frames 601] [--every 200]

Phantom variants (``sonolabel.phantom.variants``), each rendered with a wide tissue margin:

* **slips**: the probe slips three times between two frames, 30-60 px each, mostly sideways;
* **sweep**: the view translates back and forth (up to 90 px) and rocks (up to 12 degrees), while
  FDS darts 60 px sideways within 6 frames and back, every 150 frames.

Keyframes every ``--every`` frames from the truth, propagated training-free at the default
settings with ``motion`` on and off; copying the nearest keyframe for reference. Per video: mean
and worst-frame mIoU over the propagated frames, and the frames below 0.85. Results go to
benchmarks/results/large_motion.json.
"""

from __future__ import annotations

import argparse
import json
import platform
import tempfile
import time
from pathlib import Path

import numpy as np

from propagation import build_project, miou

RESULTS = Path(__file__).parent / "results"


def render(variant: str, seed: int, n: int) -> tuple[np.ndarray, np.ndarray, list[int]]:
    from sonolabel.phantom import make_sequence
    from sonolabel.phantom.render import PhantomRenderer
    from sonolabel.phantom.variants import WIDE_MARGIN, fast_structure, probe_slips, sweep

    rng = np.random.default_rng(seed)
    seq = make_sequence(seed, 1, n)
    if variant == "slips":
        events = probe_slips(seq, rng)
    else:
        sweep(seq, rng)
        events = fast_structure(seq, rng)
    r = PhantomRenderer(seq, WIDE_MARGIN)
    out = [r.render(t) for t in range(n)]
    return np.stack([o[0] for o in out]), np.stack([o[1] for o in out]), events


def scores(pred: np.ndarray, truth: np.ndarray, keys: list[int]) -> dict:
    s = np.array([miou(pred[t], truth[t]) for t in range(len(truth)) if t not in keys])
    return {"mean": float(s.mean()), "worst": float(s.min()), "below_0.85": int((s < 0.85).sum())}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--frames", type=int, default=601)
    ap.add_argument("--every", type=int, default=200)
    args = ap.parse_args()

    import torch

    from sonolabel.propagation import PropagationConfig, propagate_video

    torch.set_num_threads(2)
    rows = []
    for variant in ("slips", "sweep"):
        for seed in args.seeds:
            frames, truth, events = render(variant, seed, args.frames)
            keys = list(range(0, args.frames, args.every))
            row = {"variant": variant, "seed": seed, "events": events}
            row["copy"] = scores(np.stack([truth[min(keys, key=lambda k: abs(k - t))] for t in range(args.frames)]), truth, keys)
            for motion in (False, True):
                with tempfile.TemporaryDirectory() as tmp:
                    p, v = build_project(Path(tmp) / "p.zarr", frames, truth, every=args.every)
                    t0 = time.perf_counter()
                    propagate_video(v, PropagationConfig(mode="free", device="cpu", motion=motion))
                    seconds = time.perf_counter() - t0
                    pred = np.stack([v.labels(t) for t in range(args.frames)])
                    p.close()
                row["motion" if motion else "no_motion"] = {**scores(pred, truth, keys), "seconds": seconds}
            rows.append(row)
            print(json.dumps(row), flush=True)
    table = {}
    for variant in ("slips", "sweep"):
        mine = [r for r in rows if r["variant"] == variant]
        table[variant] = {
            m: {
                "mean": float(np.mean([r[m]["mean"] for r in mine])),
                "worst": float(np.min([r[m]["worst"] for r in mine])),
                "below_0.85": int(sum(r[m]["below_0.85"] for r in mine)),
            }
            for m in ("copy", "no_motion", "motion")
        }
    machine = platform.processor() or platform.machine()
    doc = {"frames": args.frames, "keyframe_every": args.every, "seeds": args.seeds, "table": table, "runs": rows, "machine": machine}
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "large_motion.json").write_text(json.dumps(doc, indent=1))
    print(f"{'variant':8s} {'method':10s} {'mean':>6s} {'worst':>6s} {'<0.85':>6s}")
    for variant, t in table.items():
        for m, v in t.items():
            print(f"{variant:8s} {m:10s} {v['mean']:6.3f} {v['worst']:6.3f} {v['below_0.85']:6d}")


if __name__ == "__main__":
    main()
