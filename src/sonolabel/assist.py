"""Click assist: a click or a scribble inside a structure fills the region the image itself bounds.

No trained weights: a marker-controlled watershed (scikit-image) floods a map of the frame's bright ridges
around the strokes, seeded by the strokes (the class being drawn), by the other classes' current labels
(they stay what they are) and by everything farther than a reach from the strokes (not this structure).
Forearm boundaries are fascia and bone cortex, thin bright ridges, so the floods meet on a ridge's crest
rather than on either of its flanks (a gradient map has its peaks there). How far the structure extends
is not known from a click, so the fill is flooded for several reaches and the nearest one whose fill
the farther reaches no longer change is kept: the image, not the reach, bounds it. Where even the two
farthest reaches disagree (a faint boundary), the fill at the default reach is kept. The result is a proposal: the
napari dock previews it and applies it only when accepted (undoable there like a brush stroke).
``benchmarks/click_assist.py`` measures it on the phantom and on real stills; docs/napari.md has the
table and what was compared (a gradient map, a random walker).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage as ndi


@dataclass
class AssistConfig:
    """How far a fill may reach and how the frame is read.

    Lengths are at 480 px wide and scale with the frame. ``reaches`` (fractions of the frame width: a forearm
    muscle is a fifth to a third of a 480-px frame) are all flooded; the fill of the nearest reach that,
    like every reach beyond it, agrees with the farthest one (IoU at least ``agree``) is kept, else the fill
    at ``reach``. ``ridge_sigmas`` are
    the scales, in px, of the bright ridges (fascia, cortex) the floods meet on."""

    reaches: tuple[float, ...] = (0.1, 0.15, 0.2, 0.3, 0.4)
    reach: float = 0.2
    agree: float = 0.95
    ridge_sigmas: tuple[float, ...] = (2.0, 4.0)


def click_disk(shape: tuple[int, int], y: float, x: float, radius: float) -> np.ndarray:
    """A click as a stroke: the disk of ``radius`` px around (y, x)."""
    yy, xx = np.ogrid[: shape[0], : shape[1]]
    return (yy - y) ** 2 + (xx - x) ** 2 <= radius**2


def ridges(frame: np.ndarray, sigmas: tuple[float, ...]) -> np.ndarray:
    """How strongly each pixel of ``frame`` lies on a bright ridge (Sato's tubeness at ``sigmas`` px)."""
    from skimage.filters import sato

    f = np.asarray(frame, np.float32)
    f = (f - f.min()) / (float(np.ptp(f)) + 1e-6)
    return sato(f, sigmas=list(sigmas), black_ridges=False)


def fill(frame: np.ndarray, labels: np.ndarray | None, strokes: np.ndarray, cls: int, config: AssistConfig | None = None) -> np.ndarray:
    """The region of class ``cls`` that ``strokes`` point at, as a boolean (H, W) mask.

    ``frame`` is the grey frame (H, W); ``labels`` the frame's current labels (or None): pixels of classes
    other than background and ``cls`` are kept out of the fill; ``strokes`` is a boolean (H, W) mask (a
    click's disk, a scribble). The fill holds the strokes, is connected to them and has no holes."""
    from skimage.segmentation import watershed

    cfg = config or AssistConfig()
    strokes = np.asarray(strokes, bool)
    if not strokes.any():
        return np.zeros(strokes.shape, bool)
    h, w = strokes.shape
    reaches = sorted(set(cfg.reaches) | {cfg.reach})
    far = max(4, int(round(reaches[-1] * w)))
    ys, xs = np.nonzero(strokes)
    crop = (slice(max(0, ys.min() - far), min(h, ys.max() + far + 1)), slice(max(0, xs.min() - far), min(w, xs.max() + far + 1)))
    elevation = ridges(np.asarray(frame)[crop], tuple(s * w / 480 for s in cfg.ridge_sigmas))
    seeds = strokes[crop]
    distance = ndi.distance_transform_edt(~seeds)
    others = None
    if labels is not None:
        near = np.asarray(labels)[crop]
        others = (near != 0) & (near != cls)

    def flood(reach: float) -> np.ndarray:
        markers = np.where(distance > max(4, reach * w), 2, 0).astype(np.int32)
        if others is not None:
            markers[others] = 2
        markers[seeds] = 1
        region, _ = ndi.label(watershed(elevation, markers) == 1)
        keep = np.unique(region[seeds])
        return ndi.binary_fill_holes(np.isin(region, keep[keep > 0]))

    fills = {r: flood(r) for r in reaches}
    farthest, nearest = fills[reaches[-1]], reaches[-1]
    for r in reversed(reaches[:-1]):
        if (fills[r] & farthest).sum() < cfg.agree * max((fills[r] | farthest).sum(), 1):
            break
        nearest = r
    chosen = fills[cfg.reach] if nearest == reaches[-1] else fills[nearest]
    out = np.zeros((h, w), bool)
    out[crop] = chosen
    out |= strokes
    if labels is not None:
        out &= ~((np.asarray(labels) != 0) & (np.asarray(labels) != cls))
    return out
