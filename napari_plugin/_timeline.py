"""The timeline under the frame slider: the library's :func:`~sonolabel.review.timeline.video_timeline`
drawn with QPainter, one pixel column per stretch of frames.

Top band: where labels come from (propagated, imported, unlabelled), with keyframes as white ticks and
corrected frames as orange ones. Middle band: drift flags coloured by severity (outlined only once
reviewed). Bottom band: propagation's confidence, the lowest frame per pixel column, so that a dip of one
frame stays visible on a long video. Click or drag to go to a frame.
"""

from __future__ import annotations

import numpy as np
from qtpy.QtCore import QPointF, QRectF, Qt, QTimer
from qtpy.QtGui import QColor, QPainter, QPen, QPixmap, QPolygonF
from qtpy.QtWidgets import QSizePolicy, QWidget

from sonolabel.review.timeline import Timeline, video_timeline
from sonolabel.store import LabelSource

SOURCE_COLORS = {
    LabelSource.NONE: QColor(60, 60, 64),
    LabelSource.PROPAGATED: QColor(70, 130, 180),
    LabelSource.IMPORTED: QColor(60, 160, 150),
    LabelSource.ANNOTATED: QColor(70, 130, 180),
    LabelSource.CORRECTED: QColor(70, 130, 180),
}
KEYFRAME, CORRECTED, CURSOR = QColor(255, 255, 255), QColor(255, 150, 30), QColor(255, 255, 0)
LEFT = 78  # room for the band names
HEIGHT = 84
CONFIDENCE_FLOOR = 0.8  # the confidence band spans 0.8 (bottom; anything lower sits there) to 1 (top): typical
# propagated frames sit at 0.9-0.95 and fall as boundaries blur
BANDS = (("labels", 0.0, 0.26), ("flags", 0.3, 0.52), ("confidence", 0.56, 1.0))
TOOLTIP = (
    "labels: blue propagated, teal imported, grey unlabelled; white ticks keyframes, orange corrected\n"
    "flags: yellow to red by severity, outlined once reviewed\n"
    "confidence: propagation's mean class-probability margin per frame, 0.8 (bottom) to 1 (top); lowest per pixel column\n"
    "click or drag to go to a frame"
)


def severity_color(severity: float) -> QColor:
    """Yellow for a mild flag, red for a severe one (severity clipped to 0..1)."""
    s = float(np.clip(severity if np.isfinite(severity) else 1.0, 0, 1))
    return QColor(255, int(220 * (1 - s)), 0)


def column_minimum(values: np.ndarray, columns: int) -> np.ndarray:
    """The lowest finite value of ``values`` in each of ``columns`` equal stretches (NaN where none)."""
    n = len(values)
    if n == 0 or columns <= 0:
        return np.full(max(columns, 0), np.nan)
    starts = (np.arange(columns) * n) // columns  # non-decreasing: a column narrower than a frame reads that frame
    out = np.minimum.reduceat(np.where(np.isfinite(values), values, np.inf), starts)
    return np.where(np.isfinite(out), out, np.nan)


