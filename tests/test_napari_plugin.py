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

    from sonolabel_napari._actions import CLASS_KEYS, SHORTCUTS

    path, _ = small_project
    viewer, w = _dock(make_napari_viewer, path)
    assert w.table.data.to_list()[0][:4] == ["S1-T1", "S1", "1", 41]
    assert w.table.data.to_list()[0][-2:] == ["-", "-"]  # check mIoU, review progress: neither yet
    assert w.import_fields.labels and [x.label for x in w.import_fields] == ["project folder", "recording", "subject"]
    viewer.dims.set_current_step(0, 10)
    w.go_keyframe(+1)
    assert w.current_frame == 40
    w.go_keyframe(-1)
    assert w.current_frame == 0
    viewer.dims.set_current_step(0, 5)
    w.go_midpoint()
    assert w.current_frame == 20
    viewer.dims.set_current_step(0, 3)
    w.go_suggested()  # the middle of the widest gap; two keyframes 40 frames apart are dense enough to finish
    assert w.current_frame == 20 and "Finish (fine)" in w.status.value
    w.toggle_keyframe()
    assert 20 in w.video.annotated_frames()
    action_manager.trigger("sonolabel:toggle_keyframe")
    assert 20 not in w.video.annotated_frames()
    napari_keys = {str(k) for keys in default_shortcuts.values() for k in keys}
    ours = {k for k, _, _ in SHORTCUTS.values()} | set(CLASS_KEYS)
    assert not {k.replace("-", "+") for k in ours} & napari_keys and not ours & napari_keys
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


def test_finish_reads_finely_and_the_correction_loop_keeps_it_where_keyframes_are_unchanged(make_napari_viewer, small_project, qtbot):
    from sonolabel.propagation.config import FINE_WORKING_SIZE as FINE
    from sonolabel.propagation.propagate import STATE_KEY

    path, labels = small_project
    viewer, w = _dock(make_napari_viewer, path)
    v = w.video

    def run(button) -> dict:
        button.native.click()
        qtbot.waitUntil(lambda: w.worker is None, timeout=120_000)
        assert "finished" in w.status.value
        return {k: s["working_size"] for k, s in v.state(STATE_KEY)["segments"].items()}

    def correct(t: int) -> None:
        w.set_frame(t)
        w.labels_layer.paint((t, 30, 30), 5)
        w.save()

    assert run(w.propagate_button) == {"0-40": 240}
    correct(20)
    assert run(w.finish_button) == {"0-20": FINE, "20-40": FINE}
    fine = np.asarray(v.propagated[21:40])
    assert (np.asarray(w.labels_layer.data[30]) == v.labels(30)).all()
    correct(10)
    assert run(w.propagate_button) == {"0-10": 240, "10-20": 240, "20-40": FINE}  # only the corrected frame's segments
    np.testing.assert_array_equal(np.asarray(v.propagated[21:40]), fine)
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
    # every flag, label-only ones included, names its class and outlines its region
    queue = w._queue()
    assert queue["class"].notna().all() and queue["box"].notna().all(), queue[["signal", "class", "box"]]
    other = int(np.flatnonzero(queue["kind"] != "consistency")[0])
    w.select_flag(other)
    assert np.allclose(region.data[0].min(0), queue.loc[other, "box"][:2]) and np.allclose(region.data[0].max(0), queue.loc[other, "box"][2:])
    w.select_flag(row)
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

    generate_phantom(tmp_path / "ph", subjects=1, frames=61, seed=4)
    with phantom_project(tmp_path / "ph", tmp_path / "p.zarr", keyframe_every=15) as p:
        vid = p.video_ids()[0]
        v = p.video(vid)
        lab = np.asarray(v.annotated[30]).copy()
        lab[lab == 1], lab[lab == 2] = 2, 1  # FDS and FDP swapped on keyframe 30
        v.save_annotation(30, lab)
    viewer = make_napari_viewer()
    w = AnnotatorWidget(viewer)
    w.open_project(tmp_path / "p.zarr")
    w.open_video(vid)
    worker = w.check()
    with qtbot.waitSignal(worker.finished, timeout=300_000):
        pass
    qtbot.waitUntil(lambda: "estimated mIoU" in w.status.value, timeout=5000)
    assert "keyframes flagged: 30" in w.status.value
    assert float(w.table.data.to_list()[0][-2]) > 0.5
    w.close_project()
    with Project.open(tmp_path / "p.zarr") as p:
        assert ReviewLog(p).queue()["start"].tolist() == [30]


