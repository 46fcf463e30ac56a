"""Regenerate the screenshots of docs/napari.md in docs/images (run under Xvfb):

xvfb-run -a python docs/screenshots.py

Every element of the annotation view gets one: the whole window at each step of the walkthrough,
and the dock, the timeline, the uncertainty overlay and the review dock on their own.
tests/test_docs.py checks that every image napari.md shows exists and is not blank.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np

IMAGES = Path(__file__).parent / "images"


def main() -> None:
    import napari
    import zarr
    from qtpy.QtWidgets import QApplication

    from sonolabel.io import import_recording
    from sonolabel.masks import import_keyframe_masks
    from sonolabel.phantom import read_manifest
    from sonolabel.phantom.corrupt import corrupt_stretch
    from sonolabel.quantize import write_index_png
    from sonolabel.sample import sample_path
    from sonolabel.store import Project
    from sonolabel_napari._review import ReviewWidget
    from sonolabel_napari._widget import AnnotatorWidget

    IMAGES.mkdir(exist_ok=True)
    sample = sample_path()
    rec = read_manifest(sample)[0]
    truth = zarr.open_array(str(sample / rec.labels), mode="r")
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "forearm.zarr"
        with Project.create(path) as p:
            vid = import_recording(p, sample / rec.video, rec.subject, trial=rec.trial, kinematics=sample / rec.kinematics)
            with tempfile.TemporaryDirectory() as kdir:
                write_index_png(Path(kdir) / "000000.png", truth[0], p.palette)
                import_keyframe_masks(p.video(vid), kdir)
        viewer = napari.Viewer(show=True)
        viewer.window._qt_window.resize(1500, 950)
        w = AnnotatorWidget(viewer)
        viewer.window.add_dock_widget(w, area="right", name="Annotate keyframes (sonolabel)")

        def settle() -> None:
            for _ in range(10):
                QApplication.processEvents()

        def shot(name: str) -> None:
            settle()
            viewer.screenshot(path=str(IMAGES / name), canvas_only=False)

        def grab(widget, name: str) -> None:
            settle()
            widget.grab().save(str(IMAGES / name))

        def wait(worker) -> None:
            while w.worker is not None:
                QApplication.processEvents()

        w.open_project(path)
        shot("1-project.png")
        w.open_video(vid)
        grab(w.native, "dock.png")
        viewer.dims.set_current_step(0, 200)
        layer = w.labels_layer
        layer.brush_size = 12
        for label in range(1, 8):  # paint the last frame's keyframe as an annotator would (here: from the truth)
            ys, xs = np.nonzero(truth[200] == label)
            layer.paint((200, int(ys.mean()), int(xs.mean())), label)
        layer.data[200] = np.asarray(truth[200])
        layer.events.paint()
        w.save()
        layer.mode = "paint"
        shot("2-paint-keyframe.png")
        wait(w.propagate())
        viewer.dims.set_current_step(0, 100)
        layer.mode = "pan_zoom"
        shot("3-propagated.png")
        layer.paint((100, 150, 250), 2)
        w.save()
        shot("4-correction.png")
        w.session.toggle_uncertainty()
        viewer.dims.set_current_step(0, 150)
        shot("5-uncertainty.png")
        w.session.toggle_uncertainty()
        # drift the labels of one stretch, as a long propagation might, and look for it from the dock
        v = w.video
        v.save_propagated(110, corrupt_stretch(np.asarray(v.propagated[110:190]), 0, 0, 80, "slide", 2))
        w.session.refresh()
        wait(w.drift())
        grab(w.session.timeline, "timeline.png")
        r = ReviewWidget(viewer)
        viewer.window.add_dock_widget(r, area="right", name="Review flags (sonolabel)", tabify=True)
        r.go_next_flag()
        shot("6-review.png")
        grab(r.native, "review-dock.png")
        w.close_project()
        viewer.close()


if __name__ == "__main__":
    main()
