"""Does edge support tell a structure that is there from one that is not, on real ultrasound?

    python benchmarks/edge_support_real.py

``sides_present`` (review/consistency.py) rests on one premise: along a structure's true outline the
image has ridges (fascia, walls, cortex), and the same outline where the structure is absent has
fewer. On the phantom the premise is built in. Here it is measured on real B-mode images with
hand-drawn masks (``../shared/data/usgra-seg``: nerves and blood vessels, 204 images): per
structure, the ridge support (``outline_support`` on ``_ridges``, at half resolution as drift
computes it) of its true outline against the median support of the same outline moved by one to
two of its widths and heights to where it does not overlap itself, inside the scan (at most 10 % of
the moved outline's pixels in the black border). Results: benchmarks/results/edge_support_real.json.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from PIL import Image
from scipy import ndimage

from sonolabel.review.consistency import _ridges, outline_support

ROOT = Path(__file__).resolve().parents[2] / "shared" / "data" / "usgra-seg"
RESULTS = Path(__file__).parent / "results" / "edge_support_real.json"
NAMES = {1: "nerve", 2: "blood vessel"}


def measure(image: np.ndarray, mask: np.ndarray, cls: int, rng: np.random.Generator, tries: int = 8) -> tuple[float, float] | None:
    """(support of the true outline, median support of the moved outlines), or None without a fair move."""
    inside = mask == cls
    ridges = _ridges(image)
    here = outline_support(ridges, np.where(inside, cls, 0).astype(np.uint8), cls + 1)[cls]
    ys, xs = np.nonzero(inside)
    h, w = np.ptp(ys) + 1, np.ptp(xs) + 1
    moved_support = []
    for _ in range(tries):
        dy, dx = rng.choice([-1, 1]) * rng.uniform(1, 2) * h, rng.choice([-1, 1]) * rng.uniform(1, 2) * w
        moved = ndimage.shift(inside.astype(np.uint8), (dy, dx), order=0).astype(bool)
        if moved.sum() < 0.9 * inside.sum() or (moved & inside).any() or (image[moved] < 0.05 * image.max()).mean() > 0.1:
            continue
        moved_support.append(outline_support(ridges, np.where(moved, cls, 0).astype(np.uint8), cls + 1)[cls])
    return (float(here), float(np.median(moved_support))) if moved_support else None


def main() -> None:
    if not ROOT.is_dir():
        raise SystemExit(f"{ROOT} is not there: this benchmark reads the shared usgra-seg images")
    rng = np.random.default_rng(0)
    rows = []
    for path in sorted((ROOT / "images").glob("*.png")):
        image = np.asarray(Image.open(path).convert("L"), np.float32)[::2, ::2]
        mask = np.asarray(Image.open(ROOT / "masks" / path.name))[::2, ::2]
        for cls in NAMES:
            if (mask == cls).sum() >= 50:
                got = measure(image, mask, cls, rng)
                if got:
                    rows.append((cls, *got))
    r = np.array(rows)
    doc = {}
    for cls, name in NAMES.items():
        x = r[r[:, 0] == cls]
        ratio = x[:, 1] / x[:, 2]
        doc[name] = {
            "structures": int(len(x)),
            "true_outline_higher": round(float((ratio > 1).mean()), 3),
            "ratio_median": round(float(np.median(ratio)), 3),
            "ratio_p10": round(float(np.percentile(ratio, 10)), 3),
            "ratio_p90": round(float(np.percentile(ratio, 90)), 3),
        }
    RESULTS.write_text(json.dumps(doc, indent=1))
    print(json.dumps(doc, indent=1))


if __name__ == "__main__":
    main()
