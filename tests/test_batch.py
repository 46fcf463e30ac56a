"""Batch work on dask: a 2-worker LocalCluster on loopback gives the same results as a serial run."""

import os
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
    from sonolabel.propagation.project import propagate_project

    serial, parallel = tmp_path / "serial.zarr", tmp_path / "parallel.zarr"
    shutil.copytree(two_videos, serial)
    shutil.copytree(two_videos, parallel)
    with Project.open(serial, "a") as p:
        propagate_project(p, progress=False)
    threads = {k: os.environ.get(k) for k in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")}
    with Project.open(parallel, "a") as p:
        reports = propagate_project(p, workers=2, progress=False)
    assert sorted(r.video for r in reports) == sorted(_labels(serial))
    # dask sets these to 1 in the process that starts a local cluster; processes started after it must not inherit that
    assert {k: os.environ.get(k) for k in threads} == threads
    a, b = _labels(serial), _labels(parallel)
    for vid in a:
        assert a[vid].any()
        agree = (a[vid] == b[vid]).mean()
        assert agree == 1.0, (vid, agree)


def test_cli_propagate_on_an_existing_cluster(two_videos, tmp_path):
    from dask.distributed import LocalCluster

    from sonolabel.tasks import environ_kept

    path = tmp_path / "p.zarr"
    shutil.copytree(two_videos, path)
    with environ_kept():  # the cluster's thread settings are its workers', not this test process's
        cluster = LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1", dashboard_address=None)
    try:
        r = subprocess.run(
            [sys.executable, "-m", "sonolabel", "propagate", str(path), "sub-01-T1-phantom", "--scheduler", cluster.scheduler_address],
            capture_output=True,
            text=True,
            timeout=600,
        )
    finally:
        with environ_kept():
            cluster.close()
    assert r.returncode == 0, r.stderr[-2000:]
    labels = _labels(path)  # one video is enough to show the CLI's tasks run on the cluster
    assert labels["sub-01-T1-phantom"].any() and not labels["sub-02-T1-phantom"].any()
    r = subprocess.run(
        [sys.executable, "-m", "sonolabel", "propagate", str(path), "--scheduler", "tcp://127.0.0.1:9"], capture_output=True, text=True, timeout=120
    )
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


def test_import_manifest_on_two_workers_equals_serial(tmp_path):
    generate_phantom(tmp_path / "ph", subjects=2, frames=12, seed=3, trials=2)
    manifest = tmp_path / "ph" / "recordings.csv"
    lines = ["source,subject,trial,task,kinematics"]
    for s in ("sub-01", "sub-02"):
        for t in (1, 2):
            lines.append(f"{s}/trial-{t}/video.mp4,{s},{t},grip,{s}/trial-{t}/kinematics.csv")
    lines.append("sub-01/trial-1/video.mp4,sub-01,1,grip,")  # the same recording twice gets a second id
    manifest.write_text("\n".join(lines) + "\n")
    digests = {}
    for name, workers in (("serial", 1), ("parallel", 2)):
        path = tmp_path / f"{name}.zarr"
        r = subprocess.run(
            [sys.executable, "-m", "sonolabel", "import", str(path), str(manifest), "--workers", str(workers)], capture_output=True, text=True, timeout=600
        )
        assert r.returncode == 0, r.stderr[-2000:]
        with Project.open(path) as p:
            ids = p.video_ids()
            digests[name] = {v: (np.asarray(p.video(v).frames[:]).tobytes().__hash__(), p.video(v).has_kinematics) for v in ids}
    assert len(digests["serial"]) == 5 and "sub-01-T1-grip-2" in digests["serial"]
    assert digests["serial"] == digests["parallel"]


def test_import_manifest_reports_bad_rows_and_keeps_the_rest(tmp_path):
    generate_phantom(tmp_path / "ph", subjects=1, frames=8, seed=3)
    (tmp_path / "ph" / "broken.mp4").write_bytes(b"\\x00" * 200)
    manifest = tmp_path / "ph" / "list.csv"
    manifest.write_text("source,subject\nsub-01/trial-1/video.mp4,A\nbroken.mp4,B\n")
    r = subprocess.run(
        [sys.executable, "-m", "sonolabel", "import", str(tmp_path / "p.zarr"), str(manifest), "--workers", "2"], capture_output=True, text=True, timeout=600
    )
    assert r.returncode == 2 and "broken.mp4" in r.stderr and "1 of 2 recordings failed" in r.stderr
    with Project.open(tmp_path / "p.zarr") as p:
        assert p.video_ids() == ["A"]


def test_quantize_on_two_workers_equals_serial(tmp_path):
    from PIL import Image

    from sonolabel.palette import FOREARM
    from sonolabel.quantize import quantize_folder

    rng = np.random.default_rng(0)
    colours = np.array(FOREARM.colors, np.int16)
    masks = tmp_path / "masks"
    masks.mkdir()
    for i in range(12):
        idx = rng.integers(0, 8, (40, 40))
        noisy = np.clip(colours[idx] + rng.integers(-6, 7, (40, 40, 3)), 0, 255).astype(np.uint8)
        Image.fromarray(noisy).save(masks / f"{i:04d}.png")
    a = quantize_folder(masks, tmp_path / "serial", FOREARM)
    b = quantize_folder(masks, tmp_path / "parallel", FOREARM, workers=2)
    assert [r.source for r in a] == [r.source for r in b]
    for f in sorted((tmp_path / "serial").iterdir()):
        np.testing.assert_array_equal(np.asarray(Image.open(f)), np.asarray(Image.open(tmp_path / "parallel" / f.name)))


def test_export_on_two_workers_equals_serial(two_videos, tmp_path):
    from sonolabel.export import ExportConfig, export_dataset
    from sonolabel.export.dataset import dataset_info, read_table

    with Project.open(two_videos) as p:
        a = export_dataset(p, tmp_path / "serial", ExportConfig(size=64))
        b = export_dataset(p, tmp_path / "parallel", ExportConfig(size=64), workers=2)
    assert dataset_info(a)["provenance"]["content_sha256"] == dataset_info(b)["provenance"]["content_sha256"]
    assert read_table(a).sort_index(axis=1).equals(read_table(b).sort_index(axis=1))
    import zarr

    np.testing.assert_array_equal(zarr.open_array(str(a / "labels/classes/0"))[:], zarr.open_array(str(b / "labels/classes/0"))[:])
    np.testing.assert_array_equal(zarr.open_array(str(a / "kinematics"))[:], zarr.open_array(str(b / "kinematics"))[:])
