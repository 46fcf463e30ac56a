"""Regenerate the walkthrough screenshots in docs/images (run under Xvfb):

xvfb-run -a python docs/screenshots.py
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np

IMAGES = Path(__file__).parent / "images"


def main() -> None:
    import napari
    from qtpy.QtWidgets import QApplication

    from sonolabel_napari._widget import AnnotatorWidget
    from sonolabel.io import import_recording
    from sonolabel.masks import import_keyframe_masks
    from sonolabel.phantom import read_manifest
    from sonolabel.quantize import write_index_png
    from sonolabel.sample import sample_path
    from sonolabel.store import Project

    import zarr

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
        viewer.window._qt_window.resize(1400, 800)
        w = AnnotatorWidget(viewer)
        viewer.window.add_dock_widget(w, area="right", name="sonolabel")

        def shot(name: str) -> None:
            for _ in range(5):
                QApplication.processEvents()
            viewer.screenshot(path=str(IMAGES / name), canvas_only=False)

        w.open_project(path)
        shot("1-project.png")
        w.open_video(vid)
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
        worker = w.propagate()
        while w.worker is not None:
            QApplication.processEvents()
        assert worker is not None
        viewer.dims.set_current_step(0, 100)
        layer.mode = "pan_zoom"
        shot("3-propagated.png")
        layer.paint((100, 150, 250), 2)
        w.save()
        shot("4-correction.png")
        w.close_project()
        viewer.close()


if __name__ == "__main__":
    main()