def test_dock_in_sections_every_field_labelled_every_class_keyed_titles_single(make_napari_viewer, small_project):
    from magicgui.widgets import FileEdit, LineEdit
    from napari.utils.action_manager import action_manager

    from sonolabel_napari._actions import SHORTCUTS

    path, _ = small_project
    viewer = make_napari_viewer()
    dock, w = viewer.window.add_plugin_dock_widget("sonolabel", "Annotate keyframes")
    rdock, r = viewer.window.add_plugin_dock_widget("sonolabel", "Review flags")
    assert dock.windowTitle() == "Annotate keyframes (sonolabel)" and rdock.windowTitle() == "Review flags (sonolabel)"
    assert [box.title() for box in w.sections.values()] == ["Project", "Videos", "Classes", "Navigation", "Propagate, check, export", "Status"]
    fields = [x for x in (*w.import_fields, w.dataset) if isinstance(x, (FileEdit, LineEdit))]
    assert len(fields) == 4 and all(x.label and x.label == x.label.strip() for x in fields)
    w.open_project(path)
    w.open_video("S1-T1")
    rows = w.classes.count()
    assert rows == 8 and w.classes.height() >= rows * w.classes.sizeHintForRow(0)  # every class in view, no scrollbar
    texts = [w.classes.item(i).text() for i in range(rows)]
    assert all(t.startswith(f"{i}  {name}") and t.endswith(f"Alt-{i}") for i, (t, name) in enumerate(zip(texts, w.project.palette.names)))
    assert all(not w.classes.item(i).icon().isNull() for i in range(rows))  # a colour swatch
    for button, action in (
        (w.next_key, "sonolabel:next_keyframe"),
        (w.toggle_key, "sonolabel:toggle_keyframe"),
        (w.uncertainty, "sonolabel:toggle_uncertainty"),
    ):
        assert SHORTCUTS[action][0] in button.tooltip
    action_manager.trigger("sonolabel:class_6")  # Alt-6: ulna
    assert w.labels_layer.selected_label == 6 and w.classes.currentRow() == 6
    w.close_project()


def test_one_project_serves_both_docks_and_closing_the_viewer_releases_the_lock(make_napari_viewer, small_project):
    from sonolabel.errors import SonolabelError
    from sonolabel.store import Project
    from sonolabel_napari._review import ReviewWidget
    from sonolabel_napari._session import session_for
    from sonolabel_napari._widget import AnnotatorWidget

    path, _ = small_project
    with Project.open(path, mode="a") as p:  # a second video, to follow between docks
        with p.staged_video("S2-T1", 5, 240, 240, {"subject": "S2", "trial": "1"}) as v:
            v.frames[:] = 100
    viewer = make_napari_viewer(show=True)
    viewer.open(str(path), plugin="sonolabel")  # the reader opens the project in the viewer's session
    session = session_for(viewer)
    assert session.project is not None and session.video.id == "S1-T1"
    a, r = AnnotatorWidget(viewer), ReviewWidget(viewer)
    viewer.window.add_dock_widget(a, area="right")
    viewer.window.add_dock_widget(r, area="right")
    assert a.project is r.project is session.project  # no dock asked for the project again
    assert a.table.data.to_list()[1][0] == "S2-T1" and r.videos.choices == ("S1-T1", "S2-T1")
    assert [layer.name for layer in viewer.layers].count("S1-T1") == 1  # one copy of the video's layers
    r.videos.value = "S2-T1"  # the review dock picks a video: the annotation dock follows
    assert a.video.id == "S2-T1" and "S2-T1" in viewer.layers and "S1-T1" not in viewer.layers
    a.open_video("S1-T1")  # and the other way round
    assert r.video_id == "S1-T1" and r.videos.value == "S1-T1"
    with pytest.raises(SonolabelError):
        Project.open(path, mode="a")  # held by this viewer
    viewer.close()
    from qtpy.QtWidgets import QApplication

    QApplication.processEvents()
    with Project.open(path, mode="a"):  # closing the viewer released the lock
        pass


