"""Drift injected into label sequences, growing with the distance from a keyframe: the drift harness's ground truth.

Each corruption takes a frame's labels and a strength from 0 (at the keyframe) to 1 (the far
end of the stretch) and returns damaged labels, the way propagation goes wrong:

* ``slide``: a class's boundary slides outwards over its neighbours (up to ``pixels``);
* ``bleed``: a class bleeds into its neighbour: its pixels near the neighbour take its label;
* ``shrink``: a class loses an outer layer, up to the share ``fraction`` of its area;
* ``swap``: a class and its neighbour exchange labels (at any strength above 0: a person's or a
  tool's mix-up, not a slow drift);
* ``vanish``: a class shrinks from its boundary until it is gone.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

KINDS = ("slide", "bleed", "vanish")  # the gross corruptions of the first harness
REALISTIC = ("slide", "bleed", "shrink", "swap")


def corrupt_frame(labels: np.ndarray, kind: str, cls: int, strength: float, pixels: float = 40, into: int | None = None, fraction: float = 0.5) -> np.ndarray:
    """``labels`` damaged by ``kind`` on class ``cls`` at ``strength`` (0-1); ``into``: the class it bleeds
    into or swaps with."""
    out = labels.copy()
    mask = labels == cls
    if strength <= 0 or not mask.any():
        return out
    reach = strength * pixels
    if kind == "slide":
        grow = ndimage.distance_transform_edt(~mask) <= reach
        out[grow & (labels != cls)] = cls
    elif kind == "bleed":
        target = into if into is not None else nearest_neighbour_class(labels, cls)
        near = ndimage.distance_transform_edt(labels != target) <= reach
        out[mask & near] = target
    elif kind == "shrink":
        depth = ndimage.distance_transform_edt(mask)
        gone = depth <= np.quantile(depth[mask], strength * fraction)
        out[mask & gone] = 0
    elif kind == "swap":
        target = into if into is not None else nearest_neighbour_class(labels, cls)
        other = labels == target
        out[mask], out[other] = target, cls
    elif kind == "vanish":
        depth = ndimage.distance_transform_edt(mask)
        gone = depth <= strength * (depth.max() + 1)
        out[mask & gone] = 0
    else:
        raise ValueError(f"kind must be one of {KINDS}")
    return out


def nearest_neighbour_class(labels: np.ndarray, cls: int) -> int:
    """The foreground class sharing the longest boundary with ``cls`` (background when none touches it)."""
    ring = ndimage.binary_dilation(labels == cls, iterations=2) & (labels != cls)
    counts = np.bincount(labels[ring].ravel(), minlength=256)
    counts[0] = 0
    return int(counts.argmax()) if counts.any() else 0


def corrupt_stretch(labels: np.ndarray, keyframe: int, first: int, stop: int, kind: str, cls: int, pixels: float = 40, fraction: float = 0.5) -> np.ndarray:
    """Corrupt frames ``first..stop-1`` of ``labels`` (T, H, W), strength growing linearly with the distance from ``keyframe``."""
    out = labels.copy()
    far = max(abs(first - keyframe), abs(stop - 1 - keyframe))
    into = nearest_neighbour_class(labels[keyframe], cls) if kind in ("bleed", "swap") else None
    for t in range(first, stop):
        out[t] = corrupt_frame(labels[t], kind, cls, abs(t - keyframe) / far, pixels, into, fraction)
    return out
