import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import torch
import zarr

from sonolabel import InputError
from sonolabel.export import ExportConfig, export_dataset, loso_folds, resize_labels, train_val_split
from sonolabel.training.augment import Augment
from sonolabel.export.dataset import read_table
from sonolabel.export.torch_data import FrameSequences, SegmentationFrames
from sonolabel.store import Project


def _project(path, subjects=("A", "B", "C", "D"), n=12, size=48, kin=True):
    rng = np.random.default_rng(0)
    p = Project.create(path)
    truth = {}
    for s in subjects:
        vid = p.new_video_id(s, 1)
        with p.staged_video(vid, n, size, size, {"subject": s, "trial": "1", "fps": 20.0}) as v:
            v.frames[:] = rng.integers(0, 255, (n, size, size), dtype=np.uint8)
            if kin:
                v.set_kinematics(rng.uniform(0, 90, (n, 5)), ["thumb", "index", "middle", "ring", "little"])
        v = p.video(vid)
        lab = rng.integers(0, 8, (n, size, size), dtype=np.uint8)
        v.save_annotation(0, lab[0])
        v.save_propagated(1, lab[1:])
        truth[vid] = lab
    return p, truth


def test_round_trip_same_size(tmp_path):
    p, truth = _project(tmp_path / "p.zarr")
    out = export_dataset(p, tmp_path / "ds", ExportConfig(size=48))
    g = zarr.open_group(str(out), mode="r")
    t = read_table(out)
    assert len(t) == 48 and list(t["subject"].unique()) == ["A", "B", "C", "D"]
    for vid, lab in truth.items():
        rows = t.index[t["video"] == vid].to_numpy()
        np.testing.assert_array_equal(g["labels/classes/0"][rows[0] : rows[-1] + 1], lab)
        np.testing.assert_array_equal(g["0"][rows[0] : rows[-1] + 1], p.video(vid).frames[:])
        np.testing.assert_allclose(g["kinematics"][rows[0] : rows[-1] + 1], p.video(vid).kinematics().to_numpy())
    assert t.loc[0, "source"] == "annotated" and t.loc[1, "source"] == "propagated"
    assert np.isclose(t.loc[5, "time"], 5 / 20)
    info = dict(g.attrs["sonolabel_dataset"])
    assert info["classes"] == list(p.palette.names) and info["palette"] == p.palette.to_dict()
    assert len(info["provenance"]["content_sha256"]) == 64 and info["provenance"]["sources"]
    splits = json.loads((out / "splits.json").read_text())
    assert len(splits["val"]) == 1 and not set(splits["val"]) & set(splits["train"])
    assert splits["folds"][1] == {"test": ["B"], "val": ["A"], "train": ["C", "D"]}


def test_resize_and_exclusions(tmp_path):
    p, truth = _project(tmp_path / "p.zarr", subjects=("A", "B"), kin=False)
    v = p.video("A-T1")
    review = v.group.create_array("table/review", shape=(12,), chunks=(12,), dtype=str, fill_value="")
    review[:] = np.array(["accepted"] * 3 + ["excluded"] * 2 + ["pending"] + ["accepted"] * 6)
    out = export_dataset(p, tmp_path / "ds", ExportConfig(size=24))
    t = read_table(out)
    assert sorted(t[t["video"] == "A-T1"]["frame"]) == [0, 1, 2, 6, 7, 8, 9, 10, 11]
    g = zarr.open_group(str(out), mode="r")
    assert g["0"].shape == (21, 24, 24) and np.isnan(g["kinematics"][0]).all()
    out2 = export_dataset(p, tmp_path / "ds2", ExportConfig(size=24, include_unreviewed=True))
    assert 5 in read_table(out2)[lambda d: d["video"] == "A-T1"]["frame"].tolist()
    with pytest.raises(InputError, match="exists already"):
        export_dataset(p, out, ExportConfig(size=24))


def test_majority_resize():
    lab = np.zeros((1, 4, 4), np.uint8)
    lab[0, :2, :2] = [[3, 3], [3, 1]]  # 3 wins its 2x2 block
    lab[0, 2:, 2:] = [[5, 6], [5, 6]]  # a tie keeps the first of the tied pair
    out = resize_labels(lab, 2, 8)
    assert out[0, 0, 0] == 3 and out[0, 1, 1] in (5, 6)
    general = resize_labels(np.repeat(np.repeat(lab, 3, 1), 3, 2), 2, 8)
    assert general[0, 0, 0] == 3


def test_splits_rules():
    counts = {f"S{i:02d}": 100 + i for i in range(12)}
    s = train_val_split(counts, 0.1, seed=1)
    assert len(s["val"]) == 1 and set(s["train"]) | set(s["val"]) == set(counts)
    assert train_val_split(counts, 0.1, seed=1) == s and train_val_split(counts, 0.1, seed=2) != s
    folds = loso_folds(list(counts))
    assert folds[0] == {"test": ["S00"], "val": ["S11"], "train": [f"S{i:02d}" for i in range(1, 11)]}


