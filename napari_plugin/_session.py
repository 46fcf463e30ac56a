"""One project per viewer, shared by every sonolabel dock and the reader.

Opening a project in any dock (or dropping it on napari) opens it here once, for writing; the docks
follow the video shown, and closing the viewer's window releases the write lock. The session also owns
the video's layers (frames, editable labels saved as you paint, propagation's uncertainty) and the
timeline under the frame slider, so that no dock adds a second copy of them.
"""

from __future__ import annotations

import functools
import weakref
from pathlib import Path

import pandas as pd
from psygnal import Signal
from qtpy.QtCore import QEvent, QObject, QTimer

from sonolabel.annotate import LabelsEditor
from sonolabel.errors import SonolabelError
from sonolabel.propagation.passes import PassCache
from sonolabel.store import LabelSource, Project

from ._layers import label_colormap, uncertainty_layer

AUTOSAVE_MS = 300
PASS_CACHE_BYTES = 1 << 30  # per video; a 2,500-frame video's two passes per frame take about 0.3 GB at 8 classes
UNCERTAINTY = "uncertainty"
_SESSIONS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def session_for(viewer) -> "Session":
    """The viewer's session, created on first use. Docks get the viewer behind a proxy that differs per dock;
    the session belongs to the viewer itself."""
    viewer = getattr(viewer, "__wrapped__", viewer)
    if viewer not in _SESSIONS:
        _SESSIONS[viewer] = Session(viewer)
    return _SESSIONS[viewer]


class _CloseWatch(QObject):
    """Releases the session's project once the viewer's window has really closed (a close can be cancelled)."""

    def __init__(self, session: "Session", window):
        super().__init__(window)  # a child of the window: no Python reference that would keep the window alive
        self._session = weakref.ref(session)

    def eventFilter(self, obj, event) -> bool:
        if event.type() == QEvent.Type.Close:
            QTimer.singleShot(0, functools.partial(_release_if_closed, self._session, weakref.ref(obj)))
        return False


def _release_if_closed(session_ref, window_ref) -> None:
    window = window_ref()  # weak: a pending check must not keep a closed viewer alive
    try:
        closed = window is None or not window.isVisible()
    except RuntimeError:  # the window is already deleted
        closed = True
    session = session_ref()
    if session is not None and closed:
        session.close(notify=False)  # the docks went with the window
        session.timeline = None


