"""Quantizer speed: ours (24-bit lookup table) against a per-pixel nearest-colour argmin, side by side.

Run: python benchmarks/quantize_speed.py  (one core: torch/numpy threads are not used here)
Writes benchmarks/results/quantize_speed.json and prints a table.
"""

from __future__ import annotations

import io
import json
import platform
import time
from pathlib import Path

import numpy as np
from PIL import Image

from sonolabel.palette import FOREARM
from sonolabel.phantom import make_sequence
from sonolabel.phantom.render import PhantomRenderer
from sonolabel.quantize import Quantizer


def naive_argmin(rgb: np.ndarray, palette: np.ndarray) -> np.ndarray:
    d = ((rgb[..., None, :].astype(np.int32) - palette.astype(np.int32)) ** 2).sum(-1)
    return np.argmin(d, -1).astype(np.uint8)


def timed(fn, frames, repeat: int) -> float:
    t = time.perf_counter()
    for _ in range(repeat):
        for f in frames:
            fn(f)
    return (time.perf_counter() - t) / (repeat * len(frames))


def main() -> None:
    r = PhantomRenderer(make_sequence(0, 1, 40))
    labels = [r.render(t)[1] for t in range(0, 40, 4)]
    rng = np.random.default_rng(0)
    clean = [FOREARM.rgb[lab] for lab in labels]
    off = [np.clip(c.astype(int) + rng.integers(-6, 7, c.shape), 0, 255).astype(np.uint8) for c in clean]
    jpeg = []
    for c in clean:
        b = io.BytesIO()
        Image.fromarray(c).save(b, "JPEG", quality=90)
        jpeg.append(np.asarray(Image.open(io.BytesIO(b.getvalue()))))
    t0 = time.perf_counter()
    q = Quantizer(FOREARM)
    build_s = time.perf_counter() - t0
    rows = []
    for name, frames in (("exact colours", clean), ("colours off by up to 6", off), ("JPEG q90", jpeg)):
        ours = timed(lambda f: q(f), frames, 20)
        naive = timed(lambda f: naive_argmin(f, FOREARM.rgb), frames, 1)
        agree = float(np.mean([(q(f)[0] == lab).mean() for f, lab in zip(frames, labels)]))
        rows.append({"masks": name, "ours_ms": ours * 1e3, "ours_fps": 1 / ours, "naive_ms": naive * 1e3, "speedup": naive / ours, "agreement": agree})
    result = {
        "size": "480x480",
        "palette": "forearm (8 classes)",
        "lookup_build_s": build_s,
        "rows": rows,
        "machine": f"{platform.processor() or platform.machine()}, 1 thread",
    }
    out = Path(__file__).parent / "results" / "quantize_speed.json"
    out.write_text(json.dumps(result, indent=1))
    print(f"lookup table built once in {build_s:.2f} s")
    print(f"{'masks':26s} {'ours ms':>8s} {'frames/s':>9s} {'argmin ms':>10s} {'ratio':>7s} {'agree':>7s}")
    for r_ in rows:
        print(f"{r_['masks']:26s} {r_['ours_ms']:8.3f} {r_['ours_fps']:9.0f} {r_['naive_ms']:10.2f} {r_['speedup']:6.0f}x {r_['agreement']:7.4f}")


if __name__ == "__main__":
    main()
