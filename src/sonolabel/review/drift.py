"""Drift flags from per-frame signals: trends away from keyframes, robust outliers, project-wide checks.

Propagation is anchored at keyframes, so its errors grow with the distance from the nearest
keyframe. Each stretch of frames running away from a keyframe (half a segment between two
keyframes, or the ends of the video) is tested for a monotone trend of the signals that stay flat
when labels are right: the U-Net's cross-entropy and Dice against the labels, and the deviation
of class areas from the keyframe's. A trend must be significant (Mann-Kendall, i.e. Kendall's tau
against distance) *and* large (its Theil-Sen slope times the stretch's length over a threshold).
Confidence signals that fall with distance even when labels are right (similarity, entropy) are
only screened for robust outliers (above median + k·MAD), as are jumps in area and fragmentation.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats

# signal -> (direction, rise that counts as drift); direction -1: lower is worse
TREND_SIGNALS = {
    "model_ce": (1, None),
    "model_dice": (-1, 0.15),
    "model_dice_worst": (-1, 0.15),
    "model_shift": (1, None),  # DriftConfig.model_shift_px, scaled to the video's width
    "keyframe_deviation": (1, 0.3),
}
# signal -> (direction, floor of the MAD, so that flat signals do not flag every small wiggle)
OUTLIER_SIGNALS = {
    "model_ce": (1, 0.02),
    "entropy": (1, 0.02),
    "similarity": (-1, 0.01),
    "area_change": (1, 0.003),
    "fragments": (1, 1.0),
    "appear_vanish": (1, 0.5),
    "correction": (1, 0.02),
    "sides_px": (1, 0.5),
    "model_shift": (1, 0.5),
}
# signal -> the column naming its class per frame; the flag names the class most often named over its span
NAMED = {
    "model_shift": "model_shift_class",
    "sides_px": "sides_class",
    "keyframe_deviation": "keyframe_deviation_class",
    "area_change": "area_change_class",
    "fragments": "fragments_class",
    "appear_vanish": "appear_vanish_class",
    "correction": "correction_class",
    "model_ce": "model_worst_class",
    "model_dice": "model_worst_class",
    "model_dice_worst": "model_worst_class",
}
BOXED = {"sides_px": ("sides_y0", "sides_x0", "sides_y1", "sides_x1")}  # ... and the region, per frame (model_shift's: run_drift)
PAIR_SIGNALS = ("area_change", "appear_vanish")
SIDES_GAP = 10  # frames: doubtful frames of one transition this close together are one flag
GHOST = 0.0  # share of a structure that labels may keep where the image shows it gone: any pixel more is doubted
RESIDUE = 0.01  # share of a structure under which labels keep none of it (a speck at most)
TRANSIT = 0.15  # the image's reading moving this much over 2 * TRANSIT_FRAMES frames: the structure is coming or going
TRANSIT_FRAMES = 4


def presence_doubt(present: np.ndarray, kept: np.ndarray) -> np.ndarray:
    """Frames where the image does not bear out the stored labels' choice between two keyframes that
    disagree on a structure (``sides_present``, ``sides_kept``; see ``review.consistency``): the image
    is in the middle third between its "there" and "gone" levels, the labels keep half of it less or
    more than the image shows, the image shows it gone while the labels keep any of it (more than
    :data:`GHOST`: a ghost piece left behind, a speck that seeds an early regrowth, or the last of a
    structure too small for the image to tell), the image's reading is still moving between its levels
    while the labels keep none of it (under :data:`RESIDUE`; :data:`TRANSIT` over
    :data:`TRANSIT_FRAMES` frames either side: the structure is partly there,
    shrinking or growing back, though a full-size outline finds little of it), or the image cannot
    tell (NaN)."""
    present, kept = np.asarray(present, float), np.asarray(kept, float)
    ghost = (present <= 1 / 3) & (kept > GHOST)
    w, n = TRANSIT_FRAMES, len(present)
    padded = np.r_[np.full(w, np.nan), present, np.full(w, np.nan)]
    finite = np.r_[0, np.cumsum(np.isfinite(padded))]
    read = finite[2 * w + 1 :] - finite[:n] == 2 * w + 1  # one segment's reading all along the 2w + 1 frames
    with np.errstate(invalid="ignore"):
        moving = read & (np.abs(padded[2 * w :] - padded[:n]) >= TRANSIT)
    dropped = moving & (kept < RESIDUE)
    return ~np.isfinite(present) | ((present > 1 / 3) & (present < 2 / 3)) | (np.abs(present - kept) >= 0.5) | ghost | dropped


@dataclass
class DriftConfig:
    alpha: float = 0.01  # significance of a trend (per stretch and signal)
    min_frames: int = 8  # shorter stretches are not tested
    ce_rise: float = 0.5  # model_ce drift: a rise of this share of its level near the keyframe
    model_shift_px: float = 4.0  # model_shift drift: a rise of this many px (at 480 wide) away from a keyframe
    mad_k: float = 6.0  # robust outliers: above median + mad_k * MAD
    min_span: int = 1  # outlier spans shorter than this are dropped
    subject_z: float = 3.5  # project check: robust z of a subject's class area among subjects
    consistency: bool = True  # re-read every segment from its keyframes (about one propagation pass)
    consistency_px: float = 2.5  # a class's boundary this far (px at 480 wide) from both keyframes' reads
    device: str = "auto"  # for the consistency reads


DRIFT_KINDS = {"trend", "outlier", "project", "consistency"}  # the flag kinds `sonolabel drift` owns (check owns "keyframe")


def stretches(n_frames: int, keyframes: list[int]) -> list[tuple[int, int, int]]:
    """(keyframe, first, stop) for each run of frames moving away from a keyframe (stop exclusive)."""
    keys = sorted(set(keyframes))
    if not keys:
        return []
    out = []
    if keys[0] > 0:
        out.append((keys[0], 0, keys[0]))
    for a, b in zip(keys, keys[1:]):
        mid = (a + b + 1) // 2
        out += [(a, a + 1, mid), (b, mid, b)]
    if keys[-1] < n_frames - 1:
        out.append((keys[-1], keys[-1] + 1, n_frames))
    return [s for s in out if s[2] > s[1]]


def trend(distance: np.ndarray, values: np.ndarray) -> tuple[float, float, float]:
    """Kendall's tau of ``values`` against ``distance`` (Mann-Kendall), its p-value, and the Theil-Sen slope."""
    ok = np.isfinite(values)
    if ok.sum() < 4 or np.ptp(values[ok]) == 0:
        return 0.0, 1.0, 0.0
    tau, p = stats.kendalltau(distance[ok], values[ok])
    slope = stats.theilslopes(values[ok], distance[ok])[0]
    return float(tau), float(p), float(slope)


