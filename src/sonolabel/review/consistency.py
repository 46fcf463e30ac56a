"""Shape-aware drift signals: the stored labels against the propagation engine and against the image.

**Consistency.** Every segment between keyframes is read again from each of its keyframes alone
(forward from the left one, backward from the right one, nothing else in memory) and compared, frame
by frame and class by class, with the labels the project holds, whatever wrote them (propagation,
an import, a person's edits). A class that slid, bled or shrank away from what either keyframe
supports disagrees with both reads; honest propagation agrees with at least the nearer one. A
stretch at an end of the video has one keyframe and one read, made as propagation makes it (the
keyframes it has passed in permanent memory): with no second read to measure the engine's spread,
labels are checked against the engine's own answer there. Per class the better side counts:

* ``consistency_px``: per class, the boundary shift between the stored labels and the nearer read,
  in pixels at store resolution, estimated as the disagreeing area over the mean outline length (a
  boundary moved by *d* pixels along its whole outline gives *d*), less half the shift between the
  two reads: labels right to within the engine's own spread lie between the reads. The largest
  excess over the classes is the signal, so a stretch that propagation finds hard (the reads part)
  is not taken for drift;
* ``consistency_iou``: the smallest per-class IoU; ``consistency_class`` the class with the
  largest shift, and ``box_y0 .. box_x1`` the bounding box of its disagreeing pixels;
* a class that neither the stored labels nor a read has agrees with that read: where a structure
  leaves the imaging plane between two keyframes, labels without it are supported by the read from
  the keyframe without it. When it left is for the image to tell (``sides_present``, below);
* ``sides_px``: the largest shift between the two one-sided reads (``sides_class`` the class, and
  ``sides_y0 .. sides_x1`` the box where they part), where a segment has both: the
  engine's own uncertainty (a probe jump or a decorrelated stretch makes the sides part).
* ``sides_present`` and ``sides_kept``, where the keyframes disagree on a structure (one has under
  half of the other's area of it, :data:`PARTED`): whether the image still shows it, from the edge support of the
  outline that the read from the keyframe having it paints (0: as on the other keyframe's image, 1:
  as next to its own keyframe), and the share of that outline's area the labels keep
  (:func:`presence_evidence`). ``drift`` flags the frames where the two do not agree.

**Edge support** (``edge_loss``): ultrasound boundaries sit on fascia and bone cortex, bright
ridges in the image. Per class, the mean gradient magnitude along its outline, relative to the
frame's, is compared with the nearest keyframe's; the largest relative loss over the classes is
the signal. A boundary that slid off its fascia loses support even when its area is unchanged.

Comparisons run at half the store resolution (outline lengths and shifts are scaled back).
Cost: one pass of the engine per direction over every segment, i.e. about one propagation.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import ndimage

from ..boundaries import outline
from ..propagation.engine import Engine
from ..propagation.propagate import VideoPropagator, plan_segments
from ..store import Video
from ..store.chunks import FrameReader
from .drift import presence_doubt
from .regions import final_labels, mask_box
from .signals import nearest_keyframe

STRIDE = 2
SIDES_BOX = ("sides_y0", "sides_x0", "sides_y1", "sides_x1")
PRESENCE = ("sides_present", "sides_kept")
# keyframes disagree on a structure when one has under this share of the other's area of it: it left or
# entered the plane, or a keyframe was drawn while it did (a muscle bulging with a finger changes far less)
PARTED = 0.5
COLUMNS = ("consistency_px", "consistency_iou", "consistency_class", "sides_px", "box_y0", "box_x0", "box_y1", "box_x1", "sides_class", *SIDES_BOX, *PRESENCE)


def outline_lengths(labels: np.ndarray, n_classes: int) -> np.ndarray:
    """(K,) outline pixels per class."""
    return np.bincount(labels[outline(labels)].ravel(), minlength=n_classes)[:n_classes].astype(float)


def compare(stored: np.ndarray, read: np.ndarray, n_classes: int, scale: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    """Per class IoU and boundary shift (px, times ``scale``) of ``read`` against ``stored``. A class in
    neither map agrees (IoU 1, shift 0): a read without a structure that left the plane supports
    labels without it."""
    cm = np.bincount(stored.ravel().astype(np.int64) * n_classes + read.ravel(), minlength=n_classes * n_classes)
    cm = cm[: n_classes * n_classes].reshape(n_classes, n_classes).astype(float)
    inter = np.diag(cm)
    rows, cols = cm.sum(1), cm.sum(0)
    union = rows + cols - inter
    with np.errstate(invalid="ignore", divide="ignore"):
        iou = np.where(union > 0, inter / union, 1.0)
        edges = 0.5 * (outline_lengths(stored, n_classes) + outline_lengths(read, n_classes))
        shift = np.where(union > 0, (union - inter) / np.maximum(edges, 1.0), 0.0) * scale
    return iou, shift


def _box(stored: np.ndarray, read: np.ndarray, cls: int, scale: int) -> list[int]:
    return mask_box((stored == cls) != (read == cls), scale) or [-1] * 4


def _read_side(runner: VideoPropagator, seg, start: int, reverse: bool, size: tuple[int, int], extras: list[int] = ()) -> np.ndarray:
    """Labels of every frame of ``seg`` read from keyframe ``start`` (with ``extras`` in permanent memory), at ``size``."""
    engine = runner.engine
    out = np.empty((seg.n_frames, *size), np.uint8)
    for s, e, probs, _ in runner.read_pass(seg, start, reverse, extras):
        out[s - seg.first : e - seg.first] = engine.to_labels(probs.float(), size)
    return out


def _reads(runner: VideoPropagator, seg, size: tuple[int, int]) -> list[np.ndarray]:
    """The reads of ``seg``: from each of its two keyframes alone; for a stretch with one keyframe (an end
    of the video), the one read propagation makes there, with the keyframes it has passed in permanent
    memory. With one side there is no second read to measure the engine's spread by, so the read must be
    the engine's own answer: read from the keyframe alone, it parts from propagation's by 1-3 px over 100
    frames with nothing wrong (and honest labels would be flagged), while with the same memory it stays
    under 1 px."""
    if seg.left is not None and seg.right is not None:
        return [_read_side(runner, seg, start, rev, size) for start, rev in ((seg.left, False), (seg.right, True))]
    start, rev = (seg.left, False) if seg.left is not None else (seg.right, True)
    return [_read_side(runner, seg, start, rev, size, runner.extra_keyframes(start, rev))]


def _stored(video: Video, first: int, stop: int, readers) -> np.ndarray:
    return final_labels(video, np.arange(first, stop), readers)[:, ::STRIDE, ::STRIDE]


def consistency_signals(video: Video, engine: Engine, batch: int = 64) -> pd.DataFrame:
    """The consistency columns (see the module) for every frame of ``video``; NaN on keyframes and
    where the video has no keyframe."""
    n, k = video.n_frames, engine.n_classes
    out = pd.DataFrame({"frame": np.arange(n)})
    for c in COLUMNS:
        out[c] = np.nan
    keys = video.annotated_frames()
    if not keys:
        return out
    size = (-(-video.height // STRIDE), -(-video.width // STRIDE))
    runner = VideoPropagator(video, engine, "consistency")
    readers = [FrameReader(video.annotated), FrameReader(video.propagated)]
    values = out[list(COLUMNS)].to_numpy(float)
    for seg in plan_segments(n, keys):
        sides = _reads(runner, seg, size)
        if len(sides) == 2:
            values[seg.first : seg.last + 1, -2:] = presence_evidence(video, seg, sides, k, readers)
        for s in range(seg.first, seg.last + 1, batch):
            e = min(s + batch, seg.last + 1)
            stored = _stored(video, s, e, readers)
            for i, t in enumerate(range(s, e)):
                reads = [side[t - seg.first] for side in sides]
                scores = [compare(stored[i], r, k, STRIDE) for r in reads]
                iou = np.max([sc[0] for sc in scores], 0)
                shift = np.min([sc[1] for sc in scores], 0)
                between = compare(reads[0], reads[1], k, STRIDE)[1] if len(reads) == 2 else np.zeros(k)
                # labels right to within the engine's own spread lie between the two reads, no farther from
                # the nearer one than half the distance between them; what lies beyond is the excess
                excess = (shift - 0.5 * between)[1:]  # background's outline is every other class's: it is left out
                worst = 1 + int(np.argmax(excess))
                best_read = reads[int(np.argmin([sc[1][worst] for sc in scores]))]
                parting = [np.nan] * 5
                if len(reads) == 2:  # the class the reads part on most, and where
                    parted = 1 + int(np.argmax(between[1:]))
                    parting = [parted, *_box(reads[0], reads[1], parted, STRIDE)]
                spread = float(between[1:].max()) if len(reads) == 2 else np.nan
                values[t, :-2] = [excess[worst - 1], iou.min(), worst, spread, *_box(stored[i], best_read, worst, STRIDE), *parting]
    out[list(COLUMNS)] = values
    return out


def presence_evidence(video: Video, seg, sides: list[np.ndarray], n_classes: int, readers, smooth: int = 5) -> np.ndarray:
    """(frames of ``seg``, 2): ``sides_present`` and ``sides_kept`` where the segment's keyframes disagree
    on whether a class is there (it left or entered the imaging plane between them: one keyframe has
    under :data:`PARTED` of the other's area of it, as a keyframe drawn while the structure was going
    does); NaN elsewhere.

    The read from the keyframe that has the class (``sides``: left read, right read) paints it on
    every frame; the image says whether it is still there. ``sides_present`` puts the edge support of
    that read's outline on a scale calibrated per segment: 1 is its support on the frames next to its
    keyframe (the structure there, outlined by the engine), 0 its support on the other keyframe's
    image (the same outline where the structure is absent). A read that itself has lost the class
    (under a quarter of the keyframe's area) reads 0. ``sides_kept`` is the share of that read's class
    the stored labels keep. Labels are borne out where both say the same: ``drift`` flags the frames
    where they do not, instead of the whole segment. Where several classes part, the most doubtful
    frame-by-frame counts; where the image cannot tell the two levels apart, ``sides_present`` is NaN."""
    keys = [np.asarray(video.annotated[f])[::STRIDE, ::STRIDE] for f in (seg.left, seg.right)]
    out = np.full((seg.n_frames, 2), np.nan)
    areas = np.array([np.bincount(key.ravel(), minlength=n_classes)[:n_classes] for key in keys])
    parted = [c for c in range(1, n_classes) if areas[:, c].min() < PARTED * areas[:, c].max()]
    if not parted:
        return out
    images = [np.asarray(video.frames[f])[::STRIDE, ::STRIDE] for f in (seg.left, seg.right)]
    grads = [_ridges(f) for f in np.asarray(video.frames[seg.first : seg.last + 1])[:, ::STRIDE, ::STRIDE]]
    stored = _stored(video, seg.first, seg.last + 1, readers)
    rank = np.full(seg.n_frames, -np.inf)
    for c in parted:
        j = int(areas[1, c] > areas[0, c])  # the side that keeps the class
        read, key_area = sides[j], areas[j, c]
        base = outline_support(_ridges(images[j]), keys[j], n_classes)[c]
        absent = _ridges(images[1 - j])
        area = (read == c).sum((1, 2)).astype(float)
        lost = area < 0.25 * key_area
        with np.errstate(invalid="ignore", divide="ignore"):  # a flat keyframe image (base 0) reads NaN: the image cannot tell
            here = np.array([outline_support(g, r, n_classes)[c] for g, r in zip(grads, read)]) / base
            there = np.array([outline_support(absent, r, n_classes)[c] for r in read[~lost]]) / base
        here = pd.Series(here).rolling(smooth, center=True, min_periods=1).median().to_numpy()
        whole = np.nanmedian(here[:smooth] if j == 0 else here[-smooth:])
        gone = np.nanmedian(there) if len(there) else np.nan
        present = np.clip((here - gone) / (whole - gone), 0, 1) if whole - gone >= 0.1 else np.full(seg.n_frames, np.nan)
        present[lost] = 0.0
        kept = np.clip((stored == c).sum((1, 2)) / np.maximum(area, 1), 0, 1)
        mine = presence_doubt(present, kept) + np.nan_to_num(np.abs(present - kept), nan=1.0)
        worse = mine > rank
        out[worse], rank = np.c_[present, kept][worse], np.maximum(rank, mine)
    return out


def _ridges(image: np.ndarray) -> np.ndarray:
    """The gradient magnitude's local maximum over 3x3 pixels: an outline that lies a pixel (two at store
    resolution) off a ridge still counts as on it, as the engine's outline of a whole structure does."""
    return ndimage.maximum_filter(gradient(image), size=3)


