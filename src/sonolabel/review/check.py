"""``sonolabel check``: how good are a video's labels, and which keyframe was drawn wrong, without ground truth.

Each keyframe is read from its neighbours alone (:mod:`sonolabel.propagation.loko`). The mean fused mIoU of
the interior keyframes estimates the quality of propagation at twice the video's keyframe spacing: a lower
bound for the labels it holds. A keyframe whose annotation disagrees with *both* of its neighbours'
propagation far more than keyframes usually do (a class IoU collapsed, or a boundary several pixels
off) goes to the review queue as a ``keyframe`` flag with the reason. The limits are robust (what the better
half of the run's keyframes score, per class, and its spread), with floors that scale with the image size.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from ..errors import InputError
from ..propagation import PropagationConfig
from ..propagation.loko import KeyframeCheck, check_keyframes
from ..propagation.modes import Engines
from ..store import Project, Video
from ..store.chunks import FrameReader
from ..store.layout import CHECK_STATE
from .log import ReviewLog
from .regions import mask_box

KIND = "keyframe"  # the flag kind check owns in review/flags.json


@dataclass
class CheckLimits:
    """When a keyframe is "far worse than the rest": beyond ``mad_k`` robust deviations of the pooled
    per-class scores, and at least the floors (boundary floor in pixels at 480 px, scaled with the frame)."""

    mad_k: float = 4.0
    iou_floor: float = 0.1  # IoU drop below the class reference
    boundary_floor_px: float = 6.0  # mean boundary distance above the class reference
    collapse_iou: float = 0.5  # end keyframes: flagged only for a class whose IoU collapsed below this
    offset_floor_px: float = 4.0  # class centre offset above the class reference (a structure drawn shifted)


@dataclass
class VideoCheck:
    video: str
    spacing: float  # median frames between keyframes
    estimate_miou: float | None  # mean fused mIoU at the interior keyframes (quality at twice the spacing)
    worst_miou: float | None
    boundary_px: float | None  # mean boundary distance of the fused predictions
    boundary_mm: float | None  # the same in mm, when the pixel spacing is known
    mode: str
    flags: list[dict]
    keyframes: list[KeyframeCheck]
    seconds: float


def _plain(x):
    """JSON-safe: NaN becomes None."""
    if isinstance(x, dict):
        return {k: _plain(v) for k, v in x.items()}
    if isinstance(x, list):
        return [_plain(v) for v in x]
    return None if isinstance(x, float) and not np.isfinite(x) else x


def _reference(values: np.ndarray, higher_is_better: bool) -> tuple[float, float]:
    """What a correct keyframe scores, and the spread: the upper (lower) quartile and the MAD of the better
    half, so that a wrong keyframe and the one-sided check of its end neighbour (half of a four-keyframe
    video) do not drag the reference towards themselves."""
    v = values[np.isfinite(values)]
    if not len(v):
        return np.nan, 0.0
    ref = float(np.quantile(v, 0.75 if higher_is_better else 0.25))
    good = v[v >= np.median(v)] if higher_is_better else v[v <= np.median(v)]
    return ref, float(1.4826 * np.median(np.abs(good - ref)))


def keyframe_flags(
    checks: dict[str, list[KeyframeCheck]], names: list[str], scale: dict[str, float], limits: CheckLimits | None = None
) -> dict[str, list[dict]]:
    """Flags per video for keyframes inconsistent with both neighbours. ``scale``: pixels per 480 px of each
    video (boundary limits grow with the frame).

    A drawing error is specific to a class or two (swapped, missed, shifted) while the rest of the keyframe
    agrees; when most classes disagree, propagation failed across the gap and the keyframe is not blamed.
    An end keyframe has one neighbour, one-sided evidence that a hard gap also explains: it is flagged
    only for a class that collapsed (IoU under ``collapse_iou``) and only when its neighbour is not flagged."""
    lim = limits or CheckLimits()
    rows = [(vid, c) for vid, cs in checks.items() for c in cs]
    if not rows:
        return {}
    iou = np.array([c.side_iou for _, c in rows], float)
    per_480 = np.array([[scale[vid]] for vid, _ in rows])
    px = {
        "boundary": np.array([c.side_boundary_px for _, c in rows], float) / per_480,
        "centre": np.array([c.side_offset_px for _, c in rows], float) / per_480,
    }
    floors = {"boundary": lim.boundary_floor_px, "centre": lim.offset_floor_px}
    flagged: dict[tuple[str, int], tuple[float, list[str]]] = {}
    for i, (vid, c) in enumerate(rows):
        reasons, severity, worst = [], 0.0, None
        one_sided = c.iou is None
        for k, name in enumerate(names):
            med, mad = _reference(iou[:, k], higher_is_better=True)
            drop = max(lim.iou_floor, lim.mad_k * mad, med - lim.collapse_iou if one_sided else 0.0)
            if np.isfinite(iou[i, k]) and med - iou[i, k] > drop:
                reasons.append(f"{name} IoU {iou[i, k]:.2f} against its neighbours' propagation (typical {med:.2f})")
                worst = name if (med - iou[i, k]) / drop > severity else worst
                severity = max(severity, (med - iou[i, k]) / drop)
                continue
            for what, values in [] if one_sided else px.items():
                med, mad = _reference(values[:, k], higher_is_better=False)
                rise = max(floors[what], lim.mad_k * mad)
                if np.isfinite(values[i, k]) and values[i, k] - med > rise:
                    s = scale[vid]
                    reasons.append(f"{name} {what} {values[i, k] * s:.1f} px from its neighbours' propagation (typical {med * s:.1f} px)")
                    worst = name if (values[i, k] - med) / rise > severity else worst
                    severity = max(severity, (values[i, k] - med) / rise)
                    break
        present = int(np.isfinite(iou[i]).sum())
        if reasons and len(reasons) < present / 2:
            flagged[(vid, c.frame)] = (severity, reasons, worst)
    out: dict[str, list[dict]] = {vid: [] for vid in checks}
    for (vid, frame), (severity, reasons, worst) in flagged.items():
        c = next(x for x in checks[vid] if x.frame == frame)
        if c.iou is None and (vid, c.left if c.left is not None else c.right) in flagged:
            continue
        out[vid].append(
            {
                "id": f"{vid}:{KIND}:{frame}",
                "video": vid,
                "kind": KIND,
                "signal": "keyframe",
                "start": int(frame),
                "stop": int(frame) + 1,
                "severity": round(float(severity), 3),
                "reason": f"keyframe {frame} disagrees with its neighbours ({'; '.join(reasons)}): a swapped class, a missed structure or a misplaced outline?",
                "class": worst,  # the class that disagrees most; run_check boxes it
            }
        )
    return out


def _summary(video: Video, checks: list[KeyframeCheck], mode: str, seconds: float) -> VideoCheck:
    keys = video.annotated_frames()
    inner = [c for c in checks if c.miou is not None]
    mious = [c.miou for c in inner]
    bds = [b for c in inner for b in c.boundary_px if np.isfinite(b)]
    bd = float(np.mean(bds)) if bds else None
    mm = video.spacing_mm
    return VideoCheck(
        video.id,
        float(np.median(np.diff(keys))) if len(keys) > 1 else float("nan"),
        float(np.mean(mious)) if mious else None,
        float(np.min(mious)) if mious else None,
        bd,
        bd * float(np.mean(mm)) if bd is not None and mm else None,
        mode,
        [],
        checks,
        seconds,
    )


def _keyframe_box(video: Video, frame: int, cls: int) -> list[int] | None:
    """The region of a keyframe flag: around class ``cls`` in the keyframe and its neighbouring keyframes, so
    that it takes in both where the keyframe has the structure and where its neighbours put it."""
    keys = video.annotated_frames()
    i = keys.index(frame)
    near = np.array(keys[max(0, i - 1) : i + 2])
    return mask_box((FrameReader(video.annotated).read_many(near) == cls).any(0))


def run_check(
    project: Project,
    videos: list[str] | None = None,
    config: PropagationConfig | None = None,
    weights: str | Path | None = None,
    limits: CheckLimits | None = None,
    progress: Callable[[str], None] | None = None,
) -> list[VideoCheck]:
    """Check the given videos (default: every video with two keyframes or more): estimate their quality,
    flag inconsistent keyframes (replacing earlier keyframe flags; drift flags stay) and store the result in
    each video's state, where ``project.summary()`` and the napari video table read it."""
    project.require_writable()
    ids = list(videos) if videos else [v.id for v in project.videos() if len(v.annotated_frames()) >= 2]
    if not ids:
        raise InputError("no video has two keyframes or more", project.path, "a check reads each keyframe from its neighbours")
    engines = Engines(project, config or PropagationConfig(), weights)
    results, checks, scale = [], {}, {}
    for vid in ids:
        v = project.video(vid)
        if len(v.annotated_frames()) < 2:
            raise InputError(f"video {vid!r} has fewer than two keyframes", project.path, "annotate at least two frames")
        if progress:
            progress(vid)
        t0 = time.perf_counter()
        engine, model_id, _ = engines.for_video(v)  # auto with weights: the mode propagation would choose
        checks[vid] = check_keyframes(v, engine, model_id)
        scale[vid] = max(v.height, v.width) / 480
        results.append(_summary(v, checks[vid], engine.config.mode, time.perf_counter() - t0))
    names = list(project.palette.names)
    flags = keyframe_flags(checks, names, scale, limits)
    log = ReviewLog(project)
    for r in results:
        r.flags = [
            {**f, "box": _keyframe_box(project.video(r.video), f["start"], names.index(f["class"])) if f["class"] in names else None}
            for f in flags.get(r.video, [])
        ]
        log.set_flags(r.video, r.flags, kinds={KIND})
        project.video(r.video).set_state(
            CHECK_STATE,
            _plain(
                {
                    "at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
                    "mode": r.mode,
                    "spacing": r.spacing,
                    "estimate_miou": r.estimate_miou,
                    "worst_miou": r.worst_miou,
                    "boundary_px": r.boundary_px,
                    "boundary_mm": r.boundary_mm,
                    "flagged": [f["start"] for f in r.flags],
                    "keyframes": [c.frame for c in r.keyframes],  # their scores: the loko state
                }
            ),
        )
    return results
