"""Propagation weights kept in a project: where they live, and loading them into an engine."""

from __future__ import annotations

import hashlib
from pathlib import Path

import torch

from ..errors import InputError
from ..store import Project
from .config import PropagationConfig
from .encoders import KeyEncoder, RefineHead
from .engine import Engine

MODEL_FILE = Path("models") / "propagation.pt"


def model_path(project: Project) -> Path:
    return project.path / MODEL_FILE


def load_weights(path: str | Path, n_classes: int) -> tuple[KeyEncoder, RefineHead, dict, str]:
    """Load a weights file written by ``sonolabel propagation train`` (tensors and plain data only)."""
    path = Path(path)
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 - torch raises many kinds; all mean "not a usable weights file"
        raise InputError(f"cannot load propagation weights ({type(e).__name__}: {str(e)[:200]})", path,
                         "use a file written by `sonolabel propagation train`") from None
    if not isinstance(ckpt, dict) or "encoder" not in ckpt or "refine" not in ckpt:
        raise InputError("not a sonolabel propagation weights file", path)
    if int(ckpt.get("n_classes", -1)) != n_classes:
        raise InputError(f"weights are for {ckpt.get('n_classes')} classes, the project has {n_classes}", path,
                         "train propagation on this project (`sonolabel propagation train PROJECT`)")
    arch = ckpt.get("architecture", {})
    encoder = KeyEncoder(**arch.get("encoder", {}))
    refine = RefineHead(n_classes, **arch.get("refine", {}))
    encoder.load_state_dict(ckpt["encoder"])
    refine.load_state_dict(ckpt["refine"])
    digest = hashlib.sha256(path.read_bytes()).hexdigest()[:16]
    return encoder, refine, ckpt, f"learned-{digest}"


def load_engine(project: Project, config: PropagationConfig, explicit_mode: bool = False,
                weights: str | Path | None = None) -> tuple[Engine, str]:
    """An engine for ``project``: the trained weights when the mode asks for them (or, unless a mode
    was given, whenever the project has them), else training-free keys."""
    n = len(project.palette)
    path = Path(weights) if weights else model_path(project)
    use_learned = config.mode == "learned" or (not explicit_mode and path.is_file())
    if not use_learned:
        return Engine(config, n), "intensity-keys"
    if not path.is_file():
        raise InputError("no trained propagation weights", path, "run `sonolabel propagation train PROJECT` or use --mode free")
    encoder, refine, _, model_id = load_weights(path, n)
    config.mode = "learned"
    return Engine(config, n, encoder=encoder, refine=refine), model_id
