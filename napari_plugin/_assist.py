"""Proposals in the viewer: the click assist and drafts.

Click assist: scribble (or click) with a class in the ``assist strokes`` layer and see the library's fill
(``sonolabel.assist.fill``) outlined in ``assist preview``. Draft: the current frame read from the same
subject's other recording (``sonolabel.propagation.draft``). Either is accepted with Alt-A (one undo step
in the labels layer, saved like a brush stroke) or dropped with Alt-X; nothing is stored before that."""

from __future__ import annotations

import numpy as np
from qtpy.QtCore import QTimer

from sonolabel.assist import fill
from sonolabel.errors import SonolabelError

from ._layers import label_colormap

STROKES, PREVIEW = "assist strokes", "assist preview"


class AssistTool:
    """Click assist for the session's video, on the current frame."""

    def __init__(self, session):
        self.session = session
        self.proposal: np.ndarray | None = None  # the frame's labels as proposed (H, W)
        self.cls = 1
        self.frame: int | None = None
        # napari announces a paint before it writes the pixels: preview once the stroke is in (and once per burst)
        self._pending = QTimer()
        self._pending.setSingleShot(True)
        self._pending.setInterval(30)
        self._pending.timeout.connect(self.preview)

    def _layer(self, name: str):
        layers = self.session.viewer.layers
        return layers[name] if name in layers else None

    def start(self, cls: int) -> None:
        """Scribble with class ``cls`` from now on: the strokes layer is selected, in paint mode."""
        s = self.session
        if s.video is None:
            return
        self.cls = int(cls)
        strokes = self._layer(STROKES)
        if strokes is None:
            colors = label_colormap(s.project.palette)
            strokes = s.viewer.add_labels(np.zeros((s.video.height, s.video.width), np.uint8), name=STROKES, colormap=colors, opacity=0.9)
            strokes.events.paint.connect(lambda _: self._pending.start())
        strokes.selected_label = self.cls
        strokes.brush_size = max(3, round(8 * s.video.width / 480))
        strokes.mode = "paint"
        s.viewer.layers.selection.active = strokes

    def preview(self) -> np.ndarray | None:
        """Fill from the strokes on the current frame and outline the proposal; returns it."""
        s = self.session
        strokes = self._layer(STROKES)
        if s.video is None or strokes is None:
            return None
        painted = np.asarray(strokes.data)
        if not painted.any():
            self.proposal = None
            return None
        values, counts = np.unique(painted[painted > 0], return_counts=True)
        self.cls = int(values[np.argmax(counts)])
        self.frame = s.current_frame
        current = np.asarray(s.editor.frame(self.frame))
        proposal = current.copy()
        proposal[fill(np.asarray(s.video.frames[self.frame]), current, painted > 0, self.cls)] = self.cls
        self._show(proposal)
        return self.proposal

    def draft(self) -> str | None:
        """Propose the current frame's labels: the U-Net's prediction when the video has one, else read from the
        video's keyframes, else from the same subject's other recording; returns where the draft came from
        (None, with the reason as a message, when there is no source)."""
        from sonolabel.propagation.draft import draft_for

        s = self.session
        if s.video is None:
            return None
        self.frame = s.current_frame
        try:
            labels, source = draft_for(s.video, self.frame)
        except SonolabelError as e:
            s.message.emit(e.one_line())
            return None
        self._show(labels)
        return source

    def _show(self, proposal: np.ndarray) -> None:
        """Outline where ``proposal`` differs from the frame's labels now, in the preview layer."""
        s = self.session
        self.proposal = np.asarray(proposal, np.uint8)
        changed = np.where(self.proposal != np.asarray(s.editor.frame(self.frame)), self.proposal, 0)
        preview = self._layer(PREVIEW)
        if preview is None:
            preview = s.viewer.add_labels(changed, name=PREVIEW, colormap=label_colormap(s.project.palette), opacity=1.0)
            preview.contour = 2
        else:
            preview.data = changed

    def accept(self) -> int:
        """Paint the proposal into the labels (one undo step; autosaved); returns the pixels changed."""
        s = self.session
        if self.proposal is None or s.labels_layer is None:
            return 0
        ys, xs = np.nonzero(self.proposal != np.asarray(s.editor.frame(self.frame)))
        s.labels_layer.data_setitem((np.full(ys.shape, self.frame), ys, xs), self.proposal[ys, xs])
        self.discard()
        return len(ys)

    def discard(self) -> None:
        """Drop the strokes and the proposal."""
        self.proposal = None
        for name in (STROKES, PREVIEW):
            layer = self._layer(name)
            if layer is not None:
                layer.data = np.zeros_like(layer.data)
        s = self.session
        if s.labels_layer is not None:
            s.viewer.layers.selection.active = s.labels_layer
