"""Leave-one-keyframe-out: each keyframe predicted from its neighbours alone, and scored against its annotation.

No ground truth is needed. Keyframe *k_i* is read by a forward pass that starts at *k_(i-1)* and a
backward pass that starts at *k_(i+1)*, with *k_i* itself kept out of memory; the fused prediction is
what propagation would give at the middle of a segment twice as long as the video's own, so its score is
a lower bound on the quality of the stored labels. The two one-sided predictions say which keyframe is
at fault: a keyframe drawn wrong disagrees with both of its neighbours, while its neighbours each agree
with their other side.

Every interval between neighbouring keyframes is crossed once forwards and once backwards, so a check
costs one propagation pass over the keyframed part of the video.
"""

from __future__ import annotations

import hashlib
import warnings
from dataclasses import asdict, dataclass, field

import numpy as np
import torch
from scipy import ndimage

from ..store import Video
from ..store.layout import LOKO_STATE
from .engine import Engine
from .propagate import Segment, VideoPropagator


def class_ious(pred: np.ndarray, truth: np.ndarray, n_classes: int) -> np.ndarray:
    """(K,) IoU per class; NaN where a class is in neither map."""
    out = np.full(n_classes, np.nan)
    for c in range(n_classes):
        a, b = pred == c, truth == c
        union = np.logical_or(a, b).sum()
        if union:
            out[c] = np.logical_and(a, b).sum() / union
    return out


def _boundary(mask: np.ndarray) -> np.ndarray:
    return mask & ~ndimage.binary_erosion(mask, border_value=1)


def boundary_distances(pred: np.ndarray, truth: np.ndarray, n_classes: int) -> np.ndarray:
    """(K,) mean symmetric distance in pixels between each class's outline in ``pred`` and in ``truth``;
    NaN where the class is missing from either map (its IoU, 0, already says so)."""
    out = np.full(n_classes, np.nan)
    for c in range(n_classes):
        a, b = _boundary(pred == c), _boundary(truth == c)
        if not a.any() or not b.any():
            continue
        to_b = ndimage.distance_transform_edt(~b)[a]
        to_a = ndimage.distance_transform_edt(~a)[b]
        out[c] = (to_b.sum() + to_a.sum()) / (len(to_b) + len(to_a))
    return out


def centroid_offsets(pred: np.ndarray, truth: np.ndarray, n_classes: int) -> np.ndarray:
    """(K,) distance in pixels between each class's centre in ``pred`` and in ``truth``: a structure drawn
    shifted moves its centre by the shift, while propagation's boundary noise hardly moves it. NaN where
    the class is missing from either map."""
    out = np.full(n_classes, np.nan)
    idx = np.arange(n_classes)
    present = np.isin(idx, pred) & np.isin(idx, truth)
    if present.any():
        ca = np.array(ndimage.center_of_mass(np.ones_like(pred), pred, idx[present]))
        cb = np.array(ndimage.center_of_mass(np.ones_like(truth), truth, idx[present]))
        out[present] = np.hypot(*(ca - cb).T)
    return out


@dataclass
class KeyframeCheck:
    """One keyframe read from its neighbours. ``iou``/``boundary_px`` score the fused prediction (None: the
    keyframe lies at an end and has one neighbour); ``side_iou``/``side_boundary_px`` are the better of the
    one-sided predictions per class, the consistency that blames a keyframe and not its neighbours."""

    frame: int
    left: int | None
    right: int | None
    iou: list[float] | None
    boundary_px: list[float] | None
    side_iou: list[float]
    side_boundary_px: list[float]
    side_offset_px: list[float]  # the better one-sided class centre offset
    labels: np.ndarray | None = field(default=None, repr=False)  # the fused (or one-sided) prediction

    @property
    def miou(self) -> float | None:
        """Mean IoU of the fused prediction over the classes in either map (None at the ends)."""
        return None if self.iou is None else float(np.nanmean(self.iou))


def _walk(runner: VideoPropagator, start: int, stop: int) -> torch.Tensor:
    """Propagate from keyframe ``start`` to frame ``stop`` (either direction); the probabilities at
    ``stop``. Only ``start`` is in memory: propagation's extra keyframes would carry one wrong
    keyframe into the check of others, and the blame would spread."""
    reverse = stop < start
    seg = Segment(None, None, min(start, stop) + (0 if reverse else 1), max(start, stop) - (1 if reverse else 0))
    probs = None
    for _, _, p, _ in runner.read_pass(seg, start, reverse):
        probs = p[0 if reverse else len(p) - 1].float()  # the frame the pass reached last
    return probs


