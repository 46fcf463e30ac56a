"""What users bring in: mask videos (h264, 4:2:0, both palettes, BGR), XMem/DAVIS/CVAT mask folders, whole
label sequences, DICOM (written here with pydicom), TIFF stacks, scanner screen captures (synthetic and the
shared GE Logiq frames), repeated frames, millimetres; and nnU-Net out."""

import json
from pathlib import Path

import numpy as np
import pytest
import zarr
from PIL import Image
from scipy import ndimage

from conftest import boxed_frames
from sonolabel import DAVIS, FOREARM, InputError
from sonolabel.io import import_recording
from sonolabel.io.region import Crop, detect_box
from sonolabel.mask_sequences import frame_index, open_masks, quantize_video
from sonolabel.masks import import_keyframe_masks, import_label_sequence
from sonolabel.store import LabelSource, Project

LOGIQ = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "logiq-gastroc" / "frames"
LOGIQ_BOX = Crop(111, 60, 578, 461)  # shared/data/README.md: "within 3 px"


def write_colour_video(path: Path, rgb: np.ndarray, fps: int = 20, crf: int = 23) -> Path:
    """Encode colour masks (T, H, W, 3) as h264 with 4:2:0 chroma, as XMem++'s pipeline did (CRF 23: libx264's default)."""
    import av

    with av.open(str(path), "w") as out:
        s = out.add_stream("libx264", rate=fps, options={"crf": str(crf)})
        s.height, s.width = rgb.shape[1:3]
        s.pix_fmt = "yuv420p"
        for f in rgb:
            for pkt in s.encode(av.VideoFrame.from_ndarray(np.ascontiguousarray(f), format="rgb24")):
                out.mux(pkt)
        for pkt in s.encode():
            out.mux(pkt)
    return path


@pytest.fixture(scope="module")
def truth(phantom_dir):
    """The first phantom recording's path and ground-truth labels (24 x 480 x 480, all 8 classes)."""
    from sonolabel.phantom import read_manifest

    rec = read_manifest(phantom_dir)[0]
    return phantom_dir / rec.video, np.asarray(zarr.open_array(str(phantom_dir / rec.labels), mode="r")[:])


def _no_third_class(labels: np.ndarray, true: np.ndarray, radius: int = 3) -> bool:
    """Every pixel's class occurs in the true labels within ``radius`` of it (a blend never becomes a third class)."""
    size = 2 * radius + 1
    for c in np.unique(labels):
        near = ndimage.binary_dilation(true == c, np.ones((size, size), bool))
        if ((labels == c) & ~near).any():
            return False
    return True


@pytest.mark.parametrize("palette, bgr, crf", [(FOREARM, False, 23), (DAVIS, False, 23), (FOREARM, True, 23), (DAVIS, True, 35)])
def test_mask_video_420_quantized_without_a_third_class(truth, tmp_path, palette, bgr, crf, margin):
    _, true = truth
    rgb = palette.colorize(true)
    video = write_colour_video(tmp_path / "masks.mp4", rgb[..., ::-1] if bgr else rgb, crf=crf)
    reports = quantize_video(video, tmp_path / "out", palette, swap_rb=bgr)
    assert len(reports) == len(true)
    names = sorted(p.name for p in (tmp_path / "out").iterdir())
    assert names[0] == "000000.png" and len(names) == len(true)
    got = np.stack([np.asarray(Image.open(tmp_path / "out" / n)) for n in names])
    margin((got == true).mean(), 0.99, "pixel agreement")  # measured 0.996-0.999 (benchmarks/intake.py)
    margin(sum(not _no_third_class(g, t) for g, t in zip(got, true)), 0.5, "frames with a third class", higher=False)


def test_plain_nearest_colour_on_420_video_would_make_third_classes(truth, tmp_path):
    """The reason for settling blends: nearest colour alone turns boundary blends into other classes."""
    from sonolabel.quantize import Quantizer

    _, true = truth
    video = write_colour_video(tmp_path / "m.mp4", DAVIS.colorize(true[:4]))
    seq = open_masks(video, DAVIS)
    plain = [lab for _, lab, _ in seq.read(Quantizer(DAVIS, window=0))]
    assert not all(_no_third_class(g, t) for g, t in zip(plain, true[:4]))