def test_timeline_shows_the_video_follows_saves_and_jobs_and_a_click_moves_the_viewer(make_napari_viewer, small_project, qtbot):
    from qtpy.QtCore import QPoint, Qt

    from sonolabel.store import LabelSource

    path, labels = small_project
    viewer, w = _dock(make_napari_viewer, path)
    tl = w.session.timeline
    qtbot.waitUntil(lambda: tl.width() > 200, timeout=5000)
    assert tl.timeline.keyframes == [0, 40] and [s for _, _, s in tl.timeline.runs()][1] == LabelSource.NONE
    image = tl.grab().toImage()
    assert image.width() > 200 and len({image.pixel(x, tl.height() // 6) for x in range(0, image.width(), 7)}) > 2  # drawn, not blank
    # a real click a quarter of the way along goes to frame ~10
    x = int(round(tl.x_of(10.5)))
    qtbot.mouseClick(tl, Qt.MouseButton.LeftButton, pos=QPoint(x, tl.height() // 2))
    assert w.current_frame == 10
    # propagation fills the labels band and the confidence curve as it runs
    worker = w.propagate()
    with qtbot.waitSignal(worker.finished, timeout=120_000):
        pass
    qtbot.waitUntil(lambda: len(tl.timeline.runs()) == 3, timeout=2000)
    assert [s for _, _, s in tl.timeline.runs()] == [LabelSource.ANNOTATED, LabelSource.PROPAGATED, LabelSource.ANNOTATED]
    assert np.isfinite(tl.timeline.confidence).all()
    # a saved correction shows as a corrected keyframe at once, and in the video table's keyframe count
    w.labels_layer.paint((10, 30, 30), 5)
    w.save()
    qtbot.waitUntil(lambda: tl.timeline.corrected == [10], timeout=1000)
    assert w.table.data.to_list()[0][4] == 3
    # drift from the viewer puts its flags on the timeline and in the video table
    worker = w.drift()
    with qtbot.waitSignal(worker.finished, timeout=300_000):
        pass
    qtbot.waitUntil(lambda: "drift flags" in w.status.value, timeout=5000)
    n = int(w.status.value.split(": ")[1].split(" ")[0])
    qtbot.waitUntil(lambda: len(tl.timeline.flags) == n, timeout=1000)
    assert w.table.data.to_list()[0][-1] == (f"0/{n}" if n else "-")
    w.close_project()


def test_timeline_redraws_a_2500_frame_video_within_50_ms(make_napari_viewer, qtbot):
    from sonolabel.review.timeline import Timeline
    from sonolabel.store import LabelSource
    from sonolabel_napari._session import session_for
    from sonolabel_napari._timeline import TimelineWidget

    rng = np.random.default_rng(0)
    n = 2500
    sources = np.full(n, LabelSource.PROPAGATED, np.uint8)
    sources[::200] = LabelSource.ANNOTATED
    sources[100::400] = LabelSource.CORRECTED
    sources[2300:] = LabelSource.NONE
    confidence = np.clip(0.9 + 0.05 * rng.standard_normal(n), 0, 1).astype(np.float32)
    confidence[sources == LabelSource.NONE] = np.nan
    starts = np.sort(rng.choice(n - 50, 120, replace=False))
    flags = [
        {"start": int(s), "stop": int(s) + 30, "severity": float(rng.random()), "kind": "trend", "state": "pending" if i % 3 else "accepted"}
        for i, s in enumerate(starts)
    ]
    viewer = make_napari_viewer()
    tl = TimelineWidget(session_for(viewer))
    tl.resize(1600, 84)
    tl.timeline = Timeline(n, sources, confidence, flags)
    full = [tl.draw_ms() for _ in range(15)]
    assert np.median(full) < 50, f"timeline redraw {np.median(full):.1f} ms"
    image = tl.grab().toImage()  # what was drawn: the flags band holds pending flags' colours
    y = int(np.mean(tl._band("flags")))
    assert len({image.pixel(x, y) for x in range(80, 1590, 3)}) > 10


def test_uncertainty_overlay_is_lazy_toggles_with_one_key_and_has_a_legend(make_napari_viewer, small_project, qtbot):
    import dask.array as da
    from napari.utils.action_manager import action_manager

    from sonolabel.propagation import propagate_video
    from sonolabel.store import Project

    path, labels = small_project
    with Project.open(path, mode="a") as p:
        propagate_video(p.video("S1-T1"))
    viewer, w = _dock(make_napari_viewer, path)
    layer = viewer.layers["uncertainty"]
    assert not layer.visible and isinstance(layer.data, da.Array)  # read lazily, hidden until asked for
    assert layer.data.shape[1] < 240 and np.allclose(layer.data.shape[1] * layer.scale[1], 240)  # key grid laid over the frame
    action_manager.trigger("sonolabel:toggle_uncertainty")  # Alt-U
    assert layer.visible and layer.colorbar.visible and "uncertainty" in layer.colormap.name
    viewer.dims.set_current_step(0, 20)
    qtbot.wait(100)
    assert np.asarray(layer.data[20]).max() > 0 and np.asarray(layer.data[0]).max() == 0  # unsure somewhere; a keyframe never
    action_manager.trigger("sonolabel:toggle_uncertainty")
    assert not layer.visible
    w.close_project()


def test_export_from_the_viewer_writes_the_same_dataset_as_the_cli(make_napari_viewer, small_project, qtbot, tmp_path):
    import zarr

    from sonolabel.cli.main import main
    from sonolabel.export import dataset
    from sonolabel.propagation import propagate_video
    from sonolabel.store import Project

    path, _ = small_project
    with Project.open(path, mode="a") as p:
        propagate_video(p.video("S1-T1"))
    viewer, w = _dock(make_napari_viewer, path)
    assert w.dataset.value.name == "p-dataset.zarr"  # a default beside the project
    worker = w.export(tmp_path / "from-viewer.zarr")
    with qtbot.waitSignal(worker.finished, timeout=120_000):
        pass
    assert "dataset written" in w.status.value
    assert main(["export", str(path), str(tmp_path / "from-cli.zarr")]) == 0  # a reader beside the viewer's writer
    a, b = zarr.open_group(str(tmp_path / "from-viewer.zarr"), mode="r"), zarr.open_group(str(tmp_path / "from-cli.zarr"), mode="r")
    for key in (dataset.IMAGES, dataset.LABELS):
        assert a[key].shape[0] == 41 and np.array_equal(a[key][:], b[key][:])
    ta, tb = (dataset.read_table(tmp_path / name).sort_index(axis=1) for name in ("from-viewer.zarr", "from-cli.zarr"))
    assert ta.equals(tb)
    w.close_project()


def test_click_assist_previews_a_fill_that_one_key_accepts_and_undo_removes(make_napari_viewer, small_project, qtbot):
    from napari.utils.action_manager import action_manager
    from scipy import ndimage as ndi

    from sonolabel.store import Project

    path, labels = small_project
    viewer, w = _dock(make_napari_viewer, path)
    viewer.dims.set_current_step(0, 20)
    truth = labels[20] == 4  # FCR, on a frame with no labels yet
    d = ndi.distance_transform_edt(truth)
    y, x = np.unravel_index(np.argmax(d), d.shape)
    w.pick_class(4)
    action_manager.trigger("sonolabel:assist")  # Alt-C
    strokes = viewer.layers["assist strokes"]
    assert viewer.layers.selection.active is strokes and strokes.selected_label == 4 and strokes.mode == "paint"
    strokes.paint((y, x), 4)  # a click
    qtbot.waitUntil(lambda: w.assist.proposal is not None, timeout=2000)
    proposal = w.assist.proposal == 4  # the frame's labels as proposed: FCR filled in
    assert (viewer.layers["assist preview"].data == 4).sum() == proposal.sum()
    assert (proposal & truth).sum() / (proposal | truth).sum() > 0.6  # the structure, not the click
    assert not (np.asarray(w.labels_layer.data[20]) == 4).any()  # nothing painted before accepting
    action_manager.trigger("sonolabel:accept_fill")  # Alt-A
    assert (np.asarray(w.labels_layer.data[20]) == 4).sum() == proposal.sum() and not viewer.layers["assist strokes"].data.any()
    w.save()
    with Project.open(path) as p:
        assert 20 in p.video("S1-T1").annotated_frames() and (np.asarray(p.video("S1-T1").annotated[20]) == 4).sum() == proposal.sum()
    w.labels_layer.undo()  # one undo step removes the whole fill
    assert not (np.asarray(w.labels_layer.data[20]) == 4).any()
    w.close_project()


def test_a_draft_from_the_subjects_other_recording_is_proposed_not_stored(make_napari_viewer, small_project, qtbot):
    from napari.utils.action_manager import action_manager

    from sonolabel.pipeline import mean_iou
    from sonolabel.store import Project

    path, labels = small_project
    with Project.open(path, mode="a") as p:  # the subject's second recording: the same frames, nothing drawn yet
        with p.staged_video("S1-T2", 41, 240, 240, {"subject": "S1", "trial": "2"}) as v:
            v.frames[:] = np.asarray(p.video("S1-T1").frames[:])[::-1]
    viewer, w = _dock(make_napari_viewer, path)
    w.open_video("S1-T2")
    viewer.dims.set_current_step(0, 10)
    action_manager.trigger("sonolabel:draft")  # Alt-D
    assert "draft from S1-T1" in w.status.value and w.assist.proposal is not None
    assert mean_iou(w.assist.proposal, labels[30], 8) > 0.8  # frame 10 of S1-T2 is frame 30 of S1-T1
    assert not np.asarray(w.labels_layer.data[10]).any() and w.video.annotated_frames() == []  # a proposal only
    action_manager.trigger("sonolabel:accept_fill")  # Alt-A
    w.save()
    assert w.video.annotated_frames() == [10] and mean_iou(np.asarray(w.video.annotated[10]), labels[30], 8) > 0.8
    viewer.dims.set_current_step(0, 14)  # the next keyframe is drafted from this one
    action_manager.trigger("sonolabel:draft")
    assert "draft from this video's keyframe 10" in w.status.value and mean_iou(w.assist.proposal, labels[26], 8) > 0.8
    w.close_project()
