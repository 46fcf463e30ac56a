"""The U-Net trainer: real training steps on a small phantom dataset, metrics, resume, checkpoints, predict."""

import os
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
import torch

from conftest import QUALITY_SEED
from sonolabel import InputError
from sonolabel.export import ExportConfig, export_dataset
from sonolabel.export.torch_data import SegmentationFrames
from sonolabel.phantom import generate_phantom, phantom_project
from sonolabel.store import Project
from sonolabel.checkpoint import load_checkpoint, save_checkpoint
from sonolabel.training.config import config_from
from sonolabel.unet.metrics import confusion_matrix, metrics_table
from sonolabel.unet.train import Evaluator, UNetConfig, class_weight_tensor, train_unet
from sonolabel.unet.model import PaddedUNet, load_encoder_weights
from sonolabel.training.distributed import World

FAST = dict(encoder="resnet18", batch_size=8, lr=1e-3, workers=0, augment=False)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """3 phantom subjects x 20 frames, labelled with ground truth, exported at 64x64."""
    root = tmp_path_factory.mktemp("unet")
    generate_phantom(root / "ph", subjects=3, frames=20, seed=5 + QUALITY_SEED)
    with phantom_project(root / "ph", root / "p.zarr") as p:
        export_dataset(p, root / "ds", ExportConfig(size=64))
    return root


def test_one_epoch_lowers_the_loss(tiny, tmp_path, margin):
    cfg = UNetConfig(epochs=1, seed=QUALITY_SEED, **{**FAST, "batch_size": 4})
    torch.manual_seed(cfg.seed)
    model = PaddedUNet(cfg.encoder, 8)
    ds = SegmentationFrames(tiny / "ds", split="train")
    evaluate = Evaluator(ds, World(), 8, 0, class_weight_tensor(cfg, 8))
    before, _ = evaluate(model, torch.device("cpu"), False)
    result = train_unet(tiny / "ds", tmp_path / "run", cfg, progress=False)
    model.load_state_dict(load_checkpoint(tmp_path / "run" / "best.pt", "unet", ds.class_names)["model"])
    after, _ = evaluate(model, torch.device("cpu"), False)
    # robustness run (docs/testing.md): 0.62-0.85 over 3 seeds x 1 and 2 threads
    margin(after / before, 0.95, "validation loss after one epoch / before", higher=False)
    for name in ("best.pt", "last.pt", "log.csv", "curves.png", "metrics_val.csv", "confusion_val.csv"):
        assert (tmp_path / "run" / name).is_file(), name
    table = pd.read_csv(tmp_path / "run" / "metrics_val.csv", index_col=0)
    assert list(table.index) == ds.class_names + ["macro", "macro_fg"]
    assert result.best_epoch == 1


def test_metrics_match_hand_computed_confusion():
    target = torch.tensor([[0, 0, 1, 1], [2, 2, 2, 0]])
    pred = torch.tensor([[0, 1, 1, 1], [2, 0, 2, 2]])
    cm = confusion_matrix(pred, target, 3).numpy()
    assert cm.tolist() == [[1, 1, 1], [0, 2, 0], [1, 0, 2]]
    t = metrics_table(cm, ["bg", "a", "b"])
    # class a: TP 2, FP 1, FN 0 -> precision 2/3, recall 1, Dice 4/5, IoU 2/3; TN 5 -> accuracy 7/8
    assert t.loc["a", "precision"] == pytest.approx(2 / 3)
    assert t.loc["a", "recall"] == pytest.approx(1.0)
    assert t.loc["a", "dice"] == pytest.approx(0.8)
    assert t.loc["a", "iou"] == pytest.approx(2 / 3)
    assert t.loc["a", "pixel_accuracy"] == pytest.approx(7 / 8)
    # class b: TP 2, FP 1, FN 1 -> Dice 4/6
    assert t.loc["b", "dice"] == pytest.approx(2 / 3)
    assert t.loc["macro", "pixel_accuracy"] == pytest.approx(5 / 8)
    assert t.loc["macro_fg", "dice"] == pytest.approx((0.8 + 2 / 3) / 2)
    # background: TP 1, FP 1, FN 2 -> Dice 2/5
    assert t.loc["bg", "dice"] == pytest.approx(0.4)
    assert t.loc["macro", "dice"] == pytest.approx((0.4 + 0.8 + 2 / 3) / 3)
    # pixels labelled beyond the classes (no label) are ignored
    assert confusion_matrix(torch.tensor([0, 1]), torch.tensor([255, 1]), 3).sum() == 1