def test_mask_names_xmem_davis_plain_and_p_mode(truth, tmp_path):
    _, true = truth
    assert [frame_index(Path(n)) for n in ("frame_000040.png", "00040.png", "40.png", "img-7.jpg")] == [40, 40, 40, 7]
    for style, fmt in (("xmem", "frame_{:06d}.png"), ("davis", "{:05d}.png"), ("plain", "{}.png")):
        d = tmp_path / style
        d.mkdir()
        for t in (0, 10, 20):  # P-mode palette PNGs in the DAVIS palette, read by index
            im = Image.fromarray(true[t], mode="P")
            im.putpalette(DAVIS.rgb.reshape(-1).tolist())
            im.save(d / fmt.format(t))
        (d / ".DS_Store").write_bytes(b"\0\1")
        (d / "Thumbs.db").write_bytes(b"\0\1")
        seq = open_masks(d, FOREARM)
        assert seq.frame_indices() == [0, 10, 20]
        for t, lab, _ in seq.read():
            np.testing.assert_array_equal(lab, true[t])
    bad = tmp_path / "bad"
    bad.mkdir()
    Image.fromarray(true[0]).save(bad / "mask.png")
    with pytest.raises(InputError, match="frame number"):
        open_masks(bad, FOREARM)


def _cvat_export(root: Path, true: np.ndarray, frames, labelmap: str) -> Path:
    (root / "SegmentationClass").mkdir(parents=True)
    colours = {
        "background": (0, 0, 0),
        "FDS": (250, 50, 83),
        "FDP": (36, 179, 83),
        "FPL": (184, 61, 245),
        "FCR": (255, 204, 51),
        "FCU": (89, 134, 179),
        "ulna": (51, 221, 255),
        "radius": (255, 96, 55),
    }
    (root / "labelmap.txt").write_text(
        labelmap or "# label:color_rgb:parts:actions\n" + "".join(f"{n}:{','.join(map(str, c))}::\n" for n, c in colours.items())
    )
    lut = np.array([colours[n] for n in FOREARM.names], np.uint8)
    for t in frames:
        Image.fromarray(lut[true[t]]).save(root / "SegmentationClass" / f"frame_{t:06d}.png")
    return root


def test_cvat_export_maps_classes_by_name_and_refuses_unknown(truth, tmp_path):
    _, true = truth
    cvat = _cvat_export(tmp_path / "cvat", true, (0, 12), "")
    seq = open_masks(cvat, FOREARM)
    assert seq.kind == "cvat" and seq.frame_indices() == [0, 12]
    for t, lab, rep in seq.read():
        np.testing.assert_array_equal(lab, true[t])
        assert rep.unknown_count == 0
    bad = _cvat_export(tmp_path / "bad", true, (0,), "background:0,0,0::\nFDS:250,50,83::\nbiceps:1,2,3::\n")
    with pytest.raises(InputError, match="'biceps' is not a project class"):
        open_masks(bad, FOREARM)


@pytest.fixture
def imported(truth, tmp_path):
    recording, true = truth
    project = Project.create(tmp_path / "p.zarr")
    vid = import_recording(project, recording, "S1")
    yield project, project.video(vid), true
    project.close()


def test_labels_import_from_mask_video_then_review_correct_export(imported, tmp_path):
    from sonolabel.export import ExportConfig, export_dataset
    from sonolabel.review import run_drift

    project, video, true = imported
    video.save_annotation(5, true[5], who="anna")  # an annotation the import must keep
    masks = write_colour_video(tmp_path / "xmem.mp4", FOREARM.colorize(true)[..., ::-1])  # written by OpenCV: BGR
    assert import_label_sequence(video, masks, who="xmem", swap_rb=True) == video.n_frames
    src = video.sources()
    assert src[5] == LabelSource.ANNOTATED and (np.delete(src, 5) == LabelSource.IMPORTED).all()
    assert video.annotated_frames() == [5]
    agree = np.mean([(video.labels(t) == true[t]).mean() for t in range(video.n_frames)])
    assert agree >= 0.99
    assert video.attrs["labels_from"] == "imported" and video.attrs["labels_imported_by"] == "xmem"
    drift = run_drift(project, [video.id])[0]  # drift checks run on imported labels
    assert drift.video == video.id
    video.save_annotation(9, true[9], who="anna")  # correcting an imported frame makes a keyframe
    assert video.sources()[9] == LabelSource.CORRECTED
    out = export_dataset(project, tmp_path / "ds", ExportConfig(size=120))
    table = zarr.open_group(str(out), mode="r")["table"]
    assert "imported" in set(table["source"][:])  # exported like propagated labels (less frames pending review)


