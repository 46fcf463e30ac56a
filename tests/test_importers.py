import h5py
import numpy as np
import pytest
from PIL import Image

from conftest import SHARED, boxed_frames, write_video
from sonolabel import InputError
from sonolabel.io import Crop, detect_box, import_recording, import_stills


def test_detect_box_ignores_border_ticks_and_inner_dark_bands():
    f = boxed_frames(4, 480, 640, box=(80, 0, 480, 480))
    f[:, 100:160, 80:560] = 0  # an anechoic band inside the image
    f[:, ::48, 570:578] = 200  # depth ticks in the border
    assert detect_box(f) == Crop(80, 0, 480, 480)


def test_video_import_crops_and_records_provenance(project, tmp_path):
    frames = boxed_frames(15, 120, 160, box=(20, 0, 120, 120))
    path = write_video(tmp_path / "clip.mp4", frames)
    vid = import_recording(project, path, subject="S02", trial=3, task="fist")
    v = project.video(vid)
    assert vid == "S02-T3-fist" and v.n_frames == 15 and (v.height, v.width) == (120, 120)
    a = v.attrs
    assert a["crop"] == [20, 0, 120, 120] and a["fps"] == 20.0 and a["n_frames_header"] == 15
    assert len(a["sha256"]) == 64 and a["subject"] == "S02" and a["trial"] == "3"
    assert np.abs(v.frames[7].astype(int) - frames[7, :, 20:140]).mean() < 12  # lossy codec


def test_avi_and_crop_override(project, tmp_path):
    frames = boxed_frames(5, 64, 96, box=(16, 0, 64, 64))
    path = write_video(tmp_path / "clip.avi", frames, codec="mjpeg")
    vid = import_recording(project, path, subject="S1", crop="10,0,70,64")
    assert project.video(vid).attrs["crop"] == [10, 0, 70, 64] and project.video(vid).width == 70
    with pytest.raises(InputError, match="outside"):
        import_recording(project, path, subject="S1", crop="50,0,70,64")


