"""The review dock: per-frame curves with flags shaded, the review queue, and accept / correct / exclude.

Everything is a library call (sonolabel.review); this module draws the library's curves on a Qt
canvas, moves the viewer to the frame clicked, and passes reviewer actions to the audit log.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from magicgui.widgets import ComboBox, Container, FileEdit, Label, LineEdit, PushButton, Table
from matplotlib.backends.backend_qtagg import FigureCanvasQTAgg
from matplotlib.figure import Figure

from sonolabel.errors import SonolabelError
from sonolabel.review import ReviewLog
from sonolabel.review.report import draw_signals
from sonolabel.review.signals import label_signals, signal_table
from sonolabel.store import Project

from ._layers import label_colormap

QUEUE_COLUMNS = ["state", "severity", "frames", "class", "signal", "reason", "id"]
REGION_LAYER = "flag region"


class ReviewWidget(Container):
    """Curves over the whole video (click to go to a frame) and the queue of flags to review."""

    def __init__(self, napari_viewer, project: Project | None = None):
        super().__init__(labels=False)
        self.viewer = napari_viewer
        self.project, self._owns_project = project, False
        self.log: ReviewLog | None = ReviewLog(project) if project is not None else None
        self.video_id: str | None = None
        self.signals: pd.DataFrame | None = None
        self.axes: list = []
        self.path = FileEdit(mode="d", label="project", filter="*.zarr")
        self.open_button = PushButton(text="Open project")
        self.videos = ComboBox(label="video", choices=[])
        self.table = Table(value=pd.DataFrame(columns=QUEUE_COLUMNS))
        self.who, self.note = LineEdit(label="reviewer"), LineEdit(label="note")
        self.accept, self.correct = PushButton(text="Accept"), PushButton(text="Corrected")
        self.exclude, self.reset = PushButton(text="Exclude"), PushButton(text="Reset")
        self.next_flag = PushButton(text="Next flag ▶ (Alt-F)")
        self.status = Label(value="open a project with drift flags (`sonolabel drift PROJECT`)")
        self.figure = Figure(figsize=(4, 4))
        self.canvas = FigureCanvasQTAgg(self.figure)
        self.canvas.setMinimumHeight(260)
        self.extend(
            [
                self.path,
                self.open_button,
                self.videos,
                self.table,
                self.who,
                self.note,
                self.accept,
                self.correct,
                self.exclude,
                self.reset,
                self.next_flag,
                self.status,
            ]
        )
        self.native.layout().insertWidget(3, self.canvas)
        self.canvas.mpl_connect("button_press_event", self._on_click)
        self.open_button.changed.connect(lambda: self.open_project(self.path.value))
        self.videos.changed.connect(lambda v: v and self.show_video(v))
        for button, action in ((self.accept, "accept"), (self.correct, "correct"), (self.exclude, "exclude"), (self.reset, "reset")):
            button.changed.connect(lambda *_, a=action: self.review_selected(a))
        self.next_flag.changed.connect(self.go_next_flag)
        self.table.native.itemSelectionChanged.connect(self._go_selected)
        if project is not None:
            self.path.value = str(project.path)
            self._fill_videos()
        from ._actions import register_review_actions

        register_review_actions(self)

    # -- project, video, curves ------------------------------------------------------------
    def _report(self, error: Exception) -> None:
        msg = error.one_line() if isinstance(error, SonolabelError) else f"{type(error).__name__}: {error}"
        self.status.value = msg
        self.viewer.status = msg

    def open_project(self, path: str | Path) -> None:
        if self._owns_project and self.project is not None:
            self.project.close()
        try:
            self.project, self._owns_project = Project.open(path, mode="a"), True
        except SonolabelError as e:
            self._report(e)
            return
        self.log = ReviewLog(self.project)
        self._fill_videos()

    def _fill_videos(self) -> None:
        ids = self.project.video_ids()
        with self.videos.changed.blocked():
            self.videos.choices = ids
            if ids:
                flagged = [f["video"] for f in self.log.flags()]
                self.videos.value = flagged[0] if flagged else ids[0]
        if ids:
            self.show_video(self.videos.value)

    def show_video(self, video_id: str) -> None:
        """Draw the video's curves and fill the queue; shows the video in the viewer when it is not there yet."""
        v = self.project.video(video_id)
        self.video_id = video_id
        signals = Path(self.project.path) / "review" / f"{video_id}.csv"
        self.signals = pd.read_csv(signals) if signals.exists() else signal_table(v, label_signals(v))
        self._ensure_layers(v)
        self.redraw()
        self._fill_queue()

    def _ensure_layers(self, video) -> None:
        names = {layer.name for layer in self.viewer.layers}
        if video.id not in names and f"{video.id} labels" not in names:
            self.viewer.add_image(video.lazy_frames(), name=video.id, colormap="gray")
            self.viewer.add_labels(video.lazy_labels(), name=f"{video.id} review", colormap=label_colormap(self.project.palette), opacity=0.4)

    def redraw(self) -> None:
        flags = self.log.flags(self.video_id)
        keyframes = self.project.video(self.video_id).annotated_frames()
        w, h = self.canvas.width(), self.canvas.height()
        if w > 10 and h > 10:  # follow the dock's size even before Qt sends a resize event
            self.figure.set_size_inches(w / self.figure.dpi, h / self.figure.dpi)
        self.axes = draw_signals(self.figure, self.signals, flags, keyframes, width=self.project.video(self.video_id).width)
        self.figure.tight_layout()
        self.canvas.draw()

    def _on_click(self, event) -> None:
        if event.inaxes is None or event.xdata is None:
            return
        self.go_to(int(round(event.xdata)))

    def go_to(self, frame: int) -> None:
        n = self.project.video(self.video_id).n_frames
        self.viewer.dims.set_current_step(0, int(np.clip(frame, 0, n - 1)))

    # -- queue -----------------------------------------------------------------------------
    def _queue(self) -> pd.DataFrame:
        q = self.log.queue(None)
        return q[q["video"] == self.video_id].reset_index(drop=True)

    def _fill_queue(self) -> None:
        q = self._queue()
        rows = [
            [
                r["state"],
                f"{r['severity']:.2f}",
                f"{r['start']}-{r['stop'] - 1}",
                r["class"] if isinstance(r["class"], str) else "",
                r["signal"],
                r["reason"],
                r["id"],
            ]
            for r in q.to_dict("records")
        ]
        self.table.value = pd.DataFrame(rows, columns=QUEUE_COLUMNS)
        pending = int((q["state"] == "pending").sum())
        self.status.value = f"{self.video_id}: {len(q)} flags, {pending} pending"

    def _selected_row(self) -> int | None:
        rows = self.table.native.selectionModel().selectedRows() if self.table.native.selectionModel() else []
        if rows:
            return rows[0].row()
        items = self.table.native.selectedItems()
        return items[0].row() if items else None

    def _go_selected(self) -> None:
        row = self._selected_row()
        q = self._queue()
        if row is not None and row < len(q):
            self.go_to(int(q.loc[row, "start"]))
            self.outline(q.loc[row, "box"])

    def outline(self, box) -> None:
        """Outline a flag's region ([y0, x0, y1, x1]) on every frame, in the ``flag region`` layer; a flag
        without a region clears it."""
        rect = [np.array([[box[0], box[1]], [box[2], box[3]]], float)] if isinstance(box, (list, tuple)) else []
        if REGION_LAYER in self.viewer.layers:
            layer = self.viewer.layers[REGION_LAYER]
            layer.data = []
            if rect:
                layer.add_rectangles(rect, edge_color="yellow", face_color="transparent", edge_width=3)
        elif rect:
            self.viewer.add_shapes(rect, shape_type="rectangle", edge_color="yellow", face_color="transparent", edge_width=3, name=REGION_LAYER)

    def select_flag(self, row: int) -> None:
        self.table.native.selectRow(row)

    def go_next_flag(self) -> None:
        """Select the most severe pending flag after the current frame (wrapping around) and go to it."""
        q = self._queue()
        pending = q[q["state"] == "pending"]
        if pending.empty:
            self.status.value = "no pending flags in this video"
            return
        here = int(self.viewer.dims.current_step[0])
        later = pending[pending["start"] > here]
        row = int((later if not later.empty else pending).sort_values("start").index[0])
        self.select_flag(row)
        self.go_to(int(q.loc[row, "start"]))
        self.outline(q.loc[row, "box"])

    def review_selected(self, action: str) -> None:
        row = self._selected_row()
        q = self._queue()
        if row is None or row >= len(q):
            self.status.value = "select a flag in the table first"
            return
        f = q.loc[row]
        try:
            self.log.record(action, self.video_id, int(f["start"]), int(f["stop"]), who=self.who.value or None, note=self.note.value, flag=f["id"])
        except SonolabelError as e:
            self._report(e)
            return
        self.note.value = ""
        self._fill_queue()
        self.redraw()

    def close_project(self) -> None:
        if self._owns_project and self.project is not None:
            self.project.close()
        self.project = None