def test_labels_import_refuses_wrong_frame_count_and_changes_nothing(imported, tmp_path):
    project, video, true = imported
    before = video.sources().copy()
    short = write_colour_video(tmp_path / "short.mp4", FOREARM.colorize(true[:-3]))
    with pytest.raises(InputError, match=f"{len(true) - 3} frames but the video has {len(true)}"):
        import_label_sequence(video, short)
    folder = tmp_path / "folder"
    folder.mkdir()
    for t in range(len(true) - 1):
        Image.fromarray(FOREARM.colorize(true[t])).save(folder / f"{t:05d}.png")
    with pytest.raises(InputError, match="missing frames"):
        import_label_sequence(video, folder)
    np.testing.assert_array_equal(video.sources(), before)
    assert not video.propagated[3].any()


def test_keyframes_from_mask_video_and_cvat(imported, tmp_path):
    project, video, true = imported
    masks = write_colour_video(tmp_path / "m.mp4", DAVIS.colorize(true))
    with pytest.raises(InputError, match="--frames"):
        import_keyframe_masks(video, masks, palette=DAVIS)
    assert import_keyframe_masks(video, masks, frames=[0, 20], palette=DAVIS, max_unknown_fraction=0.01) == [0, 20]
    assert (video.annotated[20] == true[20]).mean() > 0.99
    cvat = _cvat_export(tmp_path / "cvat", true, (8,), "")
    assert import_keyframe_masks(video, cvat) == [8]
    np.testing.assert_array_equal(video.annotated[8], true[8])
    assert video.annotated_frames() == [0, 8, 20]


def _dicom(
    path: Path,
    frames: np.ndarray,
    photometric: str = "MONOCHROME2",
    timing: tuple | None = ("FrameTime", 50.0),
    regions: bool = True,
    pixel_spacing=None,
    syntax=None,
    pixels: bool = True,
) -> Path:
    """Write an ultrasound DICOM with pydicom: (T, H, W) grey or (T, H, W, 3) RGB frames."""
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.sequence import Sequence
    from pydicom.uid import ExplicitVRLittleEndian, generate_uid

    multi = frames.ndim == (4 if frames.shape[-1] == 3 and photometric != "MONOCHROME2" else 3) and len(frames) > 1
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.3.1" if multi else "1.2.840.10008.5.1.4.1.1.6.1"
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = syntax or ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID, ds.SOPInstanceUID, ds.Modality = meta.MediaStorageSOPClassUID, meta.MediaStorageSOPInstanceUID, "US"
    colour = photometric != "MONOCHROME2"
    ds.Rows, ds.Columns = frames.shape[1:3] if multi else frames.shape[:2]
    ds.SamplesPerPixel = 3 if colour else 1
    ds.PhotometricInterpretation = photometric
    if colour:
        ds.PlanarConfiguration = 0
    ds.BitsAllocated = ds.BitsStored = 8
    ds.HighBit, ds.PixelRepresentation = 7, 0
    if multi:
        ds.NumberOfFrames = len(frames)
        if timing:
            setattr(ds, timing[0], timing[1])
    if regions:
        r = Dataset()
        r.RegionSpatialFormat, r.RegionDataType, r.RegionFlags = 1, 1, 0
        r.RegionLocationMinX0, r.RegionLocationMinY0, r.RegionLocationMaxX1, r.RegionLocationMaxY1 = 20, 0, 139, 119
        r.PhysicalUnitsXDirection = r.PhysicalUnitsYDirection = 3
        r.PhysicalDeltaX, r.PhysicalDeltaY = 0.01, 0.0125  # cm per pixel
        ds.SequenceOfUltrasoundRegions = Sequence([r])
    if pixel_spacing:
        ds.PixelSpacing = list(pixel_spacing)
    if pixels:
        data = frames
        if photometric == "YBR_FULL":
            from pydicom.pixels import convert_color_space

            data = convert_color_space(frames, "RGB", "YBR_FULL")
        elif photometric == "YBR_FULL_422":
            from pydicom.pixels import convert_color_space

            ybr = convert_color_space(frames, "RGB", "YBR_FULL").reshape(-1, 2, 3).astype(np.uint16)
            y = ybr[..., 0]
            cb, cr = ybr[..., 1].mean(1).round().astype(np.uint8), ybr[..., 2].mean(1).round().astype(np.uint8)
            data = np.stack([y[:, 0].astype(np.uint8), y[:, 1].astype(np.uint8), cb, cr], 1)
        ds.PixelData = np.ascontiguousarray(data, np.uint8).tobytes()
        if syntax is not None and syntax != ExplicitVRLittleEndian:
            from pydicom.encaps import encapsulate

            ds.PixelData = encapsulate([b"\xff\xd8\xff\xf7not-really-jpeg-ls\xff\xd9"] * (len(frames) if multi else 1))
            ds["PixelData"].VR = "OB"
    ds.save_as(path, enforce_file_format=True)
    return path


