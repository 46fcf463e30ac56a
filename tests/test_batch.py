"""Batch work on dask: a 2-worker LocalCluster on loopback gives the same results as a serial run."""

import shutil
import subprocess
import sys

import numpy as np
import pytest

from sonolabel import LockError
from sonolabel.phantom import generate_phantom, phantom_project
from sonolabel.store import Project


@pytest.fixture(scope="module")
def two_videos(tmp_path_factory):
    """Two phantom videos (2 subjects x 60 frames), keyframes every 30 frames."""
    root = tmp_path_factory.mktemp("batch")
    generate_phantom(root / "ph", subjects=2, frames=60, seed=9)
    phantom_project(root / "ph", root / "p.zarr", keyframe_every=30).close()
    with Project.open(root / "p.zarr", "a") as p:
        for v in p.videos():
            v.save_propagated(0, np.zeros((v.n_frames, v.height, v.width), np.uint8))
            v.group.attrs.pop("propagation", None)
    return root / "p.zarr"


def _labels(path):
    with Project.open(path) as p:
        return {v.id: np.asarray(v.propagated[:]) for v in p.videos()}


def test_propagate_on_a_two_worker_local_cluster_equals_serial(two_videos, tmp_path):
    from sonolabel.propagation.batch import propagate_project

    serial, parallel = tmp_path / "serial.zarr", tmp_path / "parallel.zarr"
    shutil.copytree(two_videos, serial)
    shutil.copytree(two_videos, parallel)
    with Project.open(serial, "a") as p:
        propagate_project(p, progress=False)
    with Project.open(parallel, "a") as p:
        reports = propagate_project(p, workers=2, progress=False)
    assert sorted(r.video for r in reports) == sorted(_labels(serial))
    a, b = _labels(serial), _labels(parallel)
    for vid in a:
        assert a[vid].any()
        agree = (a[vid] == b[vid]).mean()
        assert agree == 1.0, (vid, agree)


def test_cli_propagate_on_an_existing_cluster(two_videos, tmp_path):
    from dask.distributed import LocalCluster

    path = tmp_path / "p.zarr"
    shutil.copytree(two_videos, path)
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1", dashboard_address=None) as cluster:
        r = subprocess.run([sys.executable, "-m", "sonolabel", "propagate", str(path), "--scheduler", cluster.scheduler_address],
                           capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-2000:]
    assert all(lab.any() for lab in _labels(path).values())
    r = subprocess.run([sys.executable, "-m", "sonolabel", "propagate", str(path), "--scheduler", "tcp://127.0.0.1:9"],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 2 and "dask scheduler" in r.stderr and "Traceback" not in r.stderr


def test_delegated_write_needs_the_live_holders_token(two_videos, tmp_path):
    path = tmp_path / "p.zarr"
    shutil.copytree(two_videos, path)
    with Project.open(path, "a") as holder:
        token = holder.write_token
        with Project.open(path, "a", token=token) as worker:
            assert worker.writable
        with pytest.raises(LockError, match="no longer holds"):
            Project.open(path, "a", token="0" * 32)
    with pytest.raises(LockError):  # the holder is gone: its token no longer lets anyone write
        Project.open(path, "a", token=token)


def test_drift_on_two_workers_equals_serial(two_videos, tmp_path):
    from sonolabel.phantom.corrupt import corrupt_stretch
    from sonolabel.review import ReviewLog, run_drift

    flags = {}
    for name, workers in (("serial", 1), ("parallel", 2)):
        path = tmp_path / f"{name}.zarr"
        shutil.copytree(two_videos, path)
        with Project.open(path, "a") as p:
            for v in p.videos():
                lab = np.asarray(v.propagated[:])
                lab[:] = np.asarray(p.video(v.id).annotated[0])  # a copy of the first keyframe everywhere...
                v.save_propagated(0, corrupt_stretch(lab, 0, 1, 15, "vanish", 5))  # ...and a class vanishing
            run_drift(p, workers=workers)
            flags[name] = ReviewLog(p).flags()
    assert flags["serial"] and flags["serial"] == flags["parallel"]
