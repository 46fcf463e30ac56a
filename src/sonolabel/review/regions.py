"""Where a flag points: the class it is about and the box around the pixels behind it.

A reviewer opening a flag should land on the structure and the place that went wrong, not on a
whole frame. The class comes from the signal's per-frame class column (``drift.NAMED``); the box
from the labels themselves, read over the flag's span:

* ``keyframe_deviation``: where the class differs from the nearest keyframe's labels;
* ``area_change``, ``appear_vanish``: where it differs from the previous frame's;
* ``fragments``: its pieces beyond the largest one;
* ``correction``: where the person's correction changed it;
* ``model_*``: where the U-Net's prediction and the labels part on it;
* ``entropy``, ``similarity``: where propagation's margin (top class probability minus the
  runner-up) is low; these flags are named after the class most of that region lies in.

Pixels that qualify in at least half as many frames as the most frequent one make the box, so a
stray pixel of one frame does not stretch it. At most :data:`SAMPLE` frames of a span are read,
evenly spread, so the cost stays flat in the span's length. Flags that already carry a box
(consistency, the reads parting) keep theirs.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from ..store import Video
from ..store.chunks import FrameReader
from ..store.layout import MARGIN_SCALE, NO_LABEL, NO_MARGIN
from .signals import nearest_keyframe

SAMPLE = 32  # frames of a flag's span read to box it
LOW_MARGIN = 0.5  # propagation is unsure of a pixel whose top class leads the runner-up by less than this
BY_LABELS = ("keyframe_deviation", "area_change", "appear_vanish", "fragments", "correction")
BY_MODEL = ("model_ce", "model_dice", "model_dice_worst", "model_shift")
BY_MARGIN = ("entropy", "similarity")


def mask_box(mask: np.ndarray, scale: int = 1) -> list[int] | None:
    """[y0, x0, y1, x1] around the true pixels of a 2-D ``mask``, times ``scale``; None when there are none."""
    if not mask.any():
        return None
    ys, xs = np.flatnonzero(mask.any(1)), np.flatnonzero(mask.any(0))
    return [int(ys[0] * scale), int(xs[0] * scale), int((ys[-1] + 1) * scale), int((xs[-1] + 1) * scale)]


def often_box(masks: np.ndarray) -> list[int] | None:
    """The box around the pixels true in at least half as many of ``masks`` (T, H, W) as the most frequent one."""
    often = masks.mean(0)
    return mask_box(often >= 0.5 * often.max()) if often.any() else None


def span_rows(start: int, stop: int, sample: int = SAMPLE) -> np.ndarray:
    """At most ``sample`` frames of ``start..stop-1``, evenly spread, first and last included."""
    return np.unique(np.linspace(start, stop - 1, min(sample, stop - start)).round().astype(int))


def final_labels(video: Video, rows: np.ndarray, readers: tuple[FrameReader, FrameReader] | None = None) -> np.ndarray:
    """(len(rows), H, W) the labels a frame has: the annotation where there is one, else the propagated labels.
    ``readers``: the video's (annotated, propagated) readers, when the caller keeps them across calls."""
    annotated, propagated = readers or (FrameReader(video.annotated), FrameReader(video.propagated))
    ann, prop = annotated.read_many(rows), propagated.read_many(rows)
    return np.where(ann != NO_LABEL, ann, prop)


def disagreement_box(video: Video, start: int, stop: int, cls: int) -> list[int] | None:
    """[y0, x0, y1, x1] (store pixels) around the pixels where the U-Net's prediction (``labels/predicted``)
    and the labels disagree about class ``cls`` in frames ``start..stop-1``; None when they agree or
    there is no prediction."""
    if not video.has_prediction:
        return None
    rows = span_rows(start, stop)
    labels = final_labels(video, rows)
    return often_box((labels == cls) != (FrameReader(video.predicted).read_many(rows) == cls))


