"""Per-frame signals of label quality, computed from the labels alone (no model needed).

* ``area_<class>``: the class's share of the frame, and ``area_mm2_<class>`` its area in mm² when
  the video's pixel spacing is known;
* ``area_change``: the largest per-class area change from the previous frame (share of the frame);
* ``keyframe_deviation``: the largest relative change of a class's area from the nearest keyframe's
  (propagation anchors each frame to its keyframes; drift moves labels away from them);
* ``components_<class>`` and ``fragments``: connected pieces per class, and pieces beyond one per
  present class summed over classes (fragmentation);
* ``appear_vanish``: classes that appear or vanish between consecutive frames;
* ``correction``: where a person corrected a propagated frame, the share of pixels they changed
  (how wrong propagation had been there).

Each of these except the areas has a ``<signal>_class`` column: the class behind the frame's value
(the class whose area changed most, the fragmented class, the class that appeared or vanished, the
class the correction changed most; -1 where none), so that a flag names the structure
(``review.regions`` then boxes the region).

The model-based signals (``model_ce``, ``model_dice``, ``model_shift_<class>``, ``model_uncertainty``)
come from ``sonolabel predict`` and the propagation's own confidence (``similarity``, ``entropy``) from
propagation; all of them meet in :func:`signal_table`, which adds ``model_dice_worst`` and
``model_shift`` / ``model_shift_class``: the class whose disagreement with the model rose most since
the nearest keyframe, and by how many pixels.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import ndimage

from ..store import LabelSource, Video
from ..store.chunks import FrameReader
from ..store.layout import NO_LABEL

STRIDE = 2  # labels are subsampled by this before counting components (speed; thin slivers still count)
SIGNALS = ("area_change", "keyframe_deviation", "fragments", "appear_vanish", "correction")


def label_stats(labels: np.ndarray, n_classes: int, stride: int = STRIDE) -> tuple[np.ndarray, np.ndarray]:
    """Per-class area share (T, K) and connected components (T, K) of a label sequence (T, H, W)."""
    t = len(labels)
    area = np.zeros((t, n_classes), np.float32)
    comps = np.zeros((t, n_classes), np.int32)
    for i, lab in enumerate(labels):
        counts = np.bincount(lab.ravel(), minlength=256)[:n_classes]
        area[i] = counts / lab.size
        small = lab[::stride, ::stride]
        for c in np.flatnonzero(counts[1:]) + 1:  # background's pieces are not fragmentation
            comps[i, c] = ndimage.label(small == c)[1]
    return area, comps


def nearest_keyframe(n_frames: int, keyframes: list[int]) -> np.ndarray:
    """(T,) the nearest keyframe of every frame (the earlier one on a tie); ``keyframes`` must not be empty."""
    keys = np.asarray(sorted(keyframes))
    pos = np.arange(n_frames)
    right = np.clip(np.searchsorted(keys, pos), 0, len(keys) - 1)
    left = np.clip(right - 1, 0, len(keys) - 1)
    return np.where(np.abs(keys[left] - pos) <= np.abs(keys[right] - pos), keys[left], keys[right])


def keyframe_deviation(area: np.ndarray, keyframes: list[int]) -> np.ndarray:
    """Per frame, the largest relative change of a foreground class's area from the nearest keyframe's."""
    return _keyframe_deviations(area, keyframes).max(1).astype(np.float32)


def _keyframe_deviations(area: np.ndarray, keyframes: list[int]) -> np.ndarray:
    """(T, K-1) relative change of each foreground class's area from the nearest keyframe's; NaN without keyframes."""
    if not keyframes:
        return np.full((len(area), area.shape[1] - 1), np.nan, np.float32)
    ref = area[nearest_keyframe(len(area), keyframes)][:, 1:]
    return np.abs(area[:, 1:] - ref) / np.maximum(ref, 0.002)  # a class absent at the keyframe counts from 0.2 %


def _foreground_argmax(values: np.ndarray) -> np.ndarray:
    """(T,) the foreground class (1-based: column + 1) with the largest of ``values`` (T, K-1) on each
    frame; -1 where every value is 0 or NaN (nothing to name)."""
    filled = np.nan_to_num(values, nan=0.0)
    return np.where(filled.max(1) > 0, filled.argmax(1) + 1, -1)


def label_signals(video: Video, batch: int = 64) -> pd.DataFrame:
    """The label-only signals of every frame of ``video`` (final labels: annotated where annotated)."""
    k = len(video.project.palette)
    n = video.n_frames
    readers = [FrameReader(video.annotated), FrameReader(video.propagated)]
    src = video.sources()
    area = np.zeros((n, k), np.float32)
    comps = np.zeros((n, k), np.int32)
    correction = np.full(n, np.nan, np.float32)
    corrected_class = np.zeros((n, k - 1), np.float32)
    for start in range(0, n, batch):
        rows = np.arange(start, min(n, start + batch))
        ann, prop = readers[0].read_many(rows), readers[1].read_many(rows)
        final = np.where(ann != NO_LABEL, ann, prop)
        area[rows], comps[rows] = label_stats(final, k)
        corrected = src[rows] == LabelSource.CORRECTED
        if corrected.any():
            a, p = ann[corrected], prop[corrected]
            changed = a != p
            correction[rows[corrected]] = changed.mean((1, 2))
            for i, t in enumerate(rows[corrected]):  # per class, the pixels it gained or lost
                corrected_class[t] = (np.bincount(a[i][changed[i]], minlength=256) + np.bincount(p[i][changed[i]], minlength=256))[1:k]
    present = area > 0
    step = np.zeros((n, k), np.float32)
    step[1:] = np.abs(np.diff(area, axis=0))
    flipped = np.zeros((n, k), bool)
    flipped[1:] = present[1:] != present[:-1]
    deviation = _keyframe_deviations(area, video.annotated_frames())
    extra = np.maximum(comps[:, 1:] - 1, 0)
    df = pd.DataFrame(
        {
            "frame": np.arange(n),
            "area_change": step.max(1),
            "keyframe_deviation": deviation.max(1).astype(np.float32),
            "fragments": extra.sum(1),
            "appear_vanish": flipped.sum(1),
            "correction": correction,
            "area_change_class": _foreground_argmax(step[:, 1:]),
            "keyframe_deviation_class": _foreground_argmax(deviation),
            "fragments_class": _foreground_argmax(extra.astype(np.float32)),
            "appear_vanish_class": _foreground_argmax(flipped[:, 1:].astype(np.float32)),
            "correction_class": _foreground_argmax(corrected_class),
        }
    )
    names = video.project.palette.names
    spacing = video.spacing_mm
    for c in range(k):
        df[f"area_{names[c]}"] = area[:, c]
        if spacing is not None:
            df[f"area_mm2_{names[c]}"] = area[:, c] * (video.height * video.width * spacing[0] * spacing[1])
        if c:
            df[f"components_{names[c]}"] = comps[:, c]
    unlabelled = src == LabelSource.NONE
    df.loc[unlabelled, list(SIGNALS)] = np.nan
    df.loc[unlabelled, [f"{s}_class" for s in SIGNALS]] = -1
    return df


def signal_table(video: Video, label_only: pd.DataFrame | None = None) -> pd.DataFrame:
    """Every per-frame signal of ``video``: the label-only ones and those propagation and prediction stored."""
    table = video.table()
    label_only = label_signals(video) if label_only is None else label_only
    model = ("model_ce", "model_dice", "model_uncertainty")
    keep = [c for c in table.columns if c in ("frame", "keyframe", "source", "similarity", "entropy", *model) or c.startswith(("model_dice_", "model_shift_"))]
    out = table[keep].merge(label_only, on="frame")
    names = list(video.project.palette.names)
    per_class = [f"model_dice_{c}" for c in names[1:] if f"model_dice_{c}" in out]
    if per_class:  # the worst class: a whole-frame score hardly moves when one structure is off
        dice = out[per_class].to_numpy(float)
        out["model_dice_worst"] = out[per_class].min(axis=1, skipna=True)
        worst = np.where(np.isfinite(dice), 1 - dice, np.nan)  # the class the model disagrees with most names its flags
        out["model_worst_class"] = [names.index(per_class[j - 1].removeprefix("model_dice_")) if j > 0 else -1 for j in _foreground_argmax(worst)]
    shifts = [f"model_shift_{c}" for c in names[1:]]
    if all(c in out for c in shifts):
        out["model_shift"], out["model_shift_class"] = model_shift_excess(out[shifts].to_numpy(float), video.annotated_frames())
    return out


def model_shift_excess(shifts: np.ndarray, keyframes: list[int]) -> tuple[np.ndarray, np.ndarray]:
    """Per frame, the largest rise of a class's ``model_shift`` over its value at the nearest keyframe, and
    that class (1-based column + 1, -1 where unknown). On a keyframe the labels are right, so what the model
    disagrees with there is its own error on that class; a class the model always gets a few pixels
    wrong then does not hide, or pose as, the class whose labels moved. ``shifts``: (T, K-1), foreground
    classes."""
    values = shifts - shifts[nearest_keyframe(len(shifts), keyframes)] if keyframes else shifts
    finite = np.isfinite(values)
    known = finite.any(1)
    filled = np.where(finite, values, -np.inf)
    return np.where(known, filled.max(1), np.nan), np.where(known, filled.argmax(1) + 1, -1)