def gradient(image: np.ndarray, sigma: float = 1.5) -> np.ndarray:
    """Gaussian gradient magnitude: fascia and bone cortex are its ridges."""
    return ndimage.gaussian_gradient_magnitude(image.astype(np.float32), sigma)


def edge_support(image: np.ndarray, labels: np.ndarray, n_classes: int, sigma: float = 1.5) -> np.ndarray:
    """(K,) mean gradient magnitude along each class's outline over the frame's mean; NaN where absent."""
    return outline_support(gradient(image, sigma), labels, n_classes)


def outline_support(grad: np.ndarray, labels: np.ndarray, n_classes: int) -> np.ndarray:
    """:func:`edge_support` from the frame's gradient magnitude ``grad``."""
    edge = outline(labels)
    lab = labels[edge].ravel()
    counts = np.bincount(lab, minlength=n_classes)[:n_classes]
    sums = np.bincount(lab, weights=grad[edge].ravel(), minlength=n_classes)[:n_classes]
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(counts > 0, sums / counts, np.nan) / (grad.mean() + 1e-6)


def edge_signals(video: Video, batch: int = 64) -> pd.DataFrame:
    """``edge_loss`` per frame: the largest relative loss of a class's edge support from the nearest keyframe's."""
    n, k = video.n_frames, len(video.project.palette)
    keys = video.annotated_frames()
    support = np.full((n, k), np.nan)
    readers = [FrameReader(video.annotated), FrameReader(video.propagated)]
    for s in range(0, n, batch):
        e = min(s + batch, n)
        labels = _stored(video, s, e, readers)
        frames = np.asarray(video.frames[s:e])[:, ::STRIDE, ::STRIDE]
        for i in range(e - s):
            support[s + i] = edge_support(frames[i], labels[i], k)
    loss = np.full(n, np.nan)
    if keys:
        ref = support[nearest_keyframe(n, keys)][:, 1:]
        with np.errstate(invalid="ignore", divide="ignore"):
            rel = (ref - support[:, 1:]) / ref
        rel[~np.isfinite(rel)] = np.nan
        loss = np.where(np.isnan(rel).all(1), np.nan, np.nanmax(np.where(np.isnan(rel), -np.inf, rel), 1))
    return pd.DataFrame({"frame": np.arange(n), "edge_loss": loss})
