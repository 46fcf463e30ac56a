"""The review dock: per-frame curves with flags shaded, the review queue, and accept / correct / exclude.

Everything is a library call (sonolabel.review); this module draws the library's curves on a Qt
canvas, moves the viewer to the frame clicked, and passes reviewer actions to the audit log. The project
and the video's layers are the viewer's session (``_session.py``), shared with the annotation dock: the
two docks show the same video.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from qtpy.QtCore import QTimer
from magicgui.widgets import ComboBox, Container, FileEdit, Label, LineEdit, PushButton, Table
from matplotlib.backends.backend_qtagg import FigureCanvasQTAgg
from matplotlib.figure import Figure

from sonolabel.errors import SonolabelError
from sonolabel.review import ReviewLog
from sonolabel.review.report import draw_signals
from sonolabel.review.signals import label_signals, signal_table

from ._actions import shortcut_of
from ._sections import compact, section, status_line
from ._session import session_for

QUEUE_COLUMNS = ["state", "severity", "frames", "class", "signal", "reason", "id"]
REGION_LAYER = "flag region"


class ReviewWidget(Container):
    """Curves over the whole video (click to go to a frame) and the queue of flags to review."""

    def __init__(self, napari_viewer):
        super().__init__(labels=False)
        self.viewer = napari_viewer
        self.session = session_for(napari_viewer)
        self.log: ReviewLog | None = None
        self.video_id: str | None = None
        self.signals: pd.DataFrame | None = None
        self.axes: list = []
        self.path = FileEdit(mode="d", label="project folder", filter="*.zarr")
        self.open_button = PushButton(text="Open project")
        # choices as a callable: napari resets a magicgui dock's choices whenever layers change
        self.videos = ComboBox(label="video", choices=lambda _: self.project.video_ids() if self.project is not None else [])
        self.table = Table(value=pd.DataFrame(columns=QUEUE_COLUMNS))
        self.who = LineEdit(label="reviewer", tooltip="your name, kept with every review action")
        self.note = LineEdit(label="note", tooltip="why: kept with the action in the audit log")
        self.accept = PushButton(text="Accept", tooltip="the labels are right: keep them")
        self.correct = PushButton(text="Corrected", tooltip="you corrected the frames in the annotation dock")
        self.exclude = PushButton(text="Exclude", tooltip="leave these frames out of exported datasets")
        self.reset = PushButton(text="Reset", tooltip="back to pending")
        self.next_flag = PushButton(text=f"Next flag ▶ ({shortcut_of('sonolabel:next_flag')})", tooltip="the next pending flag after this frame")
        self.status = Label(value="open a project with drift flags (`sonolabel drift PROJECT`)")
        status_line(self.status)
        self.figure = Figure(figsize=(4, 4))
        self.canvas = FigureCanvasQTAgg(self.figure)
        self.canvas.setMinimumHeight(240)
        self.canvas.setToolTip("per-frame signals with flagged spans shaded; click to go to a frame")
        compact(self.table, 4)
        self.sections = {
            "project": section("Project", Container(widgets=[self.path], labels=True), self.open_button),
            "video": section("Video", Container(widgets=[self.videos], labels=True), self.canvas),
            "flags": section("Flags", self.table, self.next_flag),
            "review": section(
                "Review the selected flag",
                Container(widgets=[self.who, self.note], labels=True),
                Container(widgets=[self.accept, self.correct, self.exclude, self.reset], layout="horizontal", labels=False),
            ),
            "status": section("Status", self.status),
        }
        for box in self.sections.values():
            self.native.layout().addWidget(box)
        self.canvas.mpl_connect("button_press_event", self._on_click)
        self.open_button.changed.connect(lambda: self.open_project(self.path.value))
        self.videos.changed.connect(lambda v: v and self.session.project is not None and self.session.show(v))
        for button, action in ((self.accept, "accept"), (self.correct, "correct"), (self.exclude, "exclude"), (self.reset, "reset")):
            button.changed.connect(lambda *_, a=action: self.review_selected(a))
        self.next_flag.changed.connect(self.go_next_flag)
        self.table.native.itemSelectionChanged.connect(self._go_selected)
        self.session.project_changed.connect(self._project_changed)
        self.session.video_shown.connect(self.show_video)
        self.session.flags_changed.connect(self._video_changed)  # not on saves: nothing shown here changes then
        self.session.message.connect(lambda msg: setattr(self.status, "value", msg))
        from ._actions import register_review_actions

        register_review_actions(self)
        QTimer.singleShot(0, self._placed)  # once napari has docked this widget
        if self.session.project is not None:  # opened by another dock or the reader
            self._project_changed()

    @property
    def project(self):
        return self.session.project

    # -- project, video, curves ------------------------------------------------------------
    def _report(self, error: Exception) -> None:
        msg = error.one_line() if isinstance(error, SonolabelError) else f"{type(error).__name__}: {error}"
        self.status.value = msg
        self.viewer.status = msg

    def _placed(self) -> None:
        self.session.watch(self.native)

    def open_project(self, path: str | Path) -> None:
        """Open ``path`` in the viewer's session (for every sonolabel dock) and show its first flagged video."""
        self._placed()
        self.session.open(path)

    def _project_changed(self) -> None:
        self.log = ReviewLog(self.project) if self.project is not None else None
        ids = self.project.video_ids() if self.project is not None else []
        with self.videos.changed.blocked():
            self.videos.reset_choices()
        if self.project is None:
            self.video_id = None
            return
        with self.path.changed.blocked():
            self.path.value = str(self.project.path)
        if self.session.video is not None:
            self.show_video(self.session.video.id)
        elif ids:
            flagged = [f["video"] for f in self.log.flags()]
            self.session.show(flagged[0] if flagged else ids[0])

    def show_video(self, video_id: str) -> None:
        """Draw the video's curves and fill its queue (the session shows the video itself)."""
        v = self.project.video(video_id)
        self.video_id = video_id
        with self.videos.changed.blocked():
            self.videos.value = video_id
        signals = Path(self.project.path) / "review" / f"{video_id}.csv"
        self.signals = pd.read_csv(signals) if signals.exists() else signal_table(v, label_signals(v))
        self.redraw()
        self._fill_queue()

    def _video_changed(self, video_id: str) -> None:
        """Flags or review states of the shown video changed (a drift run, a check, a review action): read them again."""
        if video_id == self.video_id and self.project is not None:
            self.show_video(video_id)

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
        return self.log.queue(None, video=self.video_id)

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
        self.session.flags_changed.emit(self.video_id)  # the queue, the curves, the timeline and the video table

    def close_project(self) -> None:
        self.session.close()