def _flag(
    video: str, kind: str, signal: str, start: int, stop: int, severity: float, reason: str, cls: str | None = None, box: list[int] | None = None
) -> dict:
    """One flag: frames ``start..stop-1``; ``class`` and ``box`` ([y0, x0, y1, x1] in store pixels) where
    the signal names the structure and the region."""
    return {
        "id": f"{video}:{kind}:{signal}:{start}-{stop}",
        "video": video,
        "kind": kind,
        "signal": signal,
        "start": int(start),
        "stop": int(stop),
        "severity": round(float(severity), 3),
        "reason": reason,
        "class": cls,
        "box": box,
    }


def _named_class(signals: pd.DataFrame, name: str, start: int, stop: int, class_names: list[str]) -> str | None:
    """For a signal that names its class per frame (:data:`NAMED`), the class most often named in the span."""
    column = NAMED.get(name)
    if column not in signals:
        return None
    values = signals[column].to_numpy()[start:stop]
    values = values[values >= 0]
    if not len(values):
        return None
    cls = int(np.bincount(values.astype(int)).argmax())
    return class_names[cls] if cls < len(class_names) else str(cls)


def _span_box(span: pd.DataFrame, class_column: str, cls: int, box_columns) -> list[int] | None:
    """[y0, x0, y1, x1] around the per-frame boxes of the span's frames that name class ``cls``."""
    boxes = span.loc[span[class_column] == cls, list(box_columns)].to_numpy(float)
    boxes = boxes[boxes[:, 0] >= 0]
    return [int(boxes[:, 0].min()), int(boxes[:, 1].min()), int(boxes[:, 2].max()), int(boxes[:, 3].max())] if len(boxes) else None


