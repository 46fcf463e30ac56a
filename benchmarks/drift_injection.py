"""Drift-flag validation: drift injected into real propagation output next to clean segments.

    python benchmarks/drift_injection.py [--subjects 3] [--frames 600] [--every 100] [--model CKPT]

Phantom videos get keyframes (ground truth) every ``--every`` frames and are propagated for real
(training-free keys); then every other stretch running away from a keyframe is corrupted, the
damage growing with the distance from the keyframe (a boundary sliding, a class bleeding into its
neighbour, a class vanishing; kinds and classes rotate). The rest stays as propagation left it.
A stretch counts as flagged when a flag has more than half of its frames inside it. Target: at
least 0.9 of injected stretches flagged, at most 0.1 of clean stretches. Results go to
benchmarks/results/drift_injection.json.
"""

from __future__ import annotations

import argparse
import json
import platform
import tempfile
import time
from pathlib import Path

import numpy as np

RESULTS = Path(__file__).parent / "results"


def flagged(flags: list[dict], first: int, stop: int) -> bool:
    return any(2 * (min(stop, f["stop"]) - max(first, f["start"])) > f["stop"] - f["start"] for f in flags)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--subjects", type=int, default=3)
    ap.add_argument("--frames", type=int, default=600)
    ap.add_argument("--every", type=int, default=100)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--model", help="U-Net checkpoint for the model-based signals")
    ap.add_argument("--out", type=Path)
    args = ap.parse_args()

    from sonolabel.phantom import generate_phantom, phantom_project
    from sonolabel.phantom.corrupt import KINDS, corrupt_stretch
    from sonolabel.propagation import propagate_video
    from sonolabel.review import ReviewLog, run_drift, stretches

    root = args.out or Path(tempfile.mkdtemp(prefix="drift-bench-"))
    t0 = time.perf_counter()
    generate_phantom(root / "ph", subjects=args.subjects, frames=args.frames, seed=args.seed)
    rng = np.random.default_rng(args.seed)
    rows = []
    with phantom_project(root / "ph", root / "p.zarr", keyframe_every=args.every) as project:
        t_prop = time.perf_counter()
        for vid in project.video_ids():
            propagate_video(project.video(vid))
        t_prop = time.perf_counter() - t_prop
        for vid in project.video_ids():
            v = project.video(vid)
            labels = np.asarray(v.propagated[:])
            for key, first, stop in stretches(v.n_frames, v.annotated_frames()):
                row = {"video": vid, "keyframe": key, "first": first, "stop": stop, "kind": "clean", "class": None}
                if len(rows) % 2 == 0:  # every other stretch over the whole project
                    kind, cls = KINDS[(len(rows) // 2) % 3], int(rng.integers(1, 8))
                    labels = corrupt_stretch(labels, key, first, stop, kind, cls)
                    row.update(kind=kind, **{"class": cls})
                rows.append(row)
            v.save_propagated(0, labels)
        t_drift = time.perf_counter()
        run_drift(project, model=args.model)
        t_drift = time.perf_counter() - t_drift
        log = ReviewLog(project)
        for row in rows:
            row["flagged"] = flagged(log.flags(row["video"]), row["first"], row["stop"])
    inj = [r for r in rows if r["kind"] != "clean"]
    clean = [r for r in rows if r["kind"] == "clean"]
    result = {
        "machine": f"{platform.machine()}, {platform.system()}, CPU only",
        "subjects": args.subjects,
        "frames": args.frames,
        "keyframe_every": args.every,
        "model": args.model,
        "injected_stretches": len(inj),
        "clean_stretches": len(clean),
        "recall": float(np.mean([r["flagged"] for r in inj])),
        "false_flag_rate": float(np.mean([r["flagged"] for r in clean])),
        "recall_by_kind": {k: float(np.mean([r["flagged"] for r in inj if r["kind"] == k])) for k in KINDS},
        "propagation_seconds": round(t_prop, 1),
        "drift_seconds": round(t_drift, 1),
        "drift_frames_per_s": round(args.subjects * args.frames / t_drift, 1),
        "total_seconds": round(time.perf_counter() - t0, 1),
        "missed": [r for r in inj if not r["flagged"]],
        "false_flags": [r for r in clean if r["flagged"]],
    }
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "drift_injection.json").write_text(json.dumps(result, indent=1))
    print(json.dumps({k: v for k, v in result.items() if k not in ("missed", "false_flags")}, indent=1))
    print(f"missed {len(result['missed'])}, false flags {len(result['false_flags'])}; project in {root}")


if __name__ == "__main__":
    main()
