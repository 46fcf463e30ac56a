"""Where the ultrasound image sits in a recording's frames, and which frames repeat.

Recordings hold the B-mode image in a box: inside black borders (most exports), or among a
scanner's user interface (screen captures: text, a grey-level bar, depth ticks, coloured marks on
a black or grey background). The UI is static while the B-mode image changes from frame to frame,
so with several frames the box is the main block of pixels that change over time
(:func:`detect_moving_box`); a single image, or frames that never change, fall back to the main
block of bright pixels (:func:`detect_bright_box`). A capture recorded faster than the scanner
repeats frames: :func:`repeated_frames` finds them from consecutive differences.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import InputError

MIN_SIDE = 16  # a box narrower than this is no ultrasound image


@dataclass(frozen=True)
class Crop:
    """The ultrasound box: ``x, y`` of its top-left corner, ``w, h`` its size, in source pixels."""

    x: int
    y: int
    w: int
    h: int

    @classmethod
    def parse(cls, text: str) -> "Crop":
        try:
            x, y, w, h = (int(v) for v in text.split(","))
        except ValueError:
            raise InputError(f"--crop must be x,y,w,h in pixels, got {text!r}") from None
        if w <= 0 or h <= 0 or x < 0 or y < 0:
            raise InputError(f"--crop {text!r} needs x, y >= 0 and w, h > 0")
        return cls(x, y, w, h)

    def check(self, height: int, width: int, source: Path) -> None:
        if self.x + self.w > width or self.y + self.h > height:
            raise InputError(f"crop {self.as_list()} (x,y,w,h) falls outside the {width}x{height} frames", source)

    def apply(self, frame: np.ndarray) -> np.ndarray:
        return frame[self.y : self.y + self.h, self.x : self.x + self.w]

    def union_with_mask(self, mask: np.ndarray) -> "Crop":
        """The smallest box holding this one and every labelled pixel of ``mask``: a crop never cuts a label."""
        ys, xs = np.nonzero(mask)
        if ys.size == 0:
            return self
        x0, y0 = min(self.x, int(xs.min())), min(self.y, int(ys.min()))
        x1, y1 = max(self.x + self.w, int(xs.max()) + 1), max(self.y + self.h, int(ys.max()) + 1)
        return Crop(x0, y0, x1 - x0, y1 - y0)

    def as_list(self) -> list[int]:
        return [self.x, self.y, self.w, self.h]


def _main_run(profile: np.ndarray, min_fraction: float, max_gap: float = 0.25) -> tuple[int, int]:
    """The span of content along one axis: runs above ``min_fraction`` merged across gaps shorter
    than ``max_gap`` of the axis (dark bands inside the image), keeping the run with most content."""
    on = np.append(profile >= min_fraction, False)
    runs, start = [], None
    for i, v in enumerate(on):
        if v and start is None:
            start = i
        elif not v and start is not None:
            if runs and start - runs[-1][1] <= max_gap * len(profile):
                runs[-1] = (runs[-1][0], i)
            else:
                runs.append((start, i))
            start = None
    if not runs:
        return 0, len(profile)
    return max(runs, key=lambda r: profile[r[0] : r[1]].sum())


def _box_of(content: np.ndarray, col_fraction: float, row_fraction: float, max_gap: float = 0.25) -> Crop | None:
    """The main block of a boolean content map: the main run of columns, then of rows within it."""
    x0, x1 = _main_run(content.mean(axis=0), col_fraction, max_gap)
    y0, y1 = _main_run(content[:, x0:x1].mean(axis=1), row_fraction, max_gap)
    if x1 - x0 < MIN_SIDE or y1 - y0 < MIN_SIDE:
        return None
    return Crop(x0, y0, x1 - x0, y1 - y0)


def detect_bright_box(frames: np.ndarray, threshold: int = 10, min_fraction: float = 0.05) -> Crop | None:
    """The box of image content inside black borders: rows and columns where at least ``min_fraction``
    of the temporal maximum exceeds ``threshold``. Labels or icons in the border do not widen it;
    dark bands inside the image (anechoic regions, shadows) do not split it."""
    peak = frames.max(axis=0) if frames.ndim == 3 else frames
    return _box_of(peak > threshold, min_fraction, min_fraction)


def detect_moving_box(frames: np.ndarray, noise: float = 2.0, edge: float = 0.5) -> Crop | None:
    """The box of pixels that change over time (B-mode among a static scanner UI), or None.

    A pixel is live when its temporal standard deviation exceeds ``noise`` grey levels. The box
    spans the main run of columns whose live share reaches ``edge`` of the typical share inside
    the image, then the same for rows within those columns. Text that changes (a clock) is too
    small a share of any column or row to widen the box, and live speckle fills the B-mode box
    to its edges even where its near field is dark.
    """
    if frames.ndim != 3 or len(frames) < 3:
        return None
    live = frames.astype(np.float32).std(axis=0) > noise
    if live.mean() < 0.01:
        return None
    cols = live.mean(axis=0)
    typical = float(np.quantile(cols[cols > 0], 0.9)) if (cols > 0).any() else 0.0
    x0, x1 = _main_run(cols, edge * typical)
    if x1 - x0 < MIN_SIDE:
        return None
    rows = live[:, x0:x1].mean(axis=1)
    typical = float(np.quantile(rows[rows > 0], 0.9)) if (rows > 0).any() else 0.0
    y0, y1 = _main_run(rows, edge * typical)
    if y1 - y0 < MIN_SIDE:
        return None
    return Crop(x0, y0, x1 - x0, y1 - y0)


def detect_box(frames: np.ndarray, threshold: int = 10, min_fraction: float = 0.05) -> Crop:
    """The ultrasound box of a grey image ``(H, W)`` or frame stack ``(T, H, W)``.

    With frames that change, the box of live pixels (:func:`detect_moving_box`), which finds
    the image among a scanner's UI on any background; otherwise the bright block inside black
    borders (:func:`detect_bright_box`); the whole frame when neither finds one.
    """
    frames = np.asarray(frames)
    if frames.ndim not in (2, 3):
        raise ValueError(f"expected grey (H, W) or (T, H, W) frames, got shape {frames.shape}")
    box = detect_moving_box(frames) if frames.ndim == 3 else None
    box = box or detect_bright_box(frames, threshold, min_fraction)
    return box or Crop(0, 0, frames.shape[-1], frames.shape[-2])


def frame_difference(a: np.ndarray, b: np.ndarray) -> float:
    """Mean absolute grey-level difference of two frames (the measure duplicates are found by)."""
    return float(np.abs(a.astype(np.int16) - b.astype(np.int16)).mean())


def repeated_frames(differences: np.ndarray, ratio: float = 0.2, floor: float = 0.25) -> np.ndarray:
    """Which frames repeat their predecessor, from ``differences[i]`` = difference of frame i to i-1
    (``differences[0]`` is ignored). A repeat differs from its predecessor by less than ``ratio``
    of what distinct consecutive frames typically differ by (the 90th percentile, robust to up to
    most frames being repeats), or by less than ``floor`` grey levels (lossless copies)."""
    d = np.asarray(differences, np.float64)
    out = np.zeros(len(d), bool)
    if len(d) < 2:
        return out
    typical = float(np.quantile(d[1:], 0.9))
    out[1:] = (d[1:] < ratio * typical) | (d[1:] < floor)
    return out
