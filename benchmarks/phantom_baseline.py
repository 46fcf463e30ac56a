"""How hard the phantom is: mIoU of copying the nearest keyframe (keyframes every 200 frames).

Run: python benchmarks/phantom_baseline.py [--subjects 3] [--frames 1001]
Writes benchmarks/results/phantom_baseline.json; the dataset card quotes it.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from sonolabel.phantom import make_sequence
from sonolabel.phantom.render import PhantomRenderer


def miou(pred: np.ndarray, true: np.ndarray, n_classes: int = 8) -> float:
    """Mean IoU over the classes present in either map (background included)."""
    ious = []
    for c in range(n_classes):
        p, t = pred == c, true == c
        union = np.logical_or(p, t).sum()
        if union:
            ious.append(np.logical_and(p, t).sum() / union)
    return float(np.mean(ious))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--subjects", type=int, default=3)
    ap.add_argument("--frames", type=int, default=1001)
    ap.add_argument("--every", type=int, default=200)
    args = ap.parse_args()
    per_subject = []
    for s in range(args.subjects):
        r = PhantomRenderer(make_sequence(s, 1, args.frames))
        labels = np.stack([r.render(t)[1] for t in range(args.frames)])
        keys = np.arange(0, args.frames, args.every)
        scores = []
        for t in range(args.frames):
            k = keys[np.argmin(np.abs(keys - t))]
            if t != k:
                scores.append(miou(labels[k], labels[t]))
        per_subject.append({"subject_seed": s, "mean": float(np.mean(scores)), "worst": float(np.min(scores))})
        print(per_subject[-1])
    result = {
        "method": "copy nearest keyframe",
        "keyframe_every": args.every,
        "frames": args.frames,
        "mean_miou": float(np.mean([p["mean"] for p in per_subject])),
        "worst_frame_miou": float(np.min([p["worst"] for p in per_subject])),
        "subjects": per_subject,
    }
    (Path(__file__).parent / "results" / "phantom_baseline.json").write_text(json.dumps(result, indent=1))
    print(f"copy nearest keyframe: mean mIoU {result['mean_miou']:.3f}, worst frame {result['worst_frame_miou']:.3f}")


if __name__ == "__main__":
    main()
