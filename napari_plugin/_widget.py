"""The annotation dock, in sections: project, videos, classes, navigation, jobs, status.

Everything it does is a library call (sonolabel.store, sonolabel.annotate, sonolabel.propagation,
sonolabel.review, sonolabel.export); this module only wires those calls to Qt widgets. The project, the
video's layers and autosave belong to the viewer's session (``_session.py``), shared with the review dock.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from qtpy.QtCore import QTimer
from magicgui.widgets import Container, FileEdit, Label, LineEdit, PushButton, Table
from qtpy.QtGui import QColor, QIcon, QPixmap
from qtpy.QtWidgets import QListWidget, QListWidgetItem

from sonolabel.errors import SonolabelError

from ._actions import CLASS_KEYS, SHORTCUTS, shortcut_of
from ._assist import AssistTool
from ._jobs import Jobs
from ._sections import compact, section, status_line
from ._session import session_for

# "est. mIoU": the quality `sonolabel check` estimated; "reviewed": flags reviewed / flags
TABLE_COLUMNS = ["video", "subject", "trial", "frames", "keys", "propagated", "est. mIoU", "reviewed"]


def with_key(text: str, action: str) -> str:
    return f"{text} ({shortcut_of(action)})"


class AnnotatorWidget(Jobs, Container):
    """Open a project, pick a video and a class, paint keyframes (saved as you go), propagate, check, export."""

    def __init__(self, napari_viewer):
        super().__init__(labels=False)
        self.viewer = napari_viewer
        self.session = session_for(napari_viewer)
        # project
        self.path = FileEdit(mode="d", label="project folder", filter="*.zarr", tooltip="a sonolabel project (a .zarr folder)")
        self.open_button = PushButton(text="Open project")
        self.recording = FileEdit(mode="r", label="recording", tooltip="a video, DICOM, TIFF stack, frame folder, HDF5 or Clarius export")
        self.subject = LineEdit(label="subject", tooltip="the subject id the recording belongs to (for splits)")
        self.import_fields = Container(widgets=[self.path, self.recording, self.subject], labels=True)
        self.import_button = PushButton(text="Import recording into project")
        # videos
        self.table = Table(value=pd.DataFrame(columns=TABLE_COLUMNS))
        self.open_video_button = PushButton(text="Open selected video")
        # classes
        self.classes = QListWidget()
        self.classes.setToolTip("pick the class to paint; the Alt-digit keys pick it from the canvas")
        # navigation
        self.prev_key = PushButton(text="◀ keyframe", tooltip=with_key("previous keyframe", "sonolabel:previous_keyframe"))
        self.next_key = PushButton(text="keyframe ▶", tooltip=with_key("next keyframe", "sonolabel:next_keyframe"))
        self.midpoint = PushButton(text="midpoint", tooltip=with_key("midway between the keyframes around this frame", "sonolabel:midpoint"))
        self.suggested = PushButton(text="next suggested", tooltip=with_key("the frame that most needs a keyframe", "sonolabel:next_suggested"))
        self.toggle_key = PushButton(text="mark / unmark keyframe", tooltip=with_key("make this frame a keyframe, or unmark it", "sonolabel:toggle_keyframe"))
        self.uncertainty = PushButton(text="uncertainty overlay", tooltip=with_key("show or hide where propagation is unsure", "sonolabel:toggle_uncertainty"))
        self.assist_button = PushButton(
            text="click assist", tooltip=with_key("scribble or click inside a structure: the image bounds the fill", "sonolabel:assist")
        )
        self.accept_fill = PushButton(text="accept fill", tooltip=with_key("paint the proposed fill (Ctrl-Z undoes it)", "sonolabel:accept_fill"))
        self.drop_fill = PushButton(text="drop fill", tooltip=with_key("drop the strokes and the proposal", "sonolabel:drop_fill"))
        self.draft_button = PushButton(
            text="draft", tooltip=with_key("read this frame from the video's keyframes (or the subject's labelled recording)", "sonolabel:draft")
        )

        def row(*ws) -> Container:
            c = Container(widgets=list(ws), layout="horizontal", labels=False)
            c.margins = (0, 0, 0, 0)
            return c

        navigation = Container(
            widgets=[
                row(self.prev_key, self.next_key),
                row(self.midpoint, self.suggested),
                row(self.toggle_key, self.uncertainty),
                row(self.assist_button, self.accept_fill, self.drop_fill),
                row(self.draft_button),
            ],
            labels=False,
        )
        jobs = Container(widgets=self._make_job_widgets(), labels=True)
        self.status = Label(value="open a project (a .zarr folder)")
        status_line(self.status)
        compact(self.table, 4)
        self.sections = {
            "project": section("Project", self.import_fields, Container(widgets=[self.open_button, self.import_button], layout="horizontal", labels=False)),
            "videos": section("Videos", self.table, self.open_video_button),
            "classes": section("Classes", self.classes),
            "navigation": section("Navigation", navigation),
            "jobs": section("Propagate, check, export", jobs),
            "status": section("Status", self.status),
        }
        for box in self.sections.values():
            self.native.layout().addWidget(box)
        self.native.layout().addStretch(1)
        self.classes.currentRowChanged.connect(self._pick_class)
        self.open_button.changed.connect(lambda: self.open_project(self.path.value))
        self.open_video_button.changed.connect(self._open_selected)
        self.import_button.changed.connect(lambda: self.import_recording(self.recording.value, self.subject.value))
        self.prev_key.changed.connect(lambda: self.go_keyframe(-1))
        self.next_key.changed.connect(lambda: self.go_keyframe(+1))
        self.midpoint.changed.connect(self.go_midpoint)
        self.suggested.changed.connect(self.go_suggested)
        self.toggle_key.changed.connect(self.toggle_keyframe)
        self.uncertainty.changed.connect(self.session.toggle_uncertainty)
        self.assist = AssistTool(self.session)
        self.assist_button.changed.connect(self.start_assist)
        self.accept_fill.changed.connect(self.accept_assist)
        self.drop_fill.changed.connect(self.assist.discard)
        self.draft_button.changed.connect(self.draft)
        self.native.setMinimumWidth(480)
        self.native.setMaximumWidth(540)
        self.session.project_changed.connect(self._project_changed)
        self.session.video_shown.connect(self._video_shown)
        self.session.message.connect(self._say)
        self.session.changed.connect(self._fill_table)
        self.session.flags_changed.connect(self._fill_table)
        from ._actions import register_actions

        register_actions(self)
        QTimer.singleShot(0, self._placed)  # once napari has docked this widget
        if self.session.project is not None:  # opened by another dock or the reader
            self._project_changed()
            if self.session.video is not None:
                self._video_shown(self.session.video.id)

    # -- the session's project and video -------------------------------------------------------
    @property
    def project(self):
        return self.session.project

    @property
    def video(self):
        return self.session.video

    @property
    def editor(self):
        return self.session.editor

    @property
    def labels_layer(self):
        return self.session.labels_layer

    @property
    def image_layer(self):
        return self.session.image_layer

    @property
    def current_frame(self) -> int:
        return self.session.current_frame

    def set_frame(self, t: int) -> None:
        self.session.set_frame(t)

    def _say(self, msg: str) -> None:
        self.status.value = msg
        self.viewer.status = msg

    def _report(self, error: Exception) -> None:
        self._say(error.one_line() if isinstance(error, SonolabelError) else f"{type(error).__name__}: {error}")

    def _placed(self) -> None:
        self.session.watch(self.native)

    def open_project(self, path: str | Path) -> None:
        """Open ``path`` for annotation in this viewer's session (the write lock is taken; a second viewer gets a
        clear refusal)."""
        self._placed()
        self.session.open(path)

    def _project_changed(self) -> None:
        if self.project is None:
            self.table.value = pd.DataFrame(columns=TABLE_COLUMNS)
            self.classes.clear()
            return
        with self.path.changed.blocked():
            self.path.value = str(self.project.path)
        if not str(self.dataset.value) or Path(self.dataset.value) == Path("."):
            self.dataset.value = str(Path(self.project.path).with_name(Path(self.project.path).stem + "-dataset.zarr"))
        self._fill_table()
        self._fill_classes()
        self.status.value = f"{len(self.project.video_ids())} videos; pick one and open it"

    def import_recording(self, source: str | Path, subject: str) -> str | None:
        """Import a recording into the open project (created when missing, and removed again if its first
        import fails, as on the command line) and show it."""
        from sonolabel.pipeline import discard_new_project, import_source, project_for_import

        if not subject:
            self.status.value = "give the subject id before importing"
            return None
        project, created = self.project, False
        if project is None:
            try:
                project, created = project_for_import(self.path.value)
            except SonolabelError as e:
                self._report(e)
                return None
        try:
            vid = import_source(project, source, subject)[0]
        except SonolabelError as e:
            if created:
                discard_new_project(project)
            self._report(e)
            return None
        self.session.adopt(project)
        self._fill_table()
        self.open_video(vid)
        return vid

    def _row(self, r: dict, progress: dict) -> list:
        return [
            r["video"],
            r["subject"],
            r["trial"],
            r["frames"],
            r["keyframes"],
            f"{100 * r['propagated']:.0f}%",
            "-" if r["check_miou"] is None else f"{r['check_miou']:.3f}",
            "-" if r["video"] not in progress else "{}/{}".format(*progress[r["video"]]),
        ]

    def _fill_table(self, video_id: str | None = None) -> None:
        """Fill the video table from the library's summary and review progress (only ``video_id``'s row, when
        given and already listed: what a save changes)."""
        from sonolabel.review import ReviewLog

        if self.project is None:
            return
        ids = [row[0] for row in self.table.data.to_list()] if self.table.shape[0] else []
        if video_id is not None and video_id in ids:
            log = ReviewLog(self.project)
            row = self._row(self.project.summary([video_id])[0], log.progress(video_id))
            self.table.data[ids.index(video_id)] = row
            return
        progress = ReviewLog(self.project).progress()
        self.table.value = pd.DataFrame([self._row(r, progress) for r in self.project.summary()], columns=TABLE_COLUMNS)

    def _fill_classes(self) -> None:
        self.classes.clear()
        pal = self.project.palette
        for i, name in enumerate(pal.names):
            pix = QPixmap(14, 14)
            pix.fill(QColor(*pal.colors[i]))
            key = f"   {CLASS_KEYS[i]}" if i < len(CLASS_KEYS) else ""
            self.classes.addItem(QListWidgetItem(QIcon(pix), f"{i}  {name}{key}"))
        # every class in view, no scrollbar: the list is as tall as its rows
        rows = self.classes.count()
        self.classes.setFixedHeight(self.classes.sizeHintForRow(0) * rows + 2 * self.classes.frameWidth() + 4 if rows else 0)

    def _pick_class(self, row: int) -> None:
        if self.labels_layer is not None and row >= 0:
            self.labels_layer.selected_label = row

    def pick_class(self, index: int) -> None:
        """Paint with class ``index`` from now on (the Alt-digit keys)."""
        if 0 <= index < self.classes.count():
            self.classes.setCurrentRow(index)

    def _open_selected(self) -> None:
        rows = self.table.native.selectionModel().selectedRows() if self.table.native.selectionModel() else []
        row = rows[0].row() if rows else 0
        data = self.table.data.to_list()
        if data:
            self.open_video(data[row][0])

    def open_video(self, video_id: str) -> None:
        """Show a video in the viewer (the session's layers, shared with the review dock)."""
        self.session.show(video_id)

    def _video_shown(self, video_id: str) -> None:
        self.classes.setCurrentRow(1)
        self.status.value = f"{video_id}: {self.video.n_frames} frames, keyframes {self.video.annotated_frames()}"

    # -- editing and navigation ----------------------------------------------------------------
    def save(self) -> list[int]:
        """Store every edited frame now (each atomically); returns the frames saved."""
        return self.session.save()  # the session's `changed` refreshes this video's row

    def go_keyframe(self, direction: int) -> None:
        keys = self.video.annotated_frames() if self.video else []
        t = self.current_frame
        cand = [k for k in keys if (k > t if direction > 0 else k < t)]
        if cand:
            self.set_frame(min(cand) if direction > 0 else max(cand))

    def go_midpoint(self) -> None:
        keys = self.video.annotated_frames() if self.video else []
        t = self.current_frame
        left = max([k for k in keys if k <= t], default=0)
        right = min([k for k in keys if k > t], default=self.video.n_frames - 1)
        self.set_frame((left + right) // 2)

    def go_suggested(self) -> None:
        """Go to the frame that most needs a keyframe; say so when the keyframes are dense enough to finish."""
        from sonolabel.propagation.config import FINE_KEYFRAME_GAP
        from sonolabel.propagation.suggest import keyframe_advice

        frames, ready = keyframe_advice(self.video, count=1)
        if frames:
            self.set_frame(frames[0])
        if ready:
            self.status.value = f"keyframes at most {FINE_KEYFRAME_GAP} frames apart: time to Finish (fine); more would cost more than they save"

    def start_assist(self) -> None:
        """Scribble or click with the selected class in the ``assist strokes`` layer; the fill is previewed."""
        if self.video is None:
            self.status.value = "open a video first"
            return
        cls = max(1, self.classes.currentRow())
        self.assist.start(cls)
        self.status.value = f"click assist: scribble inside a {self.project.palette.names[cls]} region, then accept the fill (Alt-A) or drop it (Alt-X)"

    def draft(self) -> None:
        """Propose this frame's labels read from the video's keyframes, or the subject's labelled recording (accept with Alt-A)."""
        source = self.assist.draft()
        if source is not None:
            self.status.value = f"draft from {source}: correct it, then accept it (Alt-A) or drop it (Alt-X)"

    def accept_assist(self) -> None:
        n = self.assist.accept()
        self.status.value = f"filled {n} px; Ctrl-Z in the labels layer undoes it" if n else "nothing to accept: scribble first"

    def toggle_keyframe(self) -> None:
        t = self.current_frame
        self.save()
        if t in self.video.annotated_frames():
            self.video.remove_annotation(t)
        else:
            self.video.save_annotation(t, np.asarray(self.editor.frame(t)))
        self.session.refresh()
        self._fill_table()

    def close_project(self) -> None:
        self.session.close()


__all__ = ["AnnotatorWidget", "SHORTCUTS"]
