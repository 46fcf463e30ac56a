"""A corpus of bad inputs, generated here: each gets one clear error (type and message checked), no
traceback on the command line, nothing partial written and existing data untouched."""

import hashlib
import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from conftest import boxed_frames, sonolabel_cli, write_video
from sonolabel import InputError, StoreError
from sonolabel.phantom import generate_phantom, phantom_project
from sonolabel.store import Project


cli = sonolabel_cli


def tree_digest(path: Path) -> str:
    """A digest of every file (name and bytes) under ``path``, to prove it untouched."""
    h = hashlib.sha256()
    for f in sorted(p for p in Path(path).rglob("*") if p.is_file() and p.name != ".lock"):
        h.update(str(f.relative_to(path)).encode())
        h.update(f.read_bytes())
    return h.hexdigest()


def one_line_error(r, *needles):
    assert r.returncode == 2, (r.returncode, r.stdout, r.stderr)
    errors = [line for line in r.stderr.splitlines() if line.startswith("sonolabel: error:")]
    assert "Traceback" not in r.stderr and len(errors) == 1, r.stderr  # (progress bars may precede it)
    for n in needles:
        assert n in r.stderr, (n, r.stderr)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    root = tmp_path_factory.mktemp("bad")
    good = write_video(root / "good.mp4", boxed_frames(12, 96, 128, box=(16, 0, 96, 96)))
    data = good.read_bytes()
    (root / "truncated.mp4").write_bytes(data[: len(data) // 2])
    (root / "corrupt.mp4").write_bytes(os.urandom(5000))
    (root / "text.avi").write_text("not a video at all\n")
    mixed = root / "mixed"
    mixed.mkdir()
    for i, shape in enumerate([(64, 64), (64, 64), (80, 64)]):
        Image.fromarray(np.full(shape, 100, np.uint8)).save(mixed / f"{i:03d}.png")
    Project.create(root / "p.zarr").close()
    assert cli("import", root / "p.zarr", good, "--subject", "S1", "--crop", "16,0,96,96").returncode == 0
    return root


def _video_id(project):
    with Project.open(project) as p:
        return p.video_ids()[0]


@pytest.mark.parametrize("name, needle", [("truncated.mp4", "truncated.mp4"), ("corrupt.mp4", "corrupt.mp4"), ("text.avi", "text.avi"), ("mixed", "mixed")])
def test_bad_recordings_refused_project_untouched(corpus, tmp_path, name, needle):
    project = tmp_path / "p.zarr"
    shutil.copytree(corpus / "p.zarr", project)
    before = tree_digest(project)
    one_line_error(cli("import", project, corpus / name, "--subject", "S2"), needle)
    assert tree_digest(project) == before


def test_zero_frame_video_refused(corpus, tmp_path):
    import av

    empty = tmp_path / "empty.mp4"
    with av.open(str(empty), "w") as out:
        s = out.add_stream("libx264", rate=20)
        s.width = s.height = 64
    one_line_error(cli("import", tmp_path / "new.zarr", empty, "--subject", "S1"), "empty.mp4")
    assert not (tmp_path / "new.zarr").exists()


def test_unsupported_codec_refused(tmp_path):
    avi = write_video(tmp_path / "mjpeg.avi", boxed_frames(6, 64, 64, box=(0, 0, 64, 64)), codec="mjpeg")
    (tmp_path / "odd.avi").write_bytes(avi.read_bytes().replace(b"MJPG", b"ZZZZ"))  # a codec FFmpeg does not know
    one_line_error(cli("import", tmp_path / "new.zarr", tmp_path / "odd.avi", "--subject", "S1"), "odd.avi", "codec")
    assert not (tmp_path / "new.zarr").exists()


def test_audio_only_file_refused(tmp_path):
    import av

    audio = tmp_path / "audio.mp4"
    with av.open(str(audio), "w") as out:
        s = out.add_stream("aac", rate=8000)
        frame = av.AudioFrame.from_ndarray(np.zeros((1, 1024), np.float32), format="fltp", layout="mono")
        frame.sample_rate = 8000
        for pkt in s.encode(frame):
            out.mux(pkt)
        for pkt in s.encode():
            out.mux(pkt)
    one_line_error(cli("import", tmp_path / "new.zarr", audio, "--subject", "S1"), "audio.mp4")


def test_bad_kinematics_refused(corpus, tmp_path):
    good = corpus / "good.mp4"
    rows = "\n".join(f"{t},{t / 20},10,20,30,40,50" for t in range(12))
    for name, text, needle in (("nan.csv", rows.replace("10,20", "nan,20", 1), "NaN"), ("short.csv", "\n".join(rows.splitlines()[:5]), "rows")):
        path = tmp_path / name
        path.write_text("frame,time,thumb,index,middle,ring,little\n" + text + "\n")
        one_line_error(cli("import", tmp_path / "new.zarr", good, "--subject", "S1", "--kinematics", path), name, needle)
        assert not (tmp_path / "new.zarr").exists()


def _palette_file(tmp_path, palette):
    f = tmp_path / "palette.json"
    f.write_text(json.dumps(palette))
    return f


def _mask_dir(tmp_path, name, arr):
    d = tmp_path / name
    d.mkdir()
    Image.fromarray(arr).save(d / "000003.png")
    return d


@pytest.mark.parametrize("kind", ["wrong_size", "unknown_colours", "bgr"])
def test_bad_masks_refused_annotations_untouched(corpus, tmp_path, kind):
    from sonolabel.palette import FOREARM

    project = tmp_path / "p.zarr"
    shutil.copytree(corpus / "p.zarr", project)
    vid = _video_id(project)
    before = tree_digest(project)
    colours = np.array(FOREARM.colors, np.uint8)
    if kind == "wrong_size":
        arr, needle = colours[np.zeros((50, 60), int)], "size"
    elif kind == "unknown_colours":
        arr, needle = np.full((96, 96, 3), 128, np.uint8), "unknown"
    else:
        # the forearm palette maps onto itself when red and blue swap (FDP<->FPL, FCR<->ulna), so a BGR
        # mask is caught only with a palette where the swap leads to unknown colours
        palette = {
            "classes": [
                {"value": 0, "name": "background", "color": [0, 0, 0]},
                {"value": 1, "name": "a", "color": [230, 25, 75]},
                {"value": 2, "name": "b", "color": [60, 180, 75]},
            ]
        }
        project = tmp_path / "bgr.zarr"
        assert (
            cli("import", project, corpus / "good.mp4", "--subject", "S1", "--crop", "16,0,96,96", "--palette", _palette_file(tmp_path, palette)).returncode
            == 0
        )
        vid = _video_id(project)
        before = tree_digest(project)
        idx = np.repeat(np.arange(3), 32)[None, :].repeat(96, 0)
        arr, needle = np.array([c["color"] for c in palette["classes"]], np.uint8)[idx][..., ::-1].copy(), "--bgr"
    d = _mask_dir(tmp_path, kind, arr)
    one_line_error(cli("keyframes", "import", project, vid, "--masks", d), "000003.png", needle)
    assert tree_digest(project) == before


def test_checkpoints_for_other_classes_or_with_pickles_refused(corpus, tmp_path):
    from sonolabel.checkpoint import save_checkpoint

    project = tmp_path / "p.zarr"
    shutil.copytree(corpus / "p.zarr", project)
    before = tree_digest(project)
    other = tmp_path / "other.pt"
    save_checkpoint(other, {"kind": "unet", "classes": ["background", "nerve", "vessel"], "config": {}, "model": {}})
    one_line_error(cli("predict", project, "--model", other), "other.pt", "classes")
    evil = tmp_path / "evil.pt"
    torch.save({"format": "sonolabel-checkpoint", "kind": "unet", "x": Path("/")}, evil)
    one_line_error(cli("predict", project, "--model", evil), "evil.pt", "refused")
    assert tree_digest(project) == before


def test_dataset_escaping_its_root_refused(tmp_path):
    ph = tmp_path / "ph"
    generate_phantom(ph, subjects=1, frames=8, seed=1)
    manifest = json.loads((ph / "manifest.json").read_text())
    manifest["recordings"][0]["video"] = "../../etc/passwd"
    (ph / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(InputError, match="outside"):
        phantom_project(ph, tmp_path / "p.zarr")
    assert not (tmp_path / "p.zarr").exists()
    generate_phantom(tmp_path / "ph2", subjects=1, frames=8, seed=1)
    with phantom_project(tmp_path / "ph2", tmp_path / "p2.zarr") as p:
        from sonolabel.export import ExportConfig, export_dataset

        ds = export_dataset(p, tmp_path / "ds", ExportConfig(size=32))
    outside = tmp_path / "elsewhere.json"
    outside.write_text(json.dumps({"train": ["sub-01"], "val": []}))
    (ds / "splits.json").unlink()
    (ds / "splits.json").symlink_to(outside)
    r = cli("train", "unet", ds, "--out", tmp_path / "run", "--set", "epochs=1")
    one_line_error(r, "splits.json", "outside")
    assert not (tmp_path / "run").exists()


def test_newer_schema_refused_on_every_command(corpus, tmp_path):
    project = tmp_path / "p.zarr"
    shutil.copytree(corpus / "p.zarr", project)
    meta = json.loads((project / "zarr.json").read_text())
    meta["attributes"]["sonolabel"]["schema"] = 99
    (project / "zarr.json").write_text(json.dumps(meta))
    before = tree_digest(project)
    for args in (("info", project), ("propagate", project), ("drift", project), ("export", project, tmp_path / "ds")):
        one_line_error(cli(*args), "schema 99", "upgrade")
    assert tree_digest(project) == before and not (tmp_path / "ds").exists()


def test_write_error_mid_save_leaves_previous_labels(corpus, tmp_path, monkeypatch):
    from zarr.storage import LocalStore

    project = tmp_path / "p.zarr"
    shutil.copytree(corpus / "p.zarr", project)
    vid = _video_id(project)
    with Project.open(project, "a") as p:
        v = p.video(vid)
        first = np.full((96, 96), 2, np.uint8)
        v.save_annotation(5, first)
        before = tree_digest(project)

        async def failing_set(self, key, value, *a, **k):
            raise OSError(28, "No space left on device")

        monkeypatch.setattr(LocalStore, "set", failing_set)
        with pytest.raises(StoreError, match="frame 5.*No space left") as e:
            v.save_annotation(5, np.full((96, 96), 3, np.uint8))
        assert "unchanged" in str(e.value)
        monkeypatch.undo()
        np.testing.assert_array_equal(v.annotated[5], first)
    assert tree_digest(project) == before


def test_bad_intake_refused_project_untouched(corpus, tmp_path):
    """New intake paths: a mask video of another frame count, a CVAT labelmap with an unknown class, a
    DICOM without pixel data, a compressed DICOM with no decoder installed."""
    from pydicom.uid import JPEGLSLossless

    from sonolabel.palette import FOREARM
    from test_intake import _cvat_export, _dicom, write_colour_video

    project = tmp_path / "p.zarr"
    shutil.copytree(corpus / "p.zarr", project)
    vid = _video_id(project)
    before = tree_digest(project)
    labels = np.zeros((20, 96, 96), np.uint8)
    labels[:, 20:60, 30:70] = 2
    short = write_colour_video(tmp_path / "short.mp4", FOREARM.colorize(labels))  # the video has 12 frames
    one_line_error(cli("labels", "import", project, vid, "--masks", short), "short.mp4", "20 frames", "12")
    cvat = _cvat_export(tmp_path / "cvat", labels, (0,), "background:0,0,0::\nbiceps:1,2,3::\n")
    one_line_error(cli("labels", "import", project, vid, "--masks", cvat), "labelmap.txt", "biceps")
    one_line_error(cli("keyframes", "import", project, vid, "--masks", short), "short.mp4", "--frames")
    assert tree_digest(project) == before
    one_line_error(cli("import", project, _dicom(tmp_path / "sr.dcm", boxed_frames(3), pixels=False), "--subject", "S2"), "sr.dcm", "no pixel data")
    one_line_error(
        cli("import", project, _dicom(tmp_path / "jls.dcm", boxed_frames(3), syntax=JPEGLSLossless), "--subject", "S2"), "jls.dcm", "pip install pylibjpeg"
    )
    assert tree_digest(project) == before
