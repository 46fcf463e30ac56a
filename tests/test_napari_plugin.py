"""The napari front end, driven headless (under Xvfb) through a real viewer."""

import numpy as np
import pytest

napari = pytest.importorskip("napari")
pytestmark = pytest.mark.gui


def test_manifest_validates():
    from npe2 import PluginManifest

    pm = PluginManifest.from_distribution("sonolabel")
    assert {c.id for c in pm.contributions.commands} >= {"sonolabel.get_reader", "sonolabel.phantom_sample", "sonolabel.annotator"}


def test_library_does_not_import_qt():
    import subprocess
    import sys

    code = (
        "import sys, sonolabel.annotate, sonolabel.propagation, sonolabel.export, sonolabel.cli.main\n"
        "assert not [m for m in sys.modules if m.split('.')[0] in ('napari', 'qtpy', 'PyQt6', 'magicgui')]"
    )
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0


@pytest.fixture
def small_project(tmp_path):
    """A 41-frame phantom video at 240x240 with keyframes 0 and 40."""
    import torch
    import torch.nn.functional as F

    from sonolabel.phantom import make_sequence
    from sonolabel.phantom.render import PhantomRenderer
    from sonolabel.store import Project

    r = PhantomRenderer(make_sequence(2, 1, 41))
    out = [r.render(t) for t in range(41)]
    imgs = F.interpolate(torch.from_numpy(np.stack([o[0] for o in out]))[:, None].float(), size=(240, 240), mode="area")[:, 0].round().byte().numpy()
    labels = np.stack([o[1][::2, ::2] for o in out])
    path = tmp_path / "p.zarr"
    with Project.create(path) as p:
        with p.staged_video("S1-T1", 41, 240, 240, {"subject": "S1", "trial": "1", "fps": 20.0}) as v:
            v.frames[:] = imgs
        v = p.video("S1-T1")
        v.save_annotation(0, labels[0])
        v.save_annotation(40, labels[40])
    return path, labels


def test_reader_opens_project_lazily_with_palette(make_napari_viewer, small_project, tmp_path):
    import dask.array as da

    from sonolabel_napari._reader import get_reader

    path, labels = small_project
    assert get_reader(str(tmp_path)) is None
    layers = get_reader(str(path))(str(path))
    assert isinstance(layers[0][0], da.Array) and layers[1][2] == "labels"
    viewer = make_napari_viewer()
    for data, kwargs, kind in layers:
        getattr(viewer, f"add_{kind}")(data, **kwargs)
    lab = viewer.layers["S1-T1 labels"]
    np.testing.assert_array_equal(np.asarray(lab.data[40]), labels[40])
    assert np.allclose(lab.colormap.map(2)[:3], (0, 0, 1))  # FDP is blue in the project palette


def test_sample_data_loads(make_napari_viewer):
    viewer = make_napari_viewer()
    viewer.open_sample("sonolabel", "phantom")
    assert viewer.layers["phantom"].data.shape[1:] == (480, 480)
    assert viewer.layers["phantom labels"].data.max() == 7


def _dock(make_napari_viewer, path):
    from sonolabel_napari._widget import AnnotatorWidget

    viewer = make_napari_viewer(show=True)
    w = AnnotatorWidget(viewer)
    viewer.window.add_dock_widget(w, area="right", name="sonolabel")
    w.open_project(path)
    w.open_video("S1-T1")
    return viewer, w


def test_paint_stroke_is_saved_and_survives_reopen(make_napari_viewer, small_project, qtbot):
    from sonolabel.store import Project

    path, _ = small_project
    viewer, w = _dock(make_napari_viewer, path)
    layer = w.labels_layer
    assert layer.features["class"][5] == "FCU"  # hovering shows the class name
    viewer.dims.set_current_step(0, 17)
    layer.selected_label = 6
    layer.brush_size = 10
    layer.mode = "paint"
    layer.paint((17, 120, 120), 6)  # as a brush stroke does
    layer.events.paint()  # napari emits this when a stroke ends
    qtbot.waitUntil(lambda: not w.editor.pending, timeout=5000)  # autosaved, debounced
    layer.undo()  # napari's undo still works, and is saved too
    layer.events.paint()
    qtbot.waitUntil(lambda: not w.editor.pending, timeout=5000)
    layer.paint((17, 60, 60), 6)
    layer.events.paint()
    qtbot.waitUntil(lambda: not w.editor.pending, timeout=5000)
    with Project.open(path) as p:  # a second reader sees the stroke on disk
        v = p.video("S1-T1")
        assert 17 in v.annotated_frames()
        saved = v.labels(17)
        assert saved[60, 60] == 6 and saved[120, 120] != 6
        assert v.table().loc[17, "source"] == "annotated"
    w.close_project()