def test_class_maps_are_torchs_argmax_ties_included():
    """Predictions, validation and propagation take the class map through one running-max argmax (several times
    faster on a CPU); it must give what torch.argmax gives, the first class on ties."""
    from sonolabel._tensors import channel_argmax

    g = torch.Generator().manual_seed(0)
    scores = torch.randint(0, 3, (4, 8, 16, 16), generator=g).float()  # three levels: ties on most pixels
    scores[1] = 0.0  # every class tied
    got = channel_argmax(scores)
    assert got.dtype == torch.uint8 and torch.equal(got.long(), scores.argmax(1))


def test_resume_continues_from_the_saved_epoch(tiny, tmp_path, capsys):
    out = tmp_path / "run"
    train_unet(tiny / "ds", out, UNetConfig(epochs=1, steps_per_epoch=2, **FAST), progress=False)
    first = pd.read_csv(out / "log.csv")
    result = train_unet(tiny / "ds", out, UNetConfig(epochs=2, steps_per_epoch=2, **FAST), progress=False)
    assert "resuming" in capsys.readouterr().out
    log = pd.read_csv(out / "log.csv")
    assert list(log["epoch"]) == [1, 2] and result.epochs_run == 2
    assert log.iloc[0].equals(first.iloc[0])  # epoch 1 was not redone
    assert load_checkpoint(out / "last.pt", "unet")["epoch"] == 1
    with pytest.raises(InputError, match="another encoder"):
        train_unet(tiny / "ds", out, UNetConfig(epochs=3, **{**FAST, "encoder": "resnet34"}), progress=False)


def test_checkpoint_for_other_classes_is_refused(tmp_path):
    path = tmp_path / "best.pt"
    save_checkpoint(path, {"kind": "unet", "classes": ["background", "nerve", "vessel"], "model": {}})
    with pytest.raises(InputError, match="classes") as e:
        load_checkpoint(path, "unet", ["background", "FDS", "FDP"])
    assert str(path) in str(e.value)


class _Payload:
    def __reduce__(self):
        return (os.system, (f"touch {_Payload.marker}",))


def test_checkpoint_with_pickled_objects_is_refused(tmp_path):
    _Payload.marker = tmp_path / "pwned"
    path = tmp_path / "evil.pt"
    torch.save({"format": "sonolabel-checkpoint", "kind": "unet", "model": _Payload()}, path)
    with pytest.raises(InputError, match="refused") as e:
        load_checkpoint(path, "unet")
    assert str(path) in str(e.value)
    assert not _Payload.marker.exists()
    r = subprocess.run([sys.executable, "-m", "sonolabel", "predict", str(tmp_path / "none.zarr"), "--model", str(path)], capture_output=True, text=True)
    assert r.returncode == 2 and "Traceback" not in r.stderr


def test_config_from_json_and_set(tmp_path):
    f = tmp_path / "c.json"
    f.write_text('{"epochs": 3, "gamma": null, "class_weights": [0.2, 1, 1]}')
    cfg = config_from(UNetConfig, path=f, sets=["lr=0.001", "augment=false", "fold=2", "encoder_weights=none"])
    assert (cfg.epochs, cfg.gamma, cfg.class_weights, cfg.lr, cfg.augment, cfg.fold, cfg.encoder_weights) == (3, None, [0.2, 1.0, 1.0], 0.001, False, 2, None)
    with pytest.raises(InputError, match="unknown settings"):
        config_from(UNetConfig, sets=["epoch=3"])