class Session:
    """The project and the video open in one napari viewer."""

    project_changed = Signal()  # a project was opened or closed
    video_shown = Signal(str)  # a video's layers are in the viewer
    changed = Signal(str)  # a video's labels, keyframes or propagation changed
    flags_changed = Signal(str)  # a video's flags or review states changed (drift, check, review actions)
    message = Signal(str)  # a line for the docks' status

    def __init__(self, viewer):
        self._viewer = weakref.ref(viewer)  # the viewer owns its session (see session_for), not the other way round
        self.project: Project | None = None
        self.video = None
        self.editor: LabelsEditor | None = None
        self.image_layer = self.labels_layer = None
        self.timeline = None
        self._passes: dict[str, PassCache] = {}  # per video: propagation passes a correction leaves unchanged
        self._autosave = QTimer()
        self._autosave.setSingleShot(True)
        self._autosave.setInterval(AUTOSAVE_MS)
        self._autosave.timeout.connect(self.save)
        self._watch = None

    def passes(self, video_id: str) -> PassCache:
        """The propagation passes kept for ``video_id`` while the project is open, so propagating again after
        a correction reads only the passes that start at the corrected keyframe."""
        return self._passes.setdefault(video_id, PassCache(max_bytes=PASS_CACHE_BYTES))

    def watch(self, widget) -> None:
        """Release the project when the window holding ``widget`` (a dock, the timeline) closes; once placed in
        the window, any of them will do."""
        try:
            window = widget.window()
        except RuntimeError:  # deleted before it was placed
            return
        if self._watch is None and window is not None and window is not widget:
            self._watch = _CloseWatch(self, window)
            window.installEventFilter(self._watch)

    @property
    def viewer(self):
        return self._viewer()

    # -- project -------------------------------------------------------------------------
    def open(self, path: str | Path) -> Project | None:
        """Open ``path`` for writing (a project already open at that path is reused); None, with the reason
        sent as a message, when it cannot be opened (a second viewer holding it, not a project...)."""
        if self.project is not None and Path(self.project.path).resolve() == Path(path).resolve():
            return self.project
        self.close()
        try:
            self.project = Project.open(path, mode="a")
        except SonolabelError as e:
            self.message.emit(e.one_line())
            return None
        self.project_changed.emit()
        return self.project

    def adopt(self, project: Project) -> None:
        """Use a project opened elsewhere (a newly created one, on import)."""
        if project is not self.project:
            self.close()
            self.project = project
            self.project_changed.emit()

    def close(self, notify: bool = True) -> None:
        """Save pending edits and release the project's write lock."""
        self._autosave.stop()
        self.save(notify=notify)
        if self.project is not None:
            self.project.close()
            self.project, self.video, self.editor = None, None, None
            self._passes.clear()
            if notify:
                self.project_changed.emit()

    # -- the video and its layers -------------------------------------------------------------
    def show(self, video_id: str) -> None:
        """Show a video: frames read lazily from the store, labels editable and saved as you paint, the
        uncertainty overlay (hidden; Alt-U), and the timeline."""
        if self.video is not None and self.video.id == video_id and self.labels_layer in self.viewer.layers:
            return
        self.save()
        for name in (self.image_layer, self.labels_layer, UNCERTAINTY):
            name = getattr(name, "name", name)
            if name is not None and name in self.viewer.layers:
                self.viewer.layers.remove(name)
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
        self._add_uncertainty(visible=False)
        self.viewer.layers.selection.active = self.labels_layer
        self._ensure_timeline()
        self.video_shown.emit(video_id)
        self.changed.emit(video_id)

    def _add_uncertainty(self, visible: bool):
        data = uncertainty_layer(self.video)
        if data is None:
            return None
        array, kwargs = data
        layer = self.viewer.add_image(array, **kwargs, visible=visible)
        layer.colorbar.visible = True  # the legend, shown while the layer is
        self.viewer.layers.selection.active = self.labels_layer
        return layer

    def toggle_uncertainty(self) -> bool:
        """Show or hide the uncertainty overlay; returns whether it is shown (False when nothing is propagated yet)."""
        if self.video is None:
            return False
        if UNCERTAINTY not in self.viewer.layers:
            if self._add_uncertainty(visible=True) is None:
                self.message.emit("no uncertainty yet: propagate this video first")
                return False
            return True
        layer = self.viewer.layers[UNCERTAINTY]
        layer.visible = not layer.visible
        return layer.visible

    def _ensure_timeline(self) -> None:
        from ._timeline import TimelineWidget

        if self.timeline is None:
            self.timeline = TimelineWidget(self)
            self.viewer.window.add_dock_widget(self.timeline, area="bottom", name="timeline (sonolabel)")
            self.watch(self.timeline)
        self.timeline.refresh()

    def refresh(self) -> None:
        """Re-read the open video's labels and overlay after a job wrote them, and redraw the timeline."""
        if self.video is None:
            return
        self.editor.refresh()
        self.labels_layer.refresh()
        if UNCERTAINTY in self.viewer.layers:
            self.viewer.layers[UNCERTAINTY].refresh()
        else:  # the first propagation of this video: the overlay can exist now (hidden until asked for)
            self._add_uncertainty(visible=False)
        self.changed.emit(self.video.id)

    # -- editing ---------------------------------------------------------------------------
    def _edited(self, event=None) -> None:
        self._autosave.start()  # debounced: a burst of strokes saves once

    def save(self, notify: bool = True) -> list[int]:
        """Store every edited frame now (each atomically); returns the frames saved."""
        if self.editor is None or not self.editor.pending:
            return []
        saved = self.editor.save()
        if not notify:
            return saved
        corrected = [t for t in saved if self.video.sources()[t] == LabelSource.CORRECTED]
        self.message.emit(
            f"saved frames {saved}" + (f"; {corrected} were propagated and are now keyframes: press Propagate to redo their segments" if corrected else "")
        )
        self.changed.emit(self.video.id)
        return saved

    @property
    def current_frame(self) -> int:
        return int(self.viewer.dims.current_step[0])

    def set_frame(self, t: int) -> None:
        self.viewer.dims.set_current_step(0, int(t))