def test_keyframe_navigation_and_shortcuts(make_napari_viewer, small_project):
    from napari.utils.action_manager import action_manager
    from napari.utils.shortcuts import default_shortcuts

    from sonolabel_napari._actions import SHORTCUTS

    path, _ = small_project
    viewer, w = _dock(make_napari_viewer, path)
    assert w.table.data.to_list()[0][:4] == ["S1-T1", "S1", "1", 41]
    assert w.table.data.to_list()[0][-1] == "-"  # check mIoU: not checked yet
    assert w.import_fields.labels and [x.label for x in w.import_fields] == ["recording", "subject"]
    rows = w.classes.count()
    assert rows == 8 and w.classes.height() >= rows * w.classes.sizeHintForRow(0)  # every class in view
    viewer.dims.set_current_step(0, 10)
    w.go_keyframe(+1)
    assert w.current_frame == 40
    w.go_keyframe(-1)
    assert w.current_frame == 0
    viewer.dims.set_current_step(0, 5)
    w.go_midpoint()
    assert w.current_frame == 20
    w.toggle_keyframe()
    assert 20 in w.video.annotated_frames()
    action_manager.trigger("sonolabel:toggle_keyframe")
    assert 20 not in w.video.annotated_frames()
    napari_keys = {str(k) for keys in default_shortcuts.values() for k in keys}
    assert not napari_keys & {k for k, _, _ in SHORTCUTS.values()}
    w.close_project()


def test_propagate_from_viewer_keeps_ui_responsive(make_napari_viewer, small_project, qtbot):
    from qtpy.QtCore import QTimer

    path, labels = small_project
    viewer, w = _dock(make_napari_viewer, path)
    ticks = []
    timer = QTimer()
    timer.timeout.connect(lambda: ticks.append(1))
    timer.start(20)
    worker = w.propagate()
    qtbot.waitUntil(lambda: w.worker is None, timeout=120_000)
    timer.stop()
    assert worker is not None and len(ticks) > 5  # the event loop kept running during propagation
    v = w.video
    assert (v.sources()[1:40] == 2).all()
    shown = np.asarray(w.labels_layer.data[20])
    assert (shown == v.labels(20)).all() and (shown > 0).any()
    # a correction on a propagated frame becomes a keyframe, and only its two segments are redone
    w.labels_layer.paint((20, 30, 30), 5)
    w.save()
    assert v.table().loc[20, "source"] == "corrected" and "Propagate" in w.status.value
    w.close_project()


def test_screenshot_of_annotation_view(make_napari_viewer, small_project, qtbot, tmp_path):
    path, _ = small_project
    viewer, w = _dock(make_napari_viewer, path)
    viewer.dims.set_current_step(0, 40)
    qtbot.wait(200)
    shot = viewer.screenshot(path=str(tmp_path / "annotation-view.png"), canvas_only=False)  # docs/screenshots.py makes the docs' ones
    assert shot.shape[0] > 200 and shot[..., :3].std() > 10  # not blank
    canvas = viewer.screenshot(canvas_only=True)
    assert canvas[..., :3].mean() > 5
    w.close_project()


def test_reader_offers_to_import_a_video(make_napari_viewer, tmp_path):
    from conftest import boxed_frames, write_video
    from sonolabel_napari._reader import get_reader
    from sonolabel_napari._widget import AnnotatorWidget

    video = write_video(tmp_path / "clip.mp4", boxed_frames(8, 120, 160, box=(20, 0, 120, 120)))
    layers = get_reader(str(video))(str(video))
    assert layers[0][0].shape == (8, 120, 120) and layers[0][1]["metadata"]["crop"] == [20, 0, 120, 120]
    viewer = make_napari_viewer()
    w = AnnotatorWidget(viewer)
    w.path.value = str(tmp_path / "new.zarr")
    assert w.import_recording(video, "") is None and "subject" in w.status.value
    vid = w.import_recording(video, "S7")
    assert vid == "S7" and w.video.n_frames == 8 and w.table.data.to_list()[0][0] == "S7"
    w.close_project()


def test_reader_opens_dicom_cine_and_tiff_stacks_not_single_tiffs(tmp_path):
    import tifffile

    from conftest import boxed_frames
    from sonolabel_napari._reader import get_reader
    from test_intake import _dicom

    dcm = _dicom(tmp_path / "cine", boxed_frames(5))  # no suffix: found by its DICM marker
    layers = get_reader(str(dcm))(str(dcm))
    assert layers[0][0].shape == (5, 120, 120) and layers[0][1]["metadata"]["crop"] == [20, 0, 120, 120]
    tifffile.imwrite(tmp_path / "stack.tif", boxed_frames(4))
    assert get_reader(str(tmp_path / "stack.tif"))(str(tmp_path / "stack.tif"))[0][0].shape == (4, 120, 120)
    tifffile.imwrite(tmp_path / "one.tif", boxed_frames(1)[0])
    assert get_reader(str(tmp_path / "one.tif")) is None  # an ordinary image: napari's own reader


