"""The annotation dock: project, videos, classes, keyframe navigation, autosave and propagation.

Everything it does is a library call (sonolabel.store, sonolabel.annotate, sonolabel.propagation);
this module only wires those calls to napari layers, Qt widgets and a background worker.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from magicgui.widgets import Container, FileEdit, Label, LineEdit, PushButton, Table
from qtpy.QtCore import QTimer
from qtpy.QtGui import QColor, QIcon, QPixmap
from qtpy.QtWidgets import QListWidget, QListWidgetItem

from sonolabel.annotate import LabelsEditor
from sonolabel.errors import SonolabelError
from sonolabel.store import LabelSource, Project

from ._layers import label_colormap

AUTOSAVE_MS = 300
TABLE_COLUMNS = ["video", "subject", "trial", "frames", "keyframes", "propagated", "check mIoU"]


class AnnotatorWidget(Container):
    """Open a project, pick a video and a class, paint keyframes (saved as you go), propagate."""

    def __init__(self, napari_viewer):
        super().__init__(labels=False)
        self.viewer = napari_viewer
        self.project: Project | None = None
        self.video = None
        self.editor: LabelsEditor | None = None
        self.image_layer = self.labels_layer = None
        self.worker = None
        self.path = FileEdit(mode="d", label="project", filter="*.zarr")
        self.open_button = PushButton(text="Open project")
        self.table = Table(value=pd.DataFrame(columns=TABLE_COLUMNS))
        self.open_video_button = PushButton(text="Open selected video")
        self.prev_key, self.next_key = PushButton(text="◀ keyframe"), PushButton(text="keyframe ▶")
        self.midpoint, self.suggested = PushButton(text="midpoint"), PushButton(text="next suggested")
        self.toggle_key = PushButton(text="mark / unmark keyframe")
        self.propagate_button, self.cancel_button = PushButton(text="Propagate"), PushButton(text="Cancel")
        self.check_button = PushButton(text="Check keyframes", tooltip="read each keyframe from its neighbours: estimated quality, misdrawn keyframes")
        self.status = Label(value="open a project (a .zarr folder)")
        self.recording = FileEdit(mode="r", label="recording", tooltip="a video, DICOM, TIFF stack, frame folder, HDF5 or Clarius export")
        self.subject = LineEdit(label="subject", tooltip="the subject id the recording belongs to (for splits)")
        self.import_fields = Container(widgets=[self.recording, self.subject], labels=True)  # labelled: two boxes told apart
        self.import_button = PushButton(text="Import recording into project")
        self.classes = QListWidget()
        self.extend(
            [
                self.path,
                self.open_button,
                self.import_fields,
                self.import_button,
                self.table,
                self.open_video_button,
                self.prev_key,
                self.next_key,
                self.midpoint,
                self.suggested,
                self.toggle_key,
                self.propagate_button,
                self.cancel_button,
                self.check_button,
                self.status,
            ]
        )
        self.native.layout().insertWidget(self.index(self.open_video_button) + 1, self.classes)
        self.classes.currentRowChanged.connect(self._pick_class)
        self.open_button.changed.connect(lambda: self.open_project(self.path.value))
        self.open_video_button.changed.connect(self._open_selected)
        self.import_button.changed.connect(lambda: self.import_recording(self.recording.value, self.subject.value))
        self.prev_key.changed.connect(lambda: self.go_keyframe(-1))
        self.next_key.changed.connect(lambda: self.go_keyframe(+1))
        self.midpoint.changed.connect(self.go_midpoint)
        self.suggested.changed.connect(self.go_suggested)
        self.toggle_key.changed.connect(self.toggle_keyframe)
        self.propagate_button.changed.connect(self.propagate)
        self.cancel_button.changed.connect(self.cancel)
        self.check_button.changed.connect(self.check)
        self._autosave = QTimer()
        self._autosave.setSingleShot(True)
        self._autosave.setInterval(AUTOSAVE_MS)
        self._autosave.timeout.connect(self.save)
        self.cancel_button.enabled = False
        self.native.setMaximumWidth(380)
        from ._actions import register_actions

        register_actions(self)

    # -- project and video -----------------------------------------------------------------
    def _report(self, error: Exception) -> None:
        msg = error.one_line() if isinstance(error, SonolabelError) else f"{type(error).__name__}: {error}"
        self.status.value = msg
        self.viewer.status = msg

    def open_project(self, path: str | Path) -> None:
        """Open ``path`` for annotation (the write lock is taken; a second viewer gets a clear refusal)."""
        self.close_project()
        try:
            self.project = Project.open(path, mode="a")
        except SonolabelError as e:
            self._report(e)
            return
        self.path.value = str(path)
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
        created = False
        if self.project is None:
            try:
                self.project, created = project_for_import(self.path.value)
            except SonolabelError as e:
                self._report(e)
                return None
        try:
            vid = import_source(self.project, source, subject)[0]
        except SonolabelError as e:
            if created:
                discard_new_project(self.project)
                self.project = None
            self._report(e)
            return None
        self._fill_table()
        self._fill_classes()
        self.open_video(vid)
        return vid

    def _fill_table(self) -> None:
        rows = self.project.summary()
        self.table.value = pd.DataFrame(
            [
                [
                    r["video"],
                    r["subject"],
                    r["trial"],
                    r["frames"],
                    r["keyframes"],
                    f"{100 * r['propagated']:.0f}%",
                    "-" if r["check_miou"] is None else f"{r['check_miou']:.3f}",
                ]
                for r in rows
            ],
            columns=TABLE_COLUMNS,
        )

    def _fill_classes(self) -> None:
        self.classes.clear()
        pal = self.project.palette
        for i, name in enumerate(pal.names):
            pix = QPixmap(14, 14)
            pix.fill(QColor(*pal.colors[i]))
            self.classes.addItem(QListWidgetItem(QIcon(pix), f"{i}  {name}"))
        # every class in view, no scrollbar: the list is as tall as its rows
        rows = self.classes.count()
        self.classes.setFixedHeight(self.classes.sizeHintForRow(0) * rows + 2 * self.classes.frameWidth() + 4 if rows else 0)

    def _pick_class(self, row: int) -> None:
        if self.labels_layer is not None and row >= 0:
            self.labels_layer.selected_label = row

    def _open_selected(self) -> None:
        rows = self.table.native.selectionModel().selectedRows() if self.table.native.selectionModel() else []
        row = rows[0].row() if rows else 0
        data = self.table.data.to_list()
        if data:
            self.open_video(data[row][0])

    def open_video(self, video_id: str) -> None:
        """Show a video: frames read lazily from the store, labels editable and saved as you paint."""
        self.save()
        for layer in (self.image_layer, self.labels_layer):
            if layer is not None and layer in self.viewer.layers:
                self.viewer.layers.remove(layer)
        self.video = self.project.video(video_id)
        self.editor = LabelsEditor(self.video)
        self.image_layer = self.viewer.add_image(self.video.lazy_frames(), name=video_id, colormap="gray")
        self.labels_layer = self.viewer.add_labels(
            self.editor,
            name=f"{video_id} labels",
            opacity=0.45,
            colormap=label_colormap(self.project.palette),
            features=pd.DataFrame({"class": list(self.project.palette.names)}),
        )
        self.labels_layer.events.paint.connect(self._edited)
        self.labels_layer.events.labels_update.connect(self._edited)
        self.labels_layer.selected_label = 1
        self.classes.setCurrentRow(1)
        self.status.value = f"{video_id}: {self.video.n_frames} frames, keyframes {self.video.annotated_frames()}"

    # -- editing and saving ----------------------------------------------------------------
    def _edited(self, event=None) -> None:
        self._autosave.start()  # debounced: a burst of strokes saves once

    def save(self) -> list[int]:
        """Store every edited frame now (each atomically); returns the frames saved."""
        if self.editor is None or not self.editor.pending:
            return []
        saved = self.editor.save()
        corrected = [t for t in saved if self.video.sources()[t] == LabelSource.CORRECTED]
        self.status.value = f"saved frames {saved}" + (
            f"; {corrected} were propagated and are now keyframes: press Propagate to redo their segments" if corrected else ""
        )
        self._fill_table()
        return saved

    # -- navigation --------------------------------------------------------------------------
    @property
    def current_frame(self) -> int:
        return int(self.viewer.dims.current_step[0])

    def set_frame(self, t: int) -> None:
        self.viewer.dims.set_current_step(0, int(t))

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
        from sonolabel.propagation.suggest import suggest_keyframes

        frames = suggest_keyframes(self.video, count=1)
        if frames:
            self.set_frame(frames[0])

    def toggle_keyframe(self) -> None:
        t = self.current_frame
        self.save()
        if t in self.video.annotated_frames():
            self.video.remove_annotation(t)
        else:
            self.video.save_annotation(t, np.asarray(self.editor.frame(t)))
        self.editor.refresh()
        self.labels_layer.refresh()
        self._fill_table()

    # -- propagation ------------------------------------------------------------------------------
    def propagate(self):
        """Propagate in a background worker (progress in the activity dock); labels refresh as it goes."""
        from napari.qt.threading import thread_worker

        from sonolabel.propagation import PropagationConfig, propagate_steps
        from sonolabel.propagation.modes import Engines

        self.save()
        video = self.video
        try:
            engines = Engines(self.project, PropagationConfig())
        except SonolabelError as e:
            self._report(e)
            return None
        total = video.n_frames - len(video.annotated_frames())

        @thread_worker(progress={"total": total, "desc": f"propagate {video.id}"})
        def run():
            engine, model_id, _ = engines.for_video(video)  # auto with trained weights: compares the modes first
            yield from propagate_steps(video, engine.config, engine=engine, model_id=model_id)

        self.worker = run()
        self.worker.yielded.connect(self._propagated_some)
        self.worker.finished.connect(self._propagation_done)
        self.worker.errored.connect(self._report)
        self.propagate_button.enabled, self.cancel_button.enabled = False, True
        self.status.value = "propagating…"
        self.worker.start()
        return self.worker

    def _propagated_some(self, n) -> None:
        self.editor.refresh()
        self.labels_layer.refresh()

    def _propagation_done(self) -> None:
        self.propagate_button.enabled, self.cancel_button.enabled = True, False
        self.editor.refresh()
        self.labels_layer.refresh()
        self._fill_table()
        self.status.value = "propagation finished (or cancelled: run it again to resume)"
        self.worker = None

    def check(self):
        """Leave-one-keyframe-out check of the open video in a background worker (the library's ``run_check``);
        the estimate goes to the status line and the video table, misdrawn keyframes to the review queue."""
        from napari.qt.threading import thread_worker

        from sonolabel.review.check import run_check

        if self.video is None:
            self.status.value = "open a video first"
            return None
        self.save()
        project, video = self.project, self.video

        @thread_worker
        def run():
            return run_check(project, [video.id])[0]

        def done(result) -> None:
            est = "-" if result.estimate_miou is None else f"{result.estimate_miou:.3f}"
            flagged = ", ".join(str(f["start"]) for f in result.flags) or "none"
            self.status.value = f"{video.id}: estimated mIoU {est} at {2 * result.spacing:.0f}-frame spacing; keyframes flagged: {flagged}"
            self._fill_table()
            self.check_button.enabled = True

        self.worker = run()
        self.worker.returned.connect(done)
        self.worker.errored.connect(self._report)
        self.worker.errored.connect(lambda _: setattr(self.check_button, "enabled", True))
        self.check_button.enabled = False
        self.status.value = "checking keyframes…"
        self.worker.start()
        return self.worker

    def cancel(self) -> None:
        if self.worker is not None:
            self.worker.quit()

    def close_project(self) -> None:
        self.save()
        if self.project is not None:
            self.project.close()
            self.project = None