@pytest.mark.parametrize("photometric", ["MONOCHROME2", "RGB", "YBR_FULL", "YBR_FULL_422"])
@pytest.mark.parametrize("timing, fps", [(("FrameTime", 50.0), 20.0), (("CineRate", 25), 25.0), (("FrameTimeVector", [0, 40, 40, 40, 40, 40]), 25.0)])
def test_dicom_cine_each_photometric_with_timing_spacing_and_region(project, tmp_path, photometric, timing, fps):
    grey = boxed_frames(6)
    frames = grey if photometric == "MONOCHROME2" else np.repeat(grey[..., None], 3, -1)
    path = _dicom(tmp_path / "cine.dcm", frames, photometric, timing)
    vid = import_recording(project, path, "S1")
    v = project.video(vid)
    assert v.n_frames == 6 and (v.width, v.height) == (120, 120)  # cropped to the DICOM region
    assert v.attrs["crop"] == [20, 0, 120, 120] and v.attrs["crop_from"] == "file"
    assert v.attrs["fps"] == pytest.approx(fps)
    assert v.spacing_mm == pytest.approx((0.125, 0.1))  # cm per pixel -> mm
    tol = 0 if photometric in ("MONOCHROME2", "RGB", "YBR_FULL") else 2  # 4:2:2 chroma and YCbCr rounding
    assert np.abs(v.frames[:].astype(int) - grey[:, :, 20:140].astype(int)).max() <= max(tol, 1)


def test_dicom_single_frame_pixel_spacing_and_no_suffix(project, tmp_path):
    img = boxed_frames(1)[0]
    path = _dicom(tmp_path / "IM0001", img, regions=False, pixel_spacing=(0.2, 0.15))
    vid = import_recording(project, path, "S1")
    v = project.video(vid)
    assert v.n_frames == 1 and v.spacing_mm == pytest.approx((0.2, 0.15)) and v.attrs["crop_from"] == "detected"


def test_dicom_without_pixels_or_decoder_refused(project, tmp_path):
    from pydicom.uid import JPEGLSLossless

    with pytest.raises(InputError, match="no pixel data"):
        import_recording(project, _dicom(tmp_path / "sr.dcm", boxed_frames(3), pixels=False), "S1")
    with pytest.raises(InputError, match="pylibjpeg"):
        import_recording(project, _dicom(tmp_path / "jls.dcm", boxed_frames(3), syntax=JPEGLSLossless), "S1")
    assert project.video_ids() == []


def test_tiff_and_ome_tiff_stacks(project, tmp_path):
    import tifffile

    frames = boxed_frames(5)
    tifffile.imwrite(tmp_path / "stack.tif", frames)
    tifffile.imwrite(
        tmp_path / "stack.ome.tif",
        (frames.astype(np.uint16) * 257),
        ome=True,
        metadata={"axes": "TYX", "PhysicalSizeX": 80.0, "PhysicalSizeXUnit": "µm", "PhysicalSizeY": 0.1, "PhysicalSizeYUnit": "mm"},
    )
    a = project.video(import_recording(project, tmp_path / "stack.tif", "S1"))
    b = project.video(import_recording(project, tmp_path / "stack.ome.tif", "S1"))
    assert a.n_frames == b.n_frames == 5
    np.testing.assert_array_equal(a.frames[:], frames[:, :, 20:140])
    assert np.abs(b.frames[:].astype(int) - frames[:, :, 20:140]).max() <= 1
    assert a.spacing_mm is None and b.spacing_mm == pytest.approx((0.1, 0.08))