@pytest.fixture
def flagged_project(tmp_path):
    """A 121-frame phantom video (keyframes 0, 60, 120) with a boundary sliding away from keyframe 0, drift run."""
    from sonolabel.phantom import generate_phantom, phantom_project
    from sonolabel.phantom.corrupt import corrupt_stretch
    from sonolabel.review import run_drift

    generate_phantom(tmp_path / "ph", subjects=1, frames=121, seed=4)
    with phantom_project(tmp_path / "ph", tmp_path / "p.zarr", keyframe_every=60) as p:
        v = p.video(p.video_ids()[0])
        v.save_propagated(0, corrupt_stretch(np.asarray(v.propagated[:]), 0, 1, 31, "slide", 2))
        run_drift(p)
    return tmp_path / "p.zarr"


def test_review_dock_click_on_plot_moves_viewer_and_actions_are_logged(make_napari_viewer, flagged_project, qtbot):
    from sonolabel_napari._review import ReviewWidget
    from sonolabel.review import ReviewLog
    from sonolabel.store import Project

    viewer = make_napari_viewer()
    w = ReviewWidget(viewer)
    viewer.window.add_dock_widget(w, area="right")
    w.open_project(flagged_project)
    assert w.axes and w.table.shape[0] >= 1
    assert "pending" in w.status.value
    # a real mouse click on the curve panel at frame 80
    ax = w.axes[0]
    w.canvas.draw()
    x, y = ax.transData.transform((80, np.mean(ax.get_ylim())))
    ratio = w.canvas.device_pixel_ratiof if hasattr(w.canvas, "device_pixel_ratiof") else 1.0
    from qtpy.QtCore import QPoint, Qt

    qtbot.mouseClick(w.canvas, Qt.MouseButton.LeftButton, pos=QPoint(int(x / ratio), int(w.canvas.height() - y / ratio)))
    assert abs(viewer.dims.current_step[0] - 80) <= 1
    # next flag goes to the drifting stretch; exclude it with a note
    viewer.dims.set_current_step(0, 100)
    w.go_next_flag()
    assert viewer.dims.current_step[0] < 35
    # the consistency flag names FDP (class 2) and its region is outlined on the frame
    row = int(np.flatnonzero(w._queue()["kind"] == "consistency")[0])
    w.select_flag(row)
    assert w.table.value["data"][row][3] == "FDP"
    y0, x0, y1, x1 = w._queue().loc[row, "box"]
    region = viewer.layers["flag region"]
    assert len(region.data) == 1 and np.allclose(region.data[0].min(0), [y0, x0]) and np.allclose(region.data[0].max(0), [y1, x1])
    with Project.open(flagged_project) as p:
        fdp = np.asarray(p.video(p.video_ids()[0]).labels(20)) == 2
    ys, xs = np.nonzero(fdp)
    assert y0 <= np.median(ys) <= y1 and x0 <= np.median(xs) <= x1
    w.who.value, w.note.value = "anna", "FDP boundary slid"
    w.review_selected("exclude")
    w.close_project()
    with Project.open(flagged_project) as p:
        events = ReviewLog(p).events()
    assert events[-1]["who"] == "anna" and events[-1]["note"] == "FDP boundary slid" and events[-1]["action"] == "exclude"


def test_check_button_estimates_quality_and_flags_a_misdrawn_keyframe(make_napari_viewer, tmp_path, qtbot):
    """The dock runs the library's leave-one-keyframe-out check in a worker: the estimate reaches the status
    line and the video table, and a keyframe drawn with two classes swapped reaches the review queue."""
    from sonolabel.phantom import generate_phantom, phantom_project
    from sonolabel.review import ReviewLog
    from sonolabel.store import Project
    from sonolabel_napari._widget import AnnotatorWidget

    generate_phantom(tmp_path / "ph", subjects=1, frames=121, seed=4)
    with phantom_project(tmp_path / "ph", tmp_path / "p.zarr", keyframe_every=30) as p:
        vid = p.video_ids()[0]
        v = p.video(vid)
        lab = np.asarray(v.annotated[60]).copy()
        lab[lab == 1], lab[lab == 2] = 2, 1  # FDS and FDP swapped on keyframe 60
        v.save_annotation(60, lab)
    viewer = make_napari_viewer()
    w = AnnotatorWidget(viewer)
    w.open_project(tmp_path / "p.zarr")
    w.open_video(vid)
    worker = w.check()
    with qtbot.waitSignal(worker.finished, timeout=300_000):
        pass
    qtbot.waitUntil(lambda: "estimated mIoU" in w.status.value, timeout=5000)
    assert "keyframes flagged: 60" in w.status.value
    assert float(w.table.data.to_list()[0][-1]) > 0.5
    w.close_project()
    with Project.open(tmp_path / "p.zarr") as p:
        assert ReviewLog(p).queue()["start"].tolist() == [60]
