"""The napari front end, driven headless (under Xvfb) through a real viewer."""

import numpy as np
import pytest

napari = pytest.importorskip("napari")
pytestmark = pytest.mark.gui


def test_manifest_validates():
    from npe2 import PluginManifest

    pm = PluginManifest.from_distribution("sonolabel")
    assert {c.id for c in pm.contributions.commands} >= {"sonolabel.get_reader", "sonolabel.phantom_sample"}


def test_reader_opens_project_lazily_with_palette(make_napari_viewer, tmp_path):
    import dask.array as da

    from napari_plugin._reader import get_reader
    from sonolabel.store import Project

    path = tmp_path / "p.zarr"
    with Project.create(path) as p:
        with p.staged_video("S1-T1", 5, 32, 40, {"subject": "S1"}) as v:
            v.frames[:] = 100
        mask = np.zeros((32, 40), np.uint8)
        mask[4:9, 4:9] = 2
        p.video("S1-T1").save_annotation(3, mask)
    assert get_reader(str(tmp_path)) is None
    reader = get_reader(str(path))
    layers = reader(str(path))
    assert isinstance(layers[0][0], da.Array) and layers[1][2] == "labels"
    viewer = make_napari_viewer()
    for data, kwargs, kind in layers:
        getattr(viewer, f"add_{kind}")(data, **kwargs)
    lab = viewer.layers["S1-T1 labels"]
    assert int(np.asarray(lab.data[3]).max()) == 2
    assert np.allclose(lab.colormap.map(2)[:3], (0, 0, 1))  # FDP is blue in the project palette


def test_sample_data_loads(make_napari_viewer):
    viewer = make_napari_viewer()
    viewer.open_sample("sonolabel", "phantom")
    assert viewer.layers["phantom"].data.shape[1:] == (480, 480)
    assert viewer.layers["phantom labels"].data.max() == 7