def _signature(video: Video, engine: Engine, model_id: str, k: int, left: int | None, right: int | None, scale: int) -> str:
    """What a keyframe's check depends on: the settings, the model, the label grid and the three annotations."""
    h = hashlib.sha256(engine.config.fingerprint().encode())
    h.update(f"{model_id}|{k}|{left}|{right}|{scale}".encode())
    for t in (left, k, right):
        if t is not None:
            h.update(np.ascontiguousarray(video.annotated[t]).tobytes())
    return h.hexdigest()[:24]


def _to_json(check: KeyframeCheck) -> dict:
    d = {key: v for key, v in asdict(check).items() if key != "labels"}
    return {key: [None if x is None or not np.isfinite(x) else x for x in v] if isinstance(v, list) else v for key, v in d.items()}


def _from_json(d: dict) -> KeyframeCheck:
    fields = {key: v for key, v in d.items() if key != "model"}
    return KeyframeCheck(**{key: [np.nan if x is None else x for x in v] if isinstance(v, list) else v for key, v in fields.items()})


def check_keyframes(video: Video, engine: Engine, model_id: str = "", keep_labels: bool = False) -> list[KeyframeCheck]:
    """Read every keyframe of ``video`` from its neighbouring keyframes (at least two keyframes are needed)
    and score it; interior keyframes get the fused two-sided score, end keyframes a one-sided one.

    Results are kept in the video's state by signature (settings, ``model_id``, the keyframe's and its
    neighbours' annotations), so after a correction only the keyframes around it are read again."""
    keys = video.annotated_frames()
    if len(keys) < 2:
        return []
    cache = video.state(LOKO_STATE, {}).get("checks", {}) if not keep_labels else {}
    runner = VideoPropagator(video, engine, "check")
    n, size = engine.n_classes, (video.height, video.width)
    out, kept = [], {}
    for i, k in enumerate(keys):
        left = keys[i - 1] if i > 0 else None
        right = keys[i + 1] if i + 1 < len(keys) else None
        sig = _signature(video, engine, model_id, k, left, right, runner.scale)
        if sig in cache:
            out.append(_from_json(cache[sig]))
            kept[sig] = cache[sig]
            continue
        truth = np.asarray(video.annotated[k])
        sides = [_walk(runner, start, k)[None].cpu() for start in (left, right) if start is not None]
        side_labels = [engine.to_labels(p, size)[0] for p in sides]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # a class in neither map: NaN on both sides
            side_iou = np.nanmax([class_ious(lab, truth, n) for lab in side_labels], 0)
            side_bd = np.nanmin([boundary_distances(lab, truth, n) for lab in side_labels], 0)
            side_off = np.nanmin([centroid_offsets(lab, truth, n) for lab in side_labels], 0)
        if len(sides) == 2:
            pos = torch.tensor([(k - left) / (right - left)], dtype=torch.float32)
            fused = engine.to_labels(engine.fuse(sides[0].float(), sides[1].float(), pos), size)[0]
            iou, bd = class_ious(fused, truth, n).tolist(), boundary_distances(fused, truth, n).tolist()
        else:
            fused, iou, bd = side_labels[0], None, None
        check = KeyframeCheck(k, left, right, iou, bd, side_iou.tolist(), side_bd.tolist(), side_off.tolist(), fused if keep_labels else None)
        out.append(check)
        kept[sig] = _to_json(check)
    if video.project.writable and not keep_labels:
        state = video.state(LOKO_STATE, {})
        others = {s: c for s, c in state.get("checks", {}).items() if s not in kept}
        # keep this model's checks and, for the other mode, its latest ones (auto compares two models)
        video.set_state(
            LOKO_STATE,
            {"checks": {**{s: c for s, c in others.items() if c.get("model") != model_id}, **{s: {**c, "model": model_id} for s, c in kept.items()}}},
        )
    return out


def video_score(checks: list[KeyframeCheck]) -> float | None:
    """One number per video and model: the mean fused mIoU of the interior keyframes, or with only two
    keyframes the mean one-sided IoU of both."""
    fused = [c.miou for c in checks if c.miou is not None]
    if fused:
        return float(np.mean(fused))
    sides = [float(np.nanmean(c.side_iou)) for c in checks]
    return float(np.mean(sides)) if sides else None
