import json
import os
import subprocess
import sys

import numpy as np
import pytest

from sonolabel import LockError, SchemaError, StoreError
from sonolabel.store import LabelSource, Project


def _video(project, n=6, h=20, w=30):
    vid = project.new_video_id("S01", 1)
    with project.staged_video(vid, n, h, w, {"subject": "S01", "fps": 20.0}) as v:
        v.frames[:] = np.arange(n * h * w, dtype=np.uint32).reshape(n, h, w) % 251
    return project.video(vid)


def test_reopen_keeps_frames_labels_and_table(tmp_path):
    path = tmp_path / "p.zarr"
    with Project.create(path) as p:
        v = _video(p)
        mask = np.zeros((20, 30), np.uint8)
        mask[2:5, 3:9] = 6
        v.save_annotation(4, mask, who="ana")
        v.save_annotation(1, np.zeros((20, 30), np.uint8), who="ana")  # all background is still a keyframe
        frames = v.frames[:]
    with Project.open(path) as p:
        v = p.video("S01-T1")
        np.testing.assert_array_equal(v.frames[:], frames)
        assert v.annotated_frames() == [1, 4]
        np.testing.assert_array_equal(v.labels(4), mask)
        t = v.table()
        assert t.loc[4, "keyframe"] and t.loc[4, "source"] == "annotated" and t.loc[4, "edited_by"] == "ana"
        assert not t.loc[0, "keyframe"] and t.loc[0, "source"] == "none"
        assert v.frames.chunks == (1, 20, 30)


def test_correction_and_unmark(project):
    v = _video(project)
    v.save_propagated(0, np.ones((6, 20, 30), np.uint8))
    v.save_annotation(2, np.full((20, 30), 3, np.uint8))
    assert v.sources()[2] == LabelSource.CORRECTED and v.sources()[3] == LabelSource.PROPAGATED
    assert v.labels(2, "final").max() == 3 and v.labels(3, "final").max() == 1
    v.save_propagated(0, np.full((6, 20, 30), 2, np.uint8))
    assert v.labels(2, "final").max() == 3  # propagation never overwrites an annotation
    v.remove_annotation(2)
    assert v.annotated_frames() == [] and v.sources()[2] == LabelSource.PROPAGATED


def test_state_written_through_two_video_objects_keeps_both(project):
    """Two jobs holding their own Video object for one video (propagation's mode choice and a check, say)
    each store their state; neither write drops the other's."""
    a = _video(project)
    b = project.video(a.id)
    a.set_state("first", {"x": 1})
    b.set_state("second", [2])
    a.update_attrs(note="kept")
    fresh = project.video(a.id)
    assert fresh.state("first") == {"x": 1} and fresh.state("second") == [2] and fresh.attrs["note"] == "kept"
    assert b.state("first") == {"x": 1}


def test_bad_masks_refused(project):
    v = _video(project)
    with pytest.raises(Exception, match="30x20"):
        v.save_annotation(0, np.zeros((10, 10), np.uint8), source_name="m.png")
    with pytest.raises(Exception, match="8 classes"):
        v.save_annotation(0, np.full((20, 30), 9, np.uint8))
    assert v.annotated_frames() == []


def test_read_only_open_cannot_write(tmp_path):
    with Project.create(tmp_path / "p.zarr") as p:
        _video(p)
    with Project.open(tmp_path / "p.zarr") as p:
        with pytest.raises(StoreError, match="read-only"):
            p.video("S01-T1").save_annotation(0, np.zeros((20, 30), np.uint8))


def test_second_writer_refused_with_holder_named(tmp_path):
    path = tmp_path / "p.zarr"
    Project.create(path).close()
    code = f"from sonolabel.store import Project; import time; p = Project.open({str(path)!r}, 'a'); print('ok', flush=True); time.sleep(60)"
    holder = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "ok"
        with pytest.raises(LockError, match=f"pid {holder.pid}"):
            Project.open(path, "a")
        Project.open(path).close()  # readers are welcome
    finally:
        holder.kill()  # SIGKILL: the lock is left behind in the file...
        holder.wait()
    with Project.open(path, "a") as p:  # ...and recovered safely
        assert p.writable and p._lock.recovered_from["pid"] == holder.pid


def test_newer_schema_refused(tmp_path):
    path = tmp_path / "p.zarr"
    Project.create(path).close()
    meta = json.loads((path / "zarr.json").read_text())
    meta["attributes"]["sonolabel"]["schema"] = 99
    (path / "zarr.json").write_text(json.dumps(meta))
    with pytest.raises(SchemaError, match="schema 99.*upgrade"):
        Project.open(path)


def test_not_a_project(tmp_path):
    with pytest.raises(StoreError, match="not a sonolabel project"):
        Project.open(tmp_path)
    (tmp_path / "x").mkdir()
    (tmp_path / "x" / "f").write_text("")
    with pytest.raises(StoreError, match="not empty"):
        Project.create(tmp_path / "x")


def test_failed_staging_leaves_nothing(project):
    with pytest.raises(RuntimeError):
        with project.staged_video("v", 4, 8, 8, {}) as v:
            v.frames[0] = 1
            raise RuntimeError("decoder died")
    assert project.video_ids() == []
    assert not any(p.name.startswith(".staging") for p in (project.path / "videos").iterdir())


def test_annotation_survives_kill_after_save(tmp_path):
    path = tmp_path / "p.zarr"
    with Project.create(path) as p:
        _video(p)
    code = (
        "import os, numpy as np; from sonolabel.store import Project\n"
        f"p = Project.open({str(path)!r}, 'a'); v = p.video('S01-T1')\n"
        "v.save_annotation(3, np.full((20, 30), 5, np.uint8))\n"
        "os.kill(os.getpid(), 9)\n"
    )
    r = subprocess.run([sys.executable, "-c", code])
    assert r.returncode == -9
    with Project.open(path, "a") as p:  # the dead writer's lock is recovered
        v = p.video("S01-T1")
        assert v.annotated_frames() == [3] and int(v.labels(3).max()) == 5
    assert not [f for f in os.listdir(path / "videos" / "S01-T1" / "labels" / "annotated" / "c") if not f.isdigit()]
