"""One loader for every kind of trained model: U-Net, SonoRank and propagation weights share one
checkpoint format, and ``load_model`` builds the right network from any of them."""

from dataclasses import asdict

import pytest
import torch

from sonolabel import InputError
from sonolabel.checkpoint import save_checkpoint
from sonolabel.models import load_model
from sonolabel.propagation.encoders import KeyEncoder, RefineHead
from sonolabel.rank.model import ArchConfig, SonoRank
from sonolabel.unet.model import PaddedUNet

CLASSES = ["background", "muscle", "bone"]


def _same_weights(a: torch.nn.Module, b: torch.nn.Module) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


def test_load_model_builds_every_kind_from_its_file(tmp_path):
    torch.manual_seed(0)
    unet = PaddedUNet("resnet18", 3)
    save_checkpoint(tmp_path / "unet" / "best.pt", {"kind": "unet", "classes": CLASSES, "config": {"encoder": "resnet18"}, "model": unet.state_dict()})
    arch = ArchConfig(widths=[8, 16, 32, 64, 64], embed=32, length=6, feedforward=64)
    rank = SonoRank(arch)
    save_checkpoint(tmp_path / "rank.pt", {"kind": "rank", "classes": CLASSES, "config": {"input": "labels"}, "arch": asdict(arch), "model": rank.state_dict()})
    encoder, refine = KeyEncoder(), RefineHead(3)
    save_checkpoint(
        tmp_path / "propagation.pt", {"kind": "propagation", "classes": CLASSES, "n_classes": 3, "encoder": encoder.state_dict(), "refine": refine.state_dict()}
    )

    loaded = load_model(tmp_path / "unet")  # a run folder: its best.pt
    assert loaded.kind == "unet" and isinstance(loaded.model, PaddedUNet) and loaded.classes == CLASSES
    assert _same_weights(loaded.model, unet) and not loaded.model.training
    loaded = load_model(tmp_path / "rank.pt", CLASSES)
    assert loaded.kind == "rank" and isinstance(loaded.model, SonoRank) and _same_weights(loaded.model, rank)
    loaded = load_model(tmp_path / "propagation.pt")
    assert loaded.kind == "propagation" and _same_weights(loaded.model["encoder"], encoder)
    assert _same_weights(loaded.model["refine"], refine)

    with pytest.raises(InputError, match="unet.*classes"):
        load_model(tmp_path / "unet", ["background", "nerve"])
    with pytest.raises(InputError, match="weights are for 3 classes, the project has 8"):
        load_model(tmp_path / "propagation.pt", [str(i) for i in range(8)])
    (tmp_path / "notes.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(InputError, match="notes.pt: refused as a checkpoint"):
        load_model(tmp_path / "notes.pt")
    save_checkpoint(tmp_path / "future.pt", {"kind": "diffusion"})
    with pytest.raises(InputError, match="unknown kind 'diffusion'"):
        load_model(tmp_path / "future.pt")


def test_propagation_weights_from_before_the_shared_format_still_load(tmp_path):
    encoder, refine = KeyEncoder(), RefineHead(8)
    torch.save(
        {"encoder": encoder.state_dict(), "refine": refine.state_dict(), "n_classes": 8, "architecture": {"encoder": {}, "refine": {}}},
        tmp_path / "propagation.pt",
    )
    loaded = load_model(tmp_path / "propagation.pt")
    assert loaded.kind == "propagation" and _same_weights(loaded.model["encoder"], encoder)