def test_truncated_and_empty_videos_refused(project, tmp_path):
    path = write_video(tmp_path / "clip.mp4", boxed_frames(40, 96, 128, box=(0, 0, 128, 96)))
    data = path.read_bytes()
    bad = tmp_path / "cut.mp4"
    bad.write_bytes(data[: len(data) // 2])
    with pytest.raises(InputError, match="cut.mp4"):
        import_recording(project, bad, subject="S1")
    empty = tmp_path / "empty.mp4"
    empty.write_bytes(b"")
    with pytest.raises(InputError, match="empty.mp4"):
        import_recording(project, empty, subject="S1")
    garbage = tmp_path / "noise.avi"
    garbage.write_bytes(np.random.default_rng(0).bytes(5000))
    with pytest.raises(InputError, match="noise.avi"):
        import_recording(project, garbage, subject="S1")
    assert project.video_ids() == []
    assert [p.name for p in (project.path / "videos").iterdir() if p.is_dir()] == []


def test_frame_folder_natural_order_and_mixed_sizes(project, tmp_path):
    d = tmp_path / "frames"
    d.mkdir()
    frames = boxed_frames(11, 40, 40, box=(0, 0, 40, 40))
    for i, f in enumerate(frames):
        Image.fromarray(f).save(d / f"img{i}.png")  # img10 must come after img9
    vid = import_recording(project, d, subject="S1", fps=15)
    v = project.video(vid)
    np.testing.assert_array_equal(v.frames[10], frames[10])
    assert v.attrs["fps"] == 15
    Image.fromarray(np.zeros((30, 40), np.uint8)).save(d / "img11.png")
    with pytest.raises(InputError, match="differ in size.*img11.png"):
        import_recording(project, d, subject="S1")
    assert project.video_ids() == [vid]


def test_hdf5_session_with_kinematics_and_key_mapping(project, tmp_path):
    frames = boxed_frames(9, 50, 60, box=(5, 0, 50, 50))
    kin = np.random.default_rng(0).uniform(0, 90, (9, 5))
    with h5py.File(tmp_path / "s.h5", "w") as f:
        f["us/frames"] = frames
        f["time"] = np.arange(9) / 25.0
        for i, name in enumerate(("thumb", "index", "middle", "ring", "little")):
            f[name] = kin[:, i]
    vid = import_recording(project, tmp_path / "s.h5", subject="S1", h5_keys={"image": "us/frames"})
    v = project.video(vid)
    assert v.n_frames == 9 and abs(v.attrs["fps"] - 25.0) < 1e-6
    np.testing.assert_allclose(v.kinematics().to_numpy(), kin, rtol=1e-6)
    assert list(v.table().columns[-5:]) == ["thumb", "index", "middle", "ring", "little"]
    with pytest.raises(InputError, match="no image dataset.*--key image="):
        import_recording(project, tmp_path / "s.h5", subject="S1")
    with h5py.File(tmp_path / "nan.h5", "w") as f:
        f["image"] = frames
        f["kinematics"] = np.full((8, 5), 1.0)
    with pytest.raises(InputError, match="8 rows but there are 9 frames"):
        import_recording(project, tmp_path / "nan.h5", subject="S1")
    assert project.video_ids() == [vid]


def test_kinematics_csv(project, phantom_dir):
    from sonolabel.phantom import read_manifest

    rec = read_manifest(phantom_dir)[0]
    vid = import_recording(project, phantom_dir / rec.video, subject=rec.subject, kinematics=phantom_dir / rec.kinematics)
    v = project.video(vid)
    assert v.attrs["crop"] == rec.crop and v.n_frames == rec.frames
    assert list(v.kinematics().columns) == ["thumb", "index", "middle", "ring", "little"]


def test_stills_pairs_import(project, tmp_path):
    from sonolabel.palette import FOREARM

    (tmp_path / "set" / "images").mkdir(parents=True)
    (tmp_path / "set" / "masks").mkdir()
    rng = np.random.default_rng(0)
    for i in range(3):
        img = rng.integers(30, 200, (40, 50), dtype=np.uint8)
        lab = np.zeros((40, 50), np.uint8)
        lab[5:15, 10:30] = i + 1
        Image.fromarray(img).save(tmp_path / "set" / "images" / f"{i}.png")
        Image.fromarray(FOREARM.rgb[lab]).save(tmp_path / "set" / "masks" / f"{i}.png")
    ids = import_stills(project, tmp_path / "set", subject="lab")
    assert ids == ["lab-0", "lab-1", "lab-2"]
    v = project.video("lab-2")
    assert v.annotated_frames() == [0] and int(v.labels(0).max()) == 3 and v.attrs["kind"] == "still"
    Image.fromarray(np.zeros((10, 10, 3), np.uint8)).save(tmp_path / "set" / "masks" / "1.png")
    with pytest.raises(InputError, match="10x10 but its image 1.png is 50x40"):
        import_stills(project, tmp_path / "set", subject="other")
    assert len(project.video_ids()) == 3


@pytest.mark.skipif(not (SHARED / "clarius-raw-carotid").is_dir(), reason="shared Clarius sample not present")
def test_clarius_raw_real_sample(project):
    vid = import_recording(project, SHARED / "clarius-raw-carotid" / "carotid_env.raw", subject="C1")
    v = project.video(vid)
    assert (v.height, v.width) == (592, 304) and v.n_frames == 1
    assert v.attrs["fps"] == 18.0 and v.attrs["geometry"] == "pre-scan"
    assert 20 < v.frames[0].mean() < 200
    # axial sample spacing from the header's 15 MHz sampling rate (c / 2fs); 592 samples span the 30 mm depth
    dy, dx = v.attrs["spacing_mm"]
    assert dy == pytest.approx(1540 / (2 * 15e6) * 1e3) and 29 < dy * 592 < 31.5 and dx is None
    assert v.spacing_mm is None  # no line pitch in the header: no areas in mm²


@pytest.mark.skipif(not (SHARED / "usgra-seg").is_dir(), reason="shared usgra-seg sample not present")
def test_usgra_seg_real_pairs(tmp_path):
    import shutil

    from sonolabel.store import Project

    sub = tmp_path / "usgra"
    for kind in ("images", "masks"):
        (sub / kind).mkdir(parents=True)
        for name in ("0000.png", "0040.png", "0064.png"):
            shutil.copy(SHARED / "usgra-seg" / kind / name, sub / kind / name)
    palette = {
        "classes": [
            {"value": 0, "name": "background", "color": [0, 0, 0]},
            {"value": 1, "name": "nerve", "color": [128, 0, 0]},
            {"value": 2, "name": "vessel", "color": [0, 128, 0]},
        ]
    }
    with Project.create(tmp_path / "p.zarr", palette=palette) as p:
        ids = import_stills(p, sub, subject="usgra")
        for vid, name in zip(ids, ("0000.png", "0040.png", "0064.png")):
            v = p.video(vid)
            full = np.asarray(Image.open(sub / "masks" / name))
            assert int((v.labels(0) > 0).sum()) == int((full > 0).sum())  # cropping never cuts a label


def test_clarius_raw_generated_and_truncated(project, tmp_path):
    lines, samples, n = 32, 48, 3
    frames = np.random.default_rng(0).integers(20, 230, (n, lines, samples), dtype=np.uint8)
    body = b"".join(np.int64(1000 * i).tobytes() + f.tobytes() for i, f in enumerate(frames))
    raw = tmp_path / "scan_env.raw"
    raw.write_bytes(np.array([7, n, lines, samples, 1], "<u4").tobytes() + body)
    (tmp_path / "scan_env.yml").write_text("frame rate: 24 Hz\nimaging depth: 40 mm\ntype: B pre-scan\n")
    vid = import_recording(project, raw, subject="C2")
    v = project.video(vid)
    assert (v.n_frames, v.height, v.width) == (3, samples, lines) and v.attrs["fps"] == 24.0
    np.testing.assert_array_equal(v.frames[2], frames[2].T)  # depth down, scan lines across
    cut = tmp_path / "cut_env.raw"
    cut.write_bytes(raw.read_bytes()[:-100])
    with pytest.raises(InputError, match="cut_env.raw.*promises 3 frames"):
        import_recording(project, cut, subject="C2")
    assert project.video_ids() == [vid]