def test_encoder_weights_local_file_or_cached_only(tmp_path):
    src = PaddedUNet("resnet18", 8)
    torch.save(src.net.encoder.state_dict(), tmp_path / "enc.pt")
    dst = PaddedUNet("resnet18", 8)
    load_encoder_weights(dst, str(tmp_path / "enc.pt"), "resnet18")
    assert torch.equal(dst.net.encoder.layer1[0].conv1.weight, src.net.encoder.layer1[0].conv1.weight)
    import time

    t0 = time.perf_counter()
    with pytest.raises(InputError, match="never downloads"):
        load_encoder_weights(dst, "imagenet", "resnet18")
    assert time.perf_counter() - t0 < 5
    with pytest.raises(InputError, match="no such encoder weights"):
        load_encoder_weights(dst, str(tmp_path / "missing.pt"), "resnet18")


def test_predict_stores_predictions_and_per_frame_loss(tiny, tmp_path):
    run = tmp_path / "run"
    train_unet(tiny / "ds", run, UNetConfig(epochs=1, steps_per_epoch=2, **FAST), progress=False)
    import shutil

    shutil.copytree(tiny / "p.zarr", tmp_path / "p.zarr")
    r = subprocess.run(
        [sys.executable, "-m", "sonolabel", "predict", str(tmp_path / "p.zarr"), "--model", str(run / "best.pt")], capture_output=True, text=True
    )
    assert r.returncode == 0, r.stderr
    with Project.open(tmp_path / "p.zarr") as p:
        v = p.video(p.video_ids()[0])
        table = v.table()
        assert np.isfinite(table["model_ce"]).all() and (table["model_ce"] > 0).all()
        assert table["model_dice"].between(0, 1).all()
        assert "model_dice_FDS" in table.columns
        assert table["model_uncertainty"].between(0, 1).all()
        shifts = table[[f"model_shift_{c}" for c in p.palette.names]].to_numpy()
        assert np.isfinite(shifts[:, 0]).all() and (np.nan_to_num(shifts) >= 0).all()
        pred = v.group["labels/predicted"][:]
        assert pred.shape == (v.n_frames, v.height, v.width) and pred.max() < 8


def test_ddp_two_processes_gloo(tiny, tmp_path):
    out = tmp_path / "ddp"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--nproc_per_node",
            "2",
            "--master_port",
            "29561",
            "-m",
            "sonolabel",
            "train",
            "unet",
            str(tiny / "ds"),
            "--out",
            str(out),
            *sum((["--set", f"{k}={v}"] for k, v in {**FAST, "epochs": 1}.items()), []),
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert r.returncode == 0, r.stderr[-2000:]
    ckpt = load_checkpoint(out / "best.pt", "unet")
    assert ckpt["world_size"] == 2
    log = pd.read_csv(out / "log.csv")
    n_train = len(SegmentationFrames(tiny / "ds", split="train"))
    per_rank = (n_train + 1) // 2
    assert log["images"].iloc[0] == 2 * (per_rank // FAST["batch_size"]) * FAST["batch_size"]  # both halves trained on


def test_loso_folds_on_a_two_worker_local_cluster(tiny, tmp_path):
    from sonolabel.unet.loso import train_loso

    table = train_loso(tiny / "ds", tmp_path / "loso", UNetConfig(epochs=1, steps_per_epoch=1, **FAST), workers=2)
    assert sorted(table["subject"]) == ["sub-01", "sub-02", "sub-03"]
    assert table["dice_fg"].between(0, 1).all()
    assert (tmp_path / "loso" / "loso.png").is_file()
    for k in range(3):
        ckpt = load_checkpoint(tmp_path / "loso" / f"fold-{k}" / "best.pt", "unet")
        assert ckpt["subjects"]["test"] == [table["subject"][k]]
