"""The long jobs the annotation dock starts: propagate, check keyframes, drift, export.

Each is the library call the CLI makes (``propagate_steps``, ``run_check``, ``run_drift``,
``export_dataset``), run in a napari ``thread_worker`` with progress in the activity dock; the viewer
stays responsive and the timeline, labels and video table refresh when a job writes.
"""

from __future__ import annotations

import queue
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from magicgui.widgets import FileEdit, PushButton

from sonolabel.errors import SonolabelError


class Jobs:
    """Mixed into the annotation dock, which provides ``session``, ``status``, ``_report`` and ``_fill_table``."""

    worker = None

    def _make_job_widgets(self) -> list:
        self.propagate_button = PushButton(text="Propagate", tooltip="propagate the keyframes to every frame (resumes; redoes only changed segments)")
        self.finish_button = PushButton(
            text="Finish (fine)",
            tooltip="propagate at the fine working size for the final labels: about 4x the time, few frames left to fix; "
            "later Propagate runs keep it where the keyframes are unchanged",
        )
        self.cancel_button = PushButton(text="Cancel", tooltip="stop the running job between batches (propagation resumes next time)")
        self.check_button = PushButton(text="Check keyframes", tooltip="read each keyframe from its neighbours: estimated quality, misdrawn keyframes")
        self.drift_button = PushButton(text="Find drift", tooltip="`sonolabel drift` on this video: flags in the timeline and the review dock")
        self.dataset = FileEdit(mode="w", label="dataset", tooltip="where to write the training dataset (a new .zarr folder)")
        self.export_button = PushButton(text="Export dataset", tooltip="`sonolabel export` of the whole project (reviewed frames only)")
        self.propagate_button.changed.connect(self.propagate)
        self.finish_button.changed.connect(lambda: self.propagate(fine=True))
        self.cancel_button.changed.connect(self.cancel)
        self.check_button.changed.connect(self.check)
        self.drift_button.changed.connect(self.drift)
        self.export_button.changed.connect(lambda: self.export(self.dataset.value))
        self.cancel_button.enabled = False
        return [self.propagate_button, self.finish_button, self.cancel_button, self.check_button, self.drift_button, self.dataset, self.export_button]

    def _start(self, worker, busy: str, done=None):
        """Start ``worker`` with the job buttons disabled until it ends."""
        buttons = (self.propagate_button, self.finish_button, self.check_button, self.drift_button, self.export_button)

        def finished() -> None:
            for b in buttons:
                b.enabled = True
            self.cancel_button.enabled = False
            self.worker = None

        if done is not None:
            worker.returned.connect(done)
        worker.errored.connect(self._report)
        worker.finished.connect(finished)
        for b in buttons:
            b.enabled = False
        self.cancel_button.enabled = True
        self.status.value = busy
        self.worker = worker
        worker.start()
        return worker

    def _need_video(self) -> bool:
        if self.session.video is None:
            self.status.value = "open a video first"
            return False
        self.session.save()
        return True

    def propagate(self, fine: bool = False):
        """Propagate the open video; labels, overlay and timeline refresh as batches land. ``fine``: at
        :data:`~sonolabel.propagation.config.FINE_WORKING_SIZE`, for the final labels (no kept passes: a
        one-off run whose passes would crowd out the correction loop's)."""
        from napari.qt.threading import thread_worker

        from sonolabel.propagation import PropagationConfig, propagate_steps
        from sonolabel.propagation.config import FINE_WORKING_SIZE
        from sonolabel.propagation.modes import Engines

        if not self._need_video():
            return None
        video = self.session.video
        config = PropagationConfig(working_size=FINE_WORKING_SIZE) if fine else PropagationConfig()
        try:
            engines = Engines(self.session.project, config)
        except SonolabelError as e:
            self._report(e)
            return None
        total = video.n_frames - len(video.annotated_frames())
        passes = None if fine else self.session.passes(video.id)

        @thread_worker(progress={"total": total, "desc": f"propagate {video.id}"})
        def run():
            engine, model_id, _ = engines.for_video(video)  # auto with trained weights: compares the modes first
            yield from propagate_steps(video, engine.config, engine=engine, model_id=model_id, cache=passes)

        def done(_=None) -> None:
            self.session.refresh()
            self._fill_table()
            self.status.value = "propagation finished (or cancelled: run it again to resume)"

        worker = run()
        worker.yielded.connect(lambda _: self.session.refresh())
        worker.finished.connect(done)
        return self._start(worker, "propagating finely…" if fine else "propagating…")

    def _video_job(self, call, busy: str, summary):
        """Run ``call(project, video)`` (a library use case that writes flags) on the open video in a worker; its
        result's ``summary`` goes to the status line, and the timeline, queue and video table refresh."""
        from napari.qt.threading import thread_worker

        if not self._need_video():
            return None
        project, video = self.session.project, self.session.video

        def done(result) -> None:
            self.status.value = f"{video.id}: {summary(result)}"
            self.session.flags_changed.emit(video.id)

        return self._start(thread_worker(call)(project, video), busy, done)

    def check(self):
        """Leave-one-keyframe-out check of the open video (``run_check``): the estimate goes to the status line
        and the video table, misdrawn keyframes to the review queue and the timeline."""
        from sonolabel.review.check import run_check

        def summary(result) -> str:
            est = "-" if result.estimate_miou is None else f"{result.estimate_miou:.3f}"
            flagged = ", ".join(str(f["start"]) for f in result.flags) or "none"
            return f"estimated mIoU {est} at {2 * result.spacing:.0f}-frame spacing; keyframes flagged: {flagged}"

        return self._video_job(lambda project, video: run_check(project, [video.id])[0], "checking keyframes…", summary)

    def drift(self):
        """Drift signals and flags for the open video (``run_drift``, as ``sonolabel drift PROJECT VIDEO``)."""
        from sonolabel.review import run_drift

        def summary(report) -> str:
            return f"{report.flags} drift flags ({report.consistency} where the labels disagree with fresh reads); see the timeline and the review dock"

        return self._video_job(lambda project, video: run_drift(project, [video.id])[0], "looking for drift…", summary)

    def export(self, out: str | Path):
        """Export the project's training dataset to ``out`` (``export_dataset`` with its defaults, as ``sonolabel
        export PROJECT OUT``), with progress in the activity dock."""
        from napari.qt.threading import thread_worker

        from sonolabel.export import export_dataset

        project = self.session.project
        if project is None:
            self.status.value = "open a project first"
            return None
        if not str(out) or Path(out) == Path("."):
            self.status.value = "choose where to write the dataset first"
            return None
        self.session.save()
        total = sum(v.n_frames for v in project.videos())

        @thread_worker(progress={"total": total, "desc": "export"})
        def run():
            # the export runs beside this generator, which turns its per-batch frame counts into progress steps
            done: queue.SimpleQueue = queue.SimpleQueue()
            with ThreadPoolExecutor(1) as pool:
                job = pool.submit(export_dataset, project, out, progress=done.put)
                while not (job.done() and done.empty()):
                    try:
                        for _ in range(done.get(timeout=0.1)):
                            yield
                    except queue.Empty:
                        pass
                return job.result()

        return self._start(run(), "exporting…", lambda path: setattr(self.status, "value", f"dataset written to {path}"))

    def cancel(self) -> None:
        if self.worker is not None:
            self.worker.quit()