def screen_capture(truth_video: Path, repeat_every: int = 3, size=(624, 1148), box=(301, 83)) -> tuple[np.ndarray, Crop, np.ndarray]:
    """A phantom recording composited into a synthetic scanner UI (grey background, text, a grey-level
    bar, depth ticks, a coloured marker, a ticking clock), every ``repeat_every``-th frame repeated."""
    import av
    from PIL import ImageDraw

    with av.open(str(truth_video)) as c:
        src = np.stack([f.to_ndarray(format="gray") for f in c.decode(video=0)])[:, :, 80:560]  # the 480x480 image
    h, w = size
    x0, y0 = box
    frames, origin = [], []
    for i, img in enumerate(src):
        canvas = Image.new("RGB", (w, h), (58, 58, 62))
        d = ImageDraw.Draw(canvas)
        d.text((20, 10), f"GE LOGIQ  MSK  12L  Gn 48  DR 66   10:32:{i % 60:02d}", fill=(230, 230, 230))
        d.text((20, 40), "Frq 12.0  D 4.0cm  FPS 20", fill=(230, 230, 230))
        for k in range(256):  # grey-level bar
            d.line([(40, 150 + k), (60, 150 + k)], fill=(255 - k,) * 3)
        for k in range(5):  # depth ticks and numbers
            d.line([(x0 + 490, y0 + k * 96), (x0 + 500, y0 + k * 96)], fill=(255, 220, 0))
            d.text((x0 + 505, y0 + k * 96 - 5), str(k), fill=(255, 220, 0))
        d.rectangle([900, 300, 1100, 420], outline=(0, 180, 255))  # a side panel
        arr = np.asarray(canvas).copy()
        arr[y0 : y0 + 480, x0 : x0 + 480] = img[..., None]
        arr[y0 + 200 : y0 + 210, x0 + 230 : x0 + 240] = (0, 255, 0)  # a static coloured cursor inside the image
        frames.append(arr)
        origin.append(i)
        if i % repeat_every == repeat_every - 1:
            frames.append(arr.copy())
            origin.append(i)
    return np.stack(frames), Crop(x0, y0, 480, 480), np.array(origin)


def _close(a: Crop, b: Crop, tol: int = 4) -> bool:
    return all(abs(p - q) <= tol for p, q in zip(a.as_list(), b.as_list()))


def test_screen_capture_box_duplicates_and_dedupe(truth, tmp_path):
    import pandas as pd

    recording, _ = truth
    frames, box, origin = screen_capture(recording)
    folder = tmp_path / "capture"
    folder.mkdir()
    for i, f in enumerate(frames):
        Image.fromarray(f).save(folder / f"cap_{i:04d}.png")
    grey = np.stack([np.asarray(Image.fromarray(f).convert("L")) for f in frames])
    found = detect_box(grey)
    assert _close(found, box), (found, box)
    n = len(frames)
    pd.DataFrame({"frame": np.arange(n), "index": np.arange(n, dtype=float)}).to_csv(tmp_path / "kin.csv", index=False)
    with Project.create(tmp_path / "p.zarr") as p:
        kept = p.video(import_recording(p, folder, "S1", fps=20, kinematics=tmp_path / "kin.csv"))
        assert kept.n_frames == n and kept.attrs["repeated_frames"] == n - len(np.unique(origin))
        dd = p.video(import_recording(p, folder, "S1", fps=20, kinematics=tmp_path / "kin.csv", dedupe=True))
        assert dd.n_frames == len(np.unique(origin))
        src = dd.table()["source_frame"].to_numpy()
        np.testing.assert_array_equal(origin[src], np.arange(dd.n_frames))  # one stored frame per scanner frame
        np.testing.assert_array_equal(dd.kinematics()["index"].to_numpy(), src)  # kinematics follow the kept frames
        np.testing.assert_array_equal(dd.frames[3], kept.frames[int(src[3])])


@pytest.mark.skipif(not LOGIQ.is_dir(), reason="shared/data/logiq-gastroc is not beside the project")
def test_real_logiq_capture_box_within_4px(project, margin):
    vid = import_recording(project, LOGIQ, "gastroc", fps=25)
    crop = Crop(*project.video(vid).attrs["crop"])
    margin(max(abs(a - b) for a, b in zip(crop.as_list(), LOGIQ_BOX.as_list())), 4.5, "box error px", higher=False)  # measured (111, 61, 578, 460)


