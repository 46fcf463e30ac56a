"""Click assist quality and speed, on phantom frames and on the real usgra-seg stills in ../shared/data.

For every structure (a connected region of one class, at least 0.4 % of the frame), a simulated annotator
gives either one click (a disk of 4 px at 480 wide at the structure's most interior point) or one scribble
(its medial axis where the structure is at least 30 % as thick as at its thickest, 2 px wide). The fill is
scored by IoU against the structure, in two settings: the frame's other structures already drawn (they
are kept out of the fill, as in a draft or a half-done keyframe), and nothing else drawn (the first
structure of an empty keyframe). The seed's own IoU is the baseline: what the click or scribble alone
would paint. Writes benchmarks/results/click_assist.json.

Run: python benchmarks/click_assist.py
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
from scipy import ndimage as ndi

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data" / "usgra-seg"
MIN_SHARE = 0.004


def phantom_frames(n: int = 8) -> list[tuple[np.ndarray, np.ndarray]]:
    from sonolabel.phantom import make_sequence
    from sonolabel.phantom.render import PhantomRenderer

    out = []
    for subject in range(2):
        r = PhantomRenderer(make_sequence(subject, 1, 400))
        out += [r.render(t) for t in np.linspace(0, 399, n // 2).astype(int)]
    return out


def usgra_frames(n: int = 40) -> list[tuple[np.ndarray, np.ndarray]]:
    from PIL import Image

    names = sorted(p.name for p in (SHARED / "images").iterdir())[:n]
    return [(np.asarray(Image.open(SHARED / "images" / m).convert("L")), np.asarray(Image.open(SHARED / "masks" / m))) for m in names]


def structures(labels: np.ndarray):
    """(class, region mask) of every connected structure big enough to be drawn by itself."""
    for c in np.unique(labels):
        if c == 0:
            continue
        region, k = ndi.label(labels == c)
        for i in range(1, k + 1):
            m = region == i
            if m.mean() >= MIN_SHARE:
                yield int(c), m


def click_of(mask: np.ndarray, width: int) -> np.ndarray:
    from sonolabel.assist import click_disk

    d = ndi.distance_transform_edt(mask)
    y, x = np.unravel_index(np.argmax(d), d.shape)
    return click_disk(mask.shape, y, x, 4 * width / 480) & mask


def scribble_of(mask: np.ndarray) -> np.ndarray:
    from skimage.morphology import skeletonize

    d = ndi.distance_transform_edt(mask)
    axis = skeletonize(mask) & (d >= 0.3 * d.max())
    return ndi.binary_dilation(axis, iterations=1) & mask


def iou(a: np.ndarray, b: np.ndarray) -> float:
    return float((a & b).sum() / max((a | b).sum(), 1))


def score(frames, name: str) -> dict:
    from sonolabel.assist import fill

    rows = []
    for image, labels in frames:
        width = image.shape[1]
        for c, m in structures(labels):
            others = np.where(m, 0, labels)
            for seed_kind, seed in (("click", click_of(m, width)), ("scribble", scribble_of(m))):
                for setting, context in (("others drawn", others), ("empty frame", None)):
                    t0 = time.perf_counter()
                    out = fill(image, context, seed, c)
                    rows.append({"seed": seed_kind, "setting": setting, "iou": iou(out, m), "seed_iou": iou(seed, m), "seconds": time.perf_counter() - t0})
    res = {"data": name, "frames": len(frames), "structures": len(rows) // 4}
    for seed_kind in ("click", "scribble"):
        for setting in ("others drawn", "empty frame"):
            sel = [r for r in rows if r["seed"] == seed_kind and r["setting"] == setting]
            ious = np.array([r["iou"] for r in sel])
            res[f"{seed_kind}, {setting}"] = {
                "median_iou": float(np.median(ious)),
                "share_iou_0.8": float(np.mean(ious >= 0.8)),
                "seed_median_iou": float(np.median([r["seed_iou"] for r in sel])),
                "median_seconds": float(np.median([r["seconds"] for r in sel])),
            }
    return res


def main() -> None:
    results = [score(phantom_frames(), "phantom, 480x480")]
    if SHARED.is_dir():
        results.append(score(usgra_frames(), "usgra-seg real stills, 512x512"))
    out = Path(__file__).parent / "results" / "click_assist.json"
    out.write_text(json.dumps(results, indent=1))
    for r in results:
        print(f"{r['data']}: {r['structures']} structures in {r['frames']} frames")
        for key, v in r.items():
            if isinstance(v, dict):
                print(
                    f"  {key:26s} median IoU {v['median_iou']:.3f} (seed alone {v['seed_median_iou']:.3f}), "
                    f"IoU >= 0.8 for {100 * v['share_iou_0.8']:.0f} %, {v['median_seconds']:.2f} s"
                )


if __name__ == "__main__":
    main()