def trend_flags(video: str, signals: pd.DataFrame, keyframes: list[int], cfg: DriftConfig, class_names: list[str] = (), width: int = 480) -> list[dict]:
    flags = []
    for key, first, stop in stretches(len(signals), keyframes):
        if stop - first < cfg.min_frames:
            continue
        dist = np.abs(np.arange(first, stop) - key).astype(float)
        for name, (direction, rise_needed) in TREND_SIGNALS.items():
            if name not in signals:
                continue
            values = direction * signals[name].to_numpy(float)[first:stop]
            if not np.isfinite(values).any():
                continue
            tau, p, slope = trend(dist, values)
            rise = slope * (dist.max() - dist.min())
            if name == "model_ce":
                near = values[np.argsort(dist)[: max(3, len(dist) // 4)]]
                rise_needed = cfg.ce_rise * max(float(np.nanmedian(near)), 0.05)
            elif name == "model_shift":
                rise_needed = cfg.model_shift_px * width / 480
            if p < cfg.alpha and rise > 0 and rise >= rise_needed:
                a, b = _drifted(values, dist, rise_needed)
                start, end = first + a, first + b
                flags.append(
                    _flag(
                        video,
                        "trend",
                        name,
                        start,
                        end,
                        rise / rise_needed,
                        f"{name} {'rises' if direction > 0 else 'falls'} by {rise:.3g} over {stop - first} frames "
                        f"away from keyframe {key} (tau {tau:.2f}, p {p:.1e}); past {rise_needed:.3g} in frames {start}-{end - 1}",
                        _named_class(signals, name, start, end, list(class_names)),
                    )
                )
    return flags


def _drifted(values: np.ndarray, dist: np.ndarray, rise_needed: float, width: int = 5) -> tuple[int, int]:
    """The part of a drifting stretch a reviewer should look at, as (start, stop) indices into it: from the
    frame nearest the keyframe where the signal (running median over ``width`` frames) has risen by
    ``rise_needed`` above its level near the keyframe, to the stretch's far end. Drift grows with the
    distance, so the frames before that point are still close to the keyframe's labels. A stretch
    whose smoothed signal never gets there (a trend made of scattered frames) is flagged whole."""
    order = np.argsort(dist)
    v = pd.Series(values[order]).rolling(width, center=True, min_periods=1).median().to_numpy()
    near = float(np.nanmedian(v[: max(3, len(v) // 4)]))
    past = np.flatnonzero(v >= near + rise_needed)
    i = int(past[0]) if len(past) else 0
    span = np.sort(order[i:])
    return int(span[0]), int(span[-1]) + 1


def _spans(mask: np.ndarray, gap: int = 2) -> list[tuple[int, int]]:
    idx = np.flatnonzero(mask)
    if not len(idx):
        return []
    breaks = np.flatnonzero(np.diff(idx) > gap + 1)
    starts = np.r_[idx[0], idx[breaks + 1]]
    stops = np.r_[idx[breaks], idx[-1]] + 1
    return list(zip(starts.tolist(), stops.tolist()))


def outlier_flags(video: str, signals: pd.DataFrame, cfg: DriftConfig, class_names: list[str] = ()) -> list[dict]:
    flags = []
    for name, (direction, floor) in OUTLIER_SIGNALS.items():
        if name not in signals:
            continue
        values = direction * signals[name].to_numpy(float)
        ok = np.isfinite(values)
        if ok.sum() < 10:
            continue
        med = np.median(values[ok])
        mad = max(1.4826 * np.median(np.abs(values[ok] - med)), floor)
        limit = med + cfg.mad_k * mad
        suspect = ok & (values > limit)
        if name == "sides_px":  # where the keyframes disagree on a structure the image decides (presence_flags)
            suspect &= ~_presence_known(signals)
        for start, stop in _spans(suspect):
            if stop - start < cfg.min_span:
                continue
            cls = _named_class(signals, name, start, stop, list(class_names))  # named by the frames that stand out
            if name in PAIR_SIGNALS:  # a change between frames t-1 and t: both are suspects
                start = max(0, start - 1)
            peak = np.nanmax(values[start:stop])
            box = None
            if name in BOXED and cls in class_names:
                box = _span_box(signals.iloc[start:stop], NAMED[name], list(class_names).index(cls), BOXED[name])
            severity = (peak - med) / (cfg.mad_k * mad)
            side, sign = ("above", "+") if direction > 0 else ("below", "-")
            reason = f"{name} {side} median{sign}{cfg.mad_k:g}·MAD ({direction * limit:.3g}) in frames {start}-{stop - 1}"
            flags.append(_flag(video, "outlier", name, start, stop, severity, reason, cls, box))
    return flags


def _presence_known(signals: pd.DataFrame) -> np.ndarray:
    """Frames of segments whose keyframes disagree on a structure (``sides_kept`` is set there)."""
    if "sides_kept" not in signals:
        return np.zeros(len(signals), bool)
    return signals["sides_kept"].notna().to_numpy()


def presence_flags(video: str, signals: pd.DataFrame, class_names: list[str] = ()) -> list[dict]:
    """Where two keyframes disagree on whether a structure is there (it left or entered the imaging
    plane between them), the frames whose labels the image does not bear out (:func:`presence_doubt`).
    Their reads part over the whole segment, rightly, so a screen of ``sides_px`` would flag all of it;
    the image says which frames to look at. Doubtful frames closer than :data:`SIDES_GAP` are one flag,
    named by the structure, boxed around it, and kept under the ``sides_px`` signal (so a flag's id, and
    the review decisions made on it, do not depend on which rule found it)."""
    known = _presence_known(signals)
    if not known.any():
        return []
    doubt = known & presence_doubt(signals["sides_present"], signals["sides_kept"])
    flags = []
    for start, stop in _spans(doubt, SIDES_GAP):
        span = signals.iloc[start:stop]
        cls = _named_class(signals, "sides_px", start, stop, list(class_names))
        box = _span_box(span, "sides_class", list(class_names).index(cls), BOXED["sides_px"]) if cls in class_names else None
        present, kept = span["sides_present"].to_numpy(float), span["sides_kept"].to_numpy(float)
        gap = np.abs(present - kept)
        worst = int(np.nanargmax(gap)) if np.isfinite(gap).any() else 0
        shown = f"the image shows {present[worst]:.0%} of it" if np.isfinite(present[worst]) else "the image cannot tell"
        reason = (
            f"{cls or 'a structure'}: the keyframes disagree on whether it is there; in frames {start}-{stop - 1} the labels do not "
            f"follow the image (frame {start + worst}: {shown}, the labels keep {kept[worst]:.0%})"
        )
        flags.append(_flag(video, "outlier", "sides_px", start, stop, 1.0 + float(np.nan_to_num(gap[worst], nan=0.5)), reason, cls, box))
    return flags


def consistency_flags(video: str, signals: pd.DataFrame, cfg: DriftConfig, class_names: list[str], width: int = 480) -> list[dict]:
    """Spans where a class's stored boundary lies farther than ``consistency_px`` (scaled to the video's
    width) beyond what either keyframe's read supports. The signal already discounts the engine's own
    spread, so the limit is absolute: with half a video drifting, a limit relative to the video's own
    level would rise with the drift. Each flag names the class that disagrees most and the box around
    the disagreement."""
    if "consistency_px" not in signals:
        return []
    values = signals["consistency_px"].to_numpy(float)
    ok = np.isfinite(values)
    if ok.sum() < 10:
        return []
    limit = cfg.consistency_px * width / 480
    flags = []
    for start, stop in _spans(ok & (values > limit)):
        span = signals.iloc[start:stop]
        bad = span[span["consistency_px"] > limit]
        cls = int(bad["consistency_class"].mode().iloc[0])
        box = _span_box(bad, "consistency_class", cls, ("box_y0", "box_x0", "box_y1", "box_x1"))
        peak = float(np.nanmax(values[start:stop]))
        name = class_names[cls] if cls < len(class_names) else str(cls)
        flags.append(
            _flag(
                video,
                "consistency",
                "consistency_px",
                start,
                stop,
                peak / limit,
                f"{name}'s boundary lies up to {peak:.1f} px from what either keyframe's propagation reads (limit {limit:.1f} px) in frames {start}-{stop - 1}",
                name,
                box,
            )
        )
    return flags


def detect_drift(
    video: str, signals: pd.DataFrame, keyframes: list[int], cfg: DriftConfig | None = None, class_names: list[str] | None = None, width: int = 480
) -> list[dict]:
    """Trend, outlier, presence and consistency flags for one video, most severe first. Flags of a signal
    with a class column (:data:`NAMED`, and consistency) carry the class; consistency and ``sides_px``
    flags also carry the box, and ``review.regions.locate`` boxes the others from the labels."""
    cfg = cfg or DriftConfig()
    flags = trend_flags(video, signals, keyframes, cfg, class_names or [], width) + outlier_flags(video, signals, cfg, class_names or [])
    flags += presence_flags(video, signals, class_names or []) + consistency_flags(video, signals, cfg, class_names or [], width)
    return sorted(flags, key=lambda f: -f["severity"])


def project_flags(videos: dict[str, dict], class_names: list[str], cfg: DriftConfig | None = None) -> list[dict]:
    """Checks across videos. ``videos``: id -> {"subject", "frames", "area": mean class shares (K,)}.
    Flags a class missing from a whole video while other videos have it, and a subject whose mean
    area of a class is far (robust z) from the other subjects'."""
    cfg = cfg or DriftConfig()
    flags = []
    areas = np.array([v["area"] for v in videos.values()])
    ids = list(videos)
    for c, name in enumerate(class_names[1:], start=1):
        others = areas[:, c] > 0
        for i, vid in enumerate(ids):
            if not others[i] and others.sum() >= max(1, len(ids) // 2):
                flags.append(
                    _flag(
                        vid,
                        "project",
                        f"area_{name}",
                        0,
                        videos[vid]["frames"],
                        2.0,
                        f"{name} is missing from the whole video but present in {int(others.sum())} others",
                    )
                )
    subjects = sorted({v["subject"] for v in videos.values()})
    if len(subjects) >= 3:
        per_subject = np.array([areas[[videos[v]["subject"] == s for v in ids]].mean(0) for s in subjects])
        for c, name in enumerate(class_names[1:], start=1):
            col = per_subject[:, c]
            med = np.median(col)
            mad = 1.4826 * np.median(np.abs(col - med))
            if mad <= 0:
                continue
            for s, value in zip(subjects, col):
                z = (value - med) / mad
                if abs(z) > cfg.subject_z and abs(value - med) > 0.25 * med:
                    for vid in ids:
                        if videos[vid]["subject"] == s:
                            flags.append(
                                _flag(
                                    vid,
                                    "project",
                                    f"area_{name}",
                                    0,
                                    videos[vid]["frames"],
                                    abs(z) / cfg.subject_z,
                                    f"subject {s}: {name} covers {value:.1%} of frames, other subjects {med:.1%} (robust z {z:.1f})",
                                )
                            )
    return flags