def label_change_box(video: Video, signal: str, start: int, stop: int, cls: int) -> list[int] | None:
    """The box around what the label-only ``signal`` measured of class ``cls`` over frames ``start..stop-1``."""
    rows = span_rows(start, stop)
    if signal in ("area_change", "appear_vanish"):  # each frame against the one before it, read once
        both = np.union1d(rows, np.maximum(rows - 1, 0))
        labels = final_labels(video, both) == cls
        index = {t: i for i, t in enumerate(both)}
        return often_box(labels[[index[t] for t in rows]] != labels[[index[max(t - 1, 0)] for t in rows]])
    labels = final_labels(video, rows)
    mine = labels == cls
    if signal == "keyframe_deviation":
        keys = video.annotated_frames()
        if not keys:
            return None
        near = nearest_keyframe(video.n_frames, keys)[rows]
        ref = {k: final_labels(video, np.array([k]))[0] == cls for k in np.unique(near)}
        masks = mine != np.stack([ref[k] for k in near])
    elif signal == "fragments":
        masks = np.stack([_beyond_largest(m) for m in mine])
    elif signal == "correction":
        ann, prop = FrameReader(video.annotated).read_many(rows), FrameReader(video.propagated).read_many(rows)
        masks = (ann != NO_LABEL) & (ann != prop) & ((ann == cls) | (prop == cls))
    else:
        raise ValueError(f"not a label-only signal: {signal}")
    return often_box(masks)


def _beyond_largest(mask: np.ndarray) -> np.ndarray:
    pieces, n = ndimage.label(mask)
    if n < 2:
        return np.zeros_like(mask)
    sizes = np.bincount(pieces.ravel())
    sizes[0] = 0
    return (pieces > 0) & (pieces != sizes.argmax())


def uncertain_region(video: Video, start: int, stop: int, n_classes: int) -> tuple[int | None, list[int] | None]:
    """Where propagation was unsure over frames ``start..stop-1`` (margin under :data:`LOW_MARGIN`): the
    foreground class most of those pixels carry (None when they are all background) and their box in
    store pixels; (None, None) without a stored margin."""
    margin = video.margin
    if margin is None:
        return None, None
    rows = span_rows(start, stop)
    m = np.asarray(margin.get_orthogonal_selection((rows, slice(None), slice(None))))
    low = (m < LOW_MARGIN * MARGIN_SCALE) & (m != NO_MARGIN)
    if not low.any():
        return None, None
    labels = final_labels(video, rows)
    sy, sx = labels.shape[1] / m.shape[1], labels.shape[2] / m.shape[2]
    grid = labels[:, (np.arange(m.shape[1]) * sy).astype(int)][:, :, (np.arange(m.shape[2]) * sx).astype(int)]
    counts = np.bincount(grid[low].ravel(), minlength=256)[:n_classes]
    cls = int(counts[1:].argmax()) + 1 if counts[1:].any() else None
    box = often_box(low)
    if box is not None:
        box = [int(box[0] * sy), int(box[1] * sx), min(int(np.ceil(box[2] * sy)), labels.shape[1]), min(int(np.ceil(box[3] * sx)), labels.shape[2])]
    return cls, box


def locate(video: Video, flag: dict, class_names: list[str]) -> dict:
    """``flag`` with its ``class`` and ``box`` filled in where its signal allows and it has none yet."""
    signal, start, stop = flag["signal"], flag["start"], flag["stop"]
    if flag.get("kind") == "project":  # a whole video: the class is in the signal's name, the region is everywhere
        name = signal.removeprefix("area_")
        return {**flag, "class": flag.get("class") or (name if name in class_names else None)}
    if flag.get("box") is not None:
        return flag
    cls = class_names.index(flag["class"]) if flag.get("class") in class_names else None
    box = None
    if signal in BY_MARGIN:
        found, box = uncertain_region(video, start, stop, len(class_names))
        cls = cls if cls is not None else found
    elif cls is not None and signal in BY_LABELS:
        box = label_change_box(video, signal, start, stop, cls)
    elif cls is not None and signal in BY_MODEL:
        box = disagreement_box(video, start, stop, cls)
    return {**flag, "class": class_names[cls] if cls is not None else flag.get("class"), "box": box}
