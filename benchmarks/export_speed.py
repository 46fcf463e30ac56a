"""Export and dataset-read speed on 2 cores.

    python benchmarks/export_speed.py [--frames 2000]

Builds a phantom project at 480x480 (labels on every frame), exports it to 240x240 and reads
random samples back through SegmentationFrames in one process (one worker). Targets: export at
least 500 frames/s; random reads at least 2,000 samples/s per worker. Writes
benchmarks/results/export_speed.json.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np
import torch


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--frames", type=int, default=2000)
    args = ap.parse_args()
    torch.set_num_threads(2)
    from sonolabel.export import ExportConfig, export_dataset
    from sonolabel.export.torch_data import SegmentationFrames
    from sonolabel.phantom import make_sequence
    from sonolabel.phantom.render import PhantomRenderer
    from sonolabel.store import Project

    r = PhantomRenderer(make_sequence(0, 1, 200))
    out = [r.render(t) for t in range(200)]
    with tempfile.TemporaryDirectory() as tmp:
        p = Project.create(Path(tmp) / "p.zarr")
        with p.staged_video("v", args.frames, 480, 480, {"subject": "s", "fps": 20.0}) as v:
            for i in range(0, args.frames, 100):
                n = min(100, args.frames - i)
                v.frames[i : i + n] = np.stack([out[(i + j) % 200][0] for j in range(n)])
        v = p.video("v")
        v.save_annotation(0, out[0][1])
        for i in range(1, args.frames, 100):
            n = min(100, args.frames - i)
            v.save_propagated(i, np.stack([out[(i + j) % 200][1] for j in range(n)]))
        t0 = time.perf_counter()
        ds_path = export_dataset(p, Path(tmp) / "ds", ExportConfig(size=240))
        export_fps = args.frames / (time.perf_counter() - t0)
        ds = SegmentationFrames(ds_path, split=None)
        idx = np.random.default_rng(0).integers(0, len(ds), 2000)
        ds[0]
        t0 = time.perf_counter()
        for i in idx:
            ds[int(i)]
        read_sps = len(idx) / (time.perf_counter() - t0)
    res = {
        "frames": args.frames,
        "export_frames_per_s": export_fps,
        "random_reads_per_s_one_worker": read_sps,
        "from": "480x480",
        "to": "240x240",
        "threads": 2,
    }
    (Path(__file__).parent / "results" / "export_speed.json").write_text(json.dumps(res, indent=1))
    print(f"export 480->240: {export_fps:.0f} frames/s (target 500); random reads: {read_sps:.0f} samples/s per worker (target 2000)")


if __name__ == "__main__":
    main()