class TimelineWidget(QWidget):
    """The open video along time; redrawn when the session's video changes and as the frame moves."""

    def __init__(self, session):
        super().__init__()
        self.session = session
        self.timeline: Timeline | None = None
        self.setMinimumHeight(HEIGHT)
        self.setMaximumHeight(HEIGHT)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Fixed)
        self.setToolTip(TOOLTIP)
        self._cache: QPixmap | None = None  # everything but the cursor; a frame step only moves the cursor
        self._pending = QTimer(self)
        self._pending.setSingleShot(True)
        self._pending.timeout.connect(self.refresh)
        session.changed.connect(lambda _: self._pending.start(0))  # a burst of changes (saves, batches) reads once
        session.flags_changed.connect(lambda _: self._pending.start(0))
        session.viewer.dims.events.current_step.connect(lambda _: self.update())

    def refresh(self) -> None:
        """Re-read the timeline of the session's video (per-frame columns and flags only) and redraw."""
        self._pending.stop()
        video = self.session.video
        self.timeline = video_timeline(video) if video is not None else None
        self._cache = None
        self.update()

    def resizeEvent(self, event) -> None:
        self._cache = None
        super().resizeEvent(event)

    # -- geometry -------------------------------------------------------------------------------
    def _span(self) -> tuple[float, float]:
        return float(LEFT), float(max(self.width() - 6, LEFT + 1))

    def x_of(self, frame: float) -> float:
        a, b = self._span()
        n = max(self.timeline.n_frames if self.timeline else 1, 1)
        return a + (b - a) * frame / n

    def frame_at(self, x: float) -> int:
        a, b = self._span()
        n = self.timeline.n_frames if self.timeline else 1
        return int(np.clip((x - a) / (b - a) * n, 0, n - 1))

    # -- drawing ------------------------------------------------------------------------------
    def paintEvent(self, event) -> None:
        ratio = self.devicePixelRatioF()
        if self._cache is None or self._cache.size() != self.size() * ratio:
            self._cache = QPixmap(self.size() * ratio)
            self._cache.setDevicePixelRatio(ratio)
            p = QPainter(self._cache)
            try:
                self._draw(p)
            finally:
                p.end()
        p = QPainter(self)
        try:
            p.drawPixmap(0, 0, self._cache)
            if self.timeline is not None and self.timeline.n_frames:
                p.setPen(QPen(CURSOR, 1))
                x = self.x_of(self.session.current_frame + 0.5)
                p.drawLine(QPointF(x, 0), QPointF(x, self.height()))
        finally:
            p.end()

    def draw_ms(self) -> float:
        """Milliseconds to draw the whole timeline once at the widget's size (what a refresh costs; a frame step
        only draws the cursor over the result)."""
        import time

        t0 = time.perf_counter()
        self._cache = None
        pix = QPixmap(self.size())
        p = QPainter(pix)
        try:
            self._draw(p)
        finally:
            p.end()
        return 1e3 * (time.perf_counter() - t0)

    def _band(self, name: str) -> tuple[float, float]:
        h = self.height() - 4
        _, lo, hi = next(b for b in BANDS if b[0] == name)
        return 2 + lo * h, 2 + hi * h

    def _draw(self, p: QPainter) -> None:
        p.fillRect(QRectF(0, 0, self.width(), self.height()), QColor(38, 41, 48))
        if self.timeline is None or self.timeline.n_frames == 0:
            p.setPen(QColor(200, 200, 200))
            p.drawText(QRectF(0, 0, self.width(), self.height()), Qt.AlignmentFlag.AlignCenter, "open a video to see its timeline")
            return
        tl = self.timeline
        p.setPen(QColor(190, 190, 190))
        for name, _, _ in BANDS:
            y0, y1 = self._band(name)
            p.drawText(QRectF(4, y0, LEFT - 8, y1 - y0), Qt.AlignmentFlag.AlignVCenter, name)
        y0, y1 = self._band("labels")
        for start, stop, source in tl.runs():
            x0, x1 = self.x_of(start), self.x_of(stop)
            p.fillRect(QRectF(x0, y0, max(x1 - x0, 1.0), y1 - y0), SOURCE_COLORS.get(source, SOURCE_COLORS[LabelSource.NONE]))
        corrected = set(tl.corrected)
        for t in tl.keyframes:
            p.setPen(QPen(CORRECTED if t in corrected else KEYFRAME, 2))
            x = self.x_of(t + 0.5)
            p.drawLine(QPointF(x, y0), QPointF(x, y1))
        f0, f1 = self._band("flags")
        for f in sorted(tl.flags, key=lambda f: f["severity"]):
            rect = QRectF(self.x_of(f["start"]), f0, max(self.x_of(f["stop"]) - self.x_of(f["start"]), 2.0), f1 - f0)
            color = severity_color(f["severity"])
            if f["state"] == "pending":
                p.fillRect(rect, color)
            else:
                p.setPen(QPen(color, 1))
                p.drawRect(rect)
        self._draw_confidence(p)

    def _draw_confidence(self, p: QPainter) -> None:
        c0, c1 = self._band("confidence")
        a, b = self._span()
        columns = int(b - a)
        low = column_minimum(self.timeline.confidence, columns)
        p.fillRect(QRectF(a, c0, b - a, c1 - c0), QColor(30, 32, 38))
        ok = np.isfinite(low)
        if not ok.any():
            return
        xs = a + np.arange(columns) + 0.5
        ys = c1 - np.clip((low - CONFIDENCE_FLOOR) / (1 - CONFIDENCE_FLOOR), 0, 1) * (c1 - c0)
        p.setPen(QPen(QColor(120, 220, 120), 1))
        # one polyline per run of known values
        breaks = np.flatnonzero(np.diff(ok.astype(np.int8))) + 1
        for seg in np.split(np.arange(columns), breaks):
            if len(seg) and ok[seg[0]]:
                p.drawPolyline(QPolygonF([QPointF(float(xs[i]), float(ys[i])) for i in seg]))

    # -- mouse -------------------------------------------------------------------------------
    def mousePressEvent(self, event) -> None:
        self._go(event)

    def mouseMoveEvent(self, event) -> None:
        if event.buttons() & Qt.MouseButton.LeftButton:
            self._go(event)

    def _go(self, event) -> None:
        if self.timeline is not None:
            self.session.set_frame(self.frame_at(event.position().x()))
