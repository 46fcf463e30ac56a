"""Intake on inputs that look like what users have: mask videos from other tools and scanner screen captures.

* Mask videos: phantom ground truth (3 seeds x 120 frames) coloured in the forearm palette (255) and the
  DAVIS palette (128), also in BGR, encoded as h264 with 4:2:0 chroma at CRF 23 (libx264's default) and 35;
  quantized with the video settings (blends settled from flat regions) and with plain nearest colour.
  Reports pixel agreement with the truth, frames where a class appears away from where it truly is
  (a "third class": > 3 px from that class in the truth), and ms per 480x480 frame.
* Screen captures: the real GE Logiq frames in ../shared/data/logiq-gastroc (box within 3 px of
  x=111, y=60, w=578, h=461), and a phantom composited into a synthetic 1148x624 UI with repeated frames.

Run: python benchmarks/intake.py   Writes benchmarks/results/intake.json and prints tables.
"""

from __future__ import annotations

import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import zarr

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from sonolabel.io.region import detect_box  # noqa: E402
from sonolabel.mask_sequences import open_masks  # noqa: E402
from sonolabel.palette import DAVIS, FOREARM  # noqa: E402
from sonolabel.phantom import generate_phantom, read_manifest  # noqa: E402
from sonolabel.quantize import Quantizer  # noqa: E402
from test_intake import _no_third_class, screen_capture, write_colour_video  # noqa: E402

LOGIQ = ROOT.parent / "shared" / "data" / "logiq-gastroc" / "frames"


def mask_videos(tmp: Path) -> list[dict]:
    rows = []
    for seed in (1, 2, 3):
        generate_phantom(tmp / f"ph{seed}", subjects=1, frames=120, seed=seed)
        rec = read_manifest(tmp / f"ph{seed}")[0]
        true = np.asarray(zarr.open_array(str(tmp / f"ph{seed}" / rec.labels), mode="r")[:])
        for palette, bgr, crf in ((FOREARM, False, 23), (DAVIS, False, 23), (FOREARM, True, 23), (DAVIS, True, 23), (FOREARM, False, 35), (DAVIS, False, 35)):
            rgb = palette.colorize(true)
            video = write_colour_video(tmp / f"m{seed}.mp4", rgb[..., ::-1] if bgr else rgb, crf=crf)
            seq = open_masks(video, palette)
            methods = [("settled", None)] + ([("nearest colour", Quantizer(palette, window=0))] if crf == 23 and not bgr else [])
            for name, q in methods:
                t0 = time.perf_counter()
                got = np.stack([lab for _, lab, _ in seq.read(q, swap_rb=bgr)])
                ms = (time.perf_counter() - t0) * 1000 / len(got)
                third = sum(not _no_third_class(g, t) for g, t in zip(got, true))
                rows.append(
                    {
                        "seed": seed,
                        "palette": palette.name,
                        "bgr": bgr,
                        "crf": crf,
                        "method": name,
                        "frames": len(got),
                        "agreement": float((got == true).mean()),
                        "frames_with_third_class": int(third),
                        "ms_per_frame_incl_decode": ms,
                    }
                )
    return rows


def captures(tmp: Path) -> dict:
    from PIL import Image

    out = {}
    if LOGIQ.is_dir():
        frames = np.stack([np.asarray(Image.open(f).convert("L")) for f in sorted(LOGIQ.glob("*.png"))])
        found = detect_box(frames)
        out["logiq"] = {
            "found": found.as_list(),
            "true": [111, 60, 578, 461],
            "max_error_px": max(abs(a - b) for a, b in zip(found.as_list(), [111, 60, 578, 461])),
        }
    generate_phantom(tmp / "cap", subjects=1, frames=60, seed=5)
    rec = read_manifest(tmp / "cap")[0]
    frames, box, origin = screen_capture(tmp / "cap" / rec.video)
    grey = np.stack([np.asarray(Image.fromarray(f).convert("L")) for f in frames])
    found = detect_box(grey)
    out["synthetic_1148x624"] = {
        "found": found.as_list(),
        "true": box.as_list(),
        "max_error_px": max(abs(a - b) for a, b in zip(found.as_list(), box.as_list())),
        "frames": len(frames),
        "repeats": int(len(frames) - len(np.unique(origin))),
    }
    return out


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        rows = mask_videos(Path(tmp))
        caps = captures(Path(tmp))
    results = {"mask_videos": rows, "captures": caps}
    (ROOT / "benchmarks" / "results" / "intake.json").write_text(json.dumps(results, indent=1))
    print("| palette | BGR | CRF | method | agreement (min over 3 seeds) | frames with a class > 3 px from its true place | ms/frame |")
    print("|---|---|---|---|---|---|---|")
    keys = sorted({(r["palette"], r["bgr"], r["crf"], r["method"]) for r in rows}, key=lambda k: (k[0], k[1], k[2], k[3] != "settled"))
    for pal, bgr, crf, method in keys:
        sel = [r for r in rows if (r["palette"], r["bgr"], r["crf"], r["method"]) == (pal, bgr, crf, method)]
        print(
            f"| {pal} | {'yes' if bgr else 'no'} | {crf} | {method} | {min(r['agreement'] for r in sel):.4f} | "
            f"{sum(r['frames_with_third_class'] for r in sel)} of {sum(r['frames'] for r in sel)} | "
            f"{np.mean([r['ms_per_frame_incl_decode'] for r in sel]):.1f} |"
        )
    for name, c in caps.items():
        print(f"{name}: found {c['found']} true {c['true']} (max error {c['max_error_px']} px)")


if __name__ == "__main__":
    main()