def test_millimetres_in_store_info_export_and_drift(phantom_dir, tmp_path):
    from sonolabel.cli.main import main as cli
    from sonolabel.export import ExportConfig, export_dataset
    from sonolabel.phantom import read_manifest
    from sonolabel.review.signals import label_signals

    rec = read_manifest(phantom_dir)[0]
    true = np.asarray(zarr.open_array(str(phantom_dir / rec.labels), mode="r")[:])
    with Project.create(tmp_path / "p.zarr") as p:
        v = p.video(import_recording(p, phantom_dir / rec.video, "S1", mm_per_pixel=0.08))
        v.save_propagated(0, true)
        v.save_annotation(0, true[0])
        assert v.spacing_mm == (0.08, 0.08) and v.attrs["spacing_from"] == "option"
        signals = label_signals(v)
        np.testing.assert_allclose(signals["area_mm2_ulna"], (true == 6).sum((1, 2)) * 0.08**2, rtol=1e-5)
        out = export_dataset(p, tmp_path / "ds", ExportConfig(size=240))
    root = zarr.open_group(str(out), mode="r")
    ms = root.attrs["ome"]["multiscales"][0]
    assert ms["axes"][1] == {"name": "y", "type": "space", "unit": "millimeter"}
    assert ms["datasets"][0]["coordinateTransformations"][0]["scale"] == pytest.approx([1.0, 0.16, 0.16])  # 480 -> 240
    assert root["table"]["mm_per_px_x"][0] == pytest.approx(0.16)
    assert cli(["info", str(tmp_path / "p.zarr")]) == 0


def test_nnunet_export_layout_and_subject_folds(phantom_dir, tmp_path):
    from sonolabel.cli.main import main as cli
    from sonolabel.phantom import phantom_project

    with phantom_project(phantom_dir, tmp_path / "p.zarr", keyframe_every=12):
        pass
    assert cli(["export", str(tmp_path / "p.zarr"), str(tmp_path / "out"), "--format", "nnunet"]) == 2  # name checked
    out = tmp_path / "Dataset501_Forearm"
    assert cli(["export", str(tmp_path / "p.zarr"), str(out), "--format", "nnunet"]) == 0
    ds = json.loads((out / "dataset.json").read_text())
    assert ds["channel_names"] == {"0": "US"} and ds["file_ending"] == ".png"
    assert ds["labels"] == {n: i for i, n in enumerate(FOREARM.names)}
    images = sorted((out / "imagesTr").iterdir())
    labels = sorted((out / "labelsTr").iterdir())
    assert ds["numTraining"] == len(images) == len(labels) == 48
    assert images[0].name.endswith("_000000_0000.png") and labels[0].name == images[0].name.replace("_0000.png", ".png")
    lab = np.asarray(Image.open(labels[0]))
    img = np.asarray(Image.open(images[0]))
    assert lab.shape == img.shape == (480, 480) and lab.max() < len(FOREARM) and img.dtype == np.uint8
    folds = json.loads((out / "splits_final.json").read_text())
    cases = {p.name.removesuffix(".png") for p in labels}
    for fold in folds:
        assert set(fold["train"]) | set(fold["val"]) == cases and not set(fold["train"]) & set(fold["val"])
        subjects = lambda names: {n.split("_")[0] for n in names}  # noqa: E731 - video ids start with the subject
        assert not subjects(fold["train"]) & subjects(fold["val"])


def test_cli_forms_for_mask_videos_labels_and_captures(truth, tmp_path):
    """Every command form of the intake, as written in the docs, through the command line."""
    from sonolabel.cli.main import main as cli

    recording, true = truth
    masks = write_colour_video(tmp_path / "xmem.mp4", DAVIS.colorize(true))
    assert cli(["quantize", str(masks), str(tmp_path / "q"), "--palette", "davis"]) == 0
    assert len(list((tmp_path / "q").glob("0*.png"))) == len(true)
    p = str(tmp_path / "p.zarr")
    assert cli(["import", p, str(recording), "--subject", "S1", "--mm-per-pixel", "0.1", "--dedupe"]) == 0
    with Project.open(p) as project:
        vid = project.video_ids()[0]
    assert cli(["keyframes", "import", p, vid, "--masks", str(masks), "--frames", "0,12", "--palette", "davis", "--max-unknown-fraction", "0.01"]) == 0
    assert cli(["labels", "import", p, vid, "--masks", str(tmp_path / "q"), "--who", "xmem"]) == 0
    with Project.open(p) as project:
        v = project.video(vid)
        assert v.annotated_frames() == [0, 12] and (v.sources() == LabelSource.IMPORTED).sum() == len(true) - 2
        assert v.spacing_mm == (0.1, 0.1)