def test_datasets_read_lazily_with_two_workers(tmp_path):
    from torch.utils.data import DataLoader

    p, _ = _project(tmp_path / "p.zarr")
    out = export_dataset(p, tmp_path / "ds", ExportConfig(size=48))
    ds = SegmentationFrames(out, split="train", transform=Augment(seed=0))
    assert set(ds.table["subject"]) == set(json.loads((out / "splits.json").read_text())["train"])
    loader = DataLoader(ds, batch_size=4, num_workers=2, shuffle=True, timeout=60)
    n = 0
    for img, lab in loader:
        assert img.shape[1:] == (1, 48, 48) and lab.dtype == torch.int64
        n += len(img)
    assert n == len(ds)
    seq = FrameSequences(out, length=4, stride=2, split="fold0/test")
    img, lab, kin = seq[0]
    assert img.shape == (4, 1, 48, 48) and kin.shape == (4, 5) and not torch.isnan(kin).any()
    assert set(seq.windows.ravel()) <= set(read_table(out).index[read_table(out)["subject"] == "A"])
    assert len(list(DataLoader(seq, batch_size=2, num_workers=2, timeout=60))) == len(seq) // 2 + len(seq) % 2


def test_sequence_augmentations_consistent_across_frames():
    img = torch.rand(6, 1, 32, 32).expand(6, 1, 32, 32).clone()
    img[:] = img[0]
    lab = torch.randint(0, 8, (1, 32, 32)).expand(6, 32, 32).clone()
    aug = Augment(resized_crop=1.0, hflip=1.0, gamma=(0.7, 1.5), speckle_std=0.0, seed=3)
    a_img, a_lab = aug(img, lab)
    assert torch.allclose(a_img, a_img[:1].expand_as(a_img)) and (a_lab == a_lab[:1]).all()
    assert not torch.allclose(a_img[0], img[0])


def test_ome_zarr_metadata_read_back(tmp_path):
    ome_zarr = pytest.importorskip("ome_zarr")
    from ome_zarr.io import parse_url
    from ome_zarr.reader import Label, Reader

    p, _ = _project(tmp_path / "p.zarr", subjects=("A",))
    out = export_dataset(p, tmp_path / "ds", ExportConfig(size=48))
    nodes = list(Reader(parse_url(str(out)))())
    labels = [n for n in nodes if any(isinstance(s, Label) for s in n.specs)]
    assert labels and ome_zarr
    meta = labels[0].metadata
    assert meta["color"][2] == [0.0, 0.0, 1.0, 1.0]  # FDP blue
    assert meta["properties"][7] == {"class": "radius"}
    assert nodes[0].data[0].shape == (12, 48, 48)


def test_export_killed_halfway_leaves_nothing(tmp_path):
    p, _ = _project(tmp_path / "p.zarr", subjects=("A", "B", "C"), n=300, size=96)
    p.close()
    code = (
        "import sys\nfrom sonolabel.store import Project\nfrom sonolabel.export import export_dataset, ExportConfig\n"
        "export_dataset(Project.open(sys.argv[1]), sys.argv[2], ExportConfig(size=48))\n"
    )
    proc = subprocess.Popen([sys.executable, "-c", code, str(tmp_path / "p.zarr"), str(tmp_path / "ds")])
    deadline = time.time() + 60
    while time.time() < deadline and not list(tmp_path.glob(".ds.partial-*/0/c")):
        time.sleep(0.01)
    time.sleep(0.2)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert not (tmp_path / "ds").exists()
    assert list(tmp_path.glob(".ds.partial-*"))  # the half-written dataset sits under its temporary name
    with Project.open(tmp_path / "p.zarr") as p2:  # and a new export still works
        export_dataset(p2, tmp_path / "ds", ExportConfig(size=48))
    assert (tmp_path / "ds" / "splits.json").is_file()
    assert not list(tmp_path.glob(".ds.partial-*"))  # the dead export's leftovers are cleared


def test_still_collections_export_the_same_way(tmp_path):
    from PIL import Image

    from sonolabel.io import import_stills
    from sonolabel.palette import FOREARM

    (tmp_path / "set" / "images").mkdir(parents=True)
    (tmp_path / "set" / "masks").mkdir()
    rng = np.random.default_rng(1)
    for i, (h, w) in enumerate([(60, 80), (90, 70), (64, 64)]):  # stills come in mixed sizes
        lab = np.zeros((h, w), np.uint8)
        lab[10:30, 10:40] = i + 1
        Image.fromarray(rng.integers(30, 200, (h, w), dtype=np.uint8)).save(tmp_path / "set" / "images" / f"{i}.png")
        Image.fromarray(FOREARM.rgb[lab]).save(tmp_path / "set" / "masks" / f"{i}.png")
    with Project.create(tmp_path / "p.zarr") as p:
        import_stills(p, tmp_path / "set", subject="lab")
        out = export_dataset(p, tmp_path / "ds", ExportConfig(size=32))
    t = read_table(out)
    g = zarr.open_group(str(out), mode="r")
    assert len(t) == 3 and set(t["source"]) == {"annotated"} and g["0"].shape == (3, 32, 32)
    assert [int(np.max(g["labels/classes/0"][i])) for i in range(3)] == [1, 2, 3]
