"""Propagation weights kept in a project: where they live, and loading them into an engine."""

from __future__ import annotations

import hashlib
from pathlib import Path

import torch

from ..checkpoint import load_checkpoint
from ..errors import InputError
from ..store import Project
from .config import PropagationConfig
from .encoders import LEARNED_WEIGHT, JoinedKeys, KeyEncoder, RefineHead
from .engine import Engine

MODEL_FILE = Path("models") / "propagation.pt"


def model_path(project: Project) -> Path:
    return project.path / MODEL_FILE


def _read(path: Path) -> dict:
    """The checkpoint at ``path``; a weights file from before the shared checkpoint format (a plain dict
    with ``encoder`` and ``refine``) still loads, so trained projects keep working."""
    try:
        return load_checkpoint(path, "propagation")
    except InputError as e:
        if "not a sonolabel checkpoint" not in str(e):
            raise InputError(f"cannot load propagation weights: {e.what}", path, "use a file written by `sonolabel propagation train`") from None
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
        if not isinstance(ckpt, dict) or "encoder" not in ckpt or "refine" not in ckpt:
            raise InputError("not a sonolabel propagation weights file", path, "use a file written by `sonolabel propagation train`") from None
        return {**ckpt, "kind": "propagation", "classes": ckpt.get("class_names")}


def load_weights(path: str | Path, n_classes: int | None = None) -> tuple[KeyEncoder, RefineHead, dict, str]:
    """The encoder and refine head of a weights file written by ``sonolabel propagation train``, its
    checkpoint and a model id (tensors and plain data only; with ``n_classes``, refused for another number)."""
    path = Path(path)
    ckpt = _read(path)
    n_classes = int(ckpt.get("n_classes", -1)) if n_classes is None else n_classes
    if int(ckpt.get("n_classes", -1)) != n_classes:
        raise InputError(
            f"weights are for {ckpt.get('n_classes')} classes, the project has {n_classes}",
            path,
            "train propagation on this project (`sonolabel propagation train PROJECT`)",
        )
    arch = ckpt.get("architecture", {})
    encoder = KeyEncoder(**arch.get("encoder", {}))
    refine = RefineHead(n_classes, **arch.get("refine", {}))
    encoder.load_state_dict(ckpt["encoder"])
    refine.load_state_dict(ckpt["refine"])
    digest = hashlib.sha256(path.read_bytes()).hexdigest()[:16]
    return encoder, refine, ckpt, f"learned-{digest}"


def learned_engine(config: PropagationConfig, n_classes: int, path: str | Path) -> tuple[Engine, str]:
    """An engine that propagates with the trained weights at ``path``, and its model id: the trained keys
    joined with the training-free ones (:class:`JoinedKeys`, read at the size the encoder was trained at),
    on the stride-4 grid. The refine head is a training head only: on the joined stride-4 readout it
    blurred more than it sharpened (docs/propagation.md, "Joined keys")."""
    encoder, _, ckpt, model_id = load_weights(path, n_classes)
    trained_size = int(ckpt.get("config", {}).get("working_size", 240))
    keys = JoinedKeys(encoder, LEARNED_WEIGHT, trained_size)
    return Engine(config, n_classes, encoder=keys), f"{model_id}-joined-{LEARNED_WEIGHT}"


def resolve_mode(project: Project, config: PropagationConfig, weights: str | Path | None = None) -> PropagationConfig:
    """A copy of ``config`` whose mode is ``free`` or ``learned``: ``auto`` is learned when the weights
    (``weights``, else the project's own) exist. ``learned`` without weights is refused."""
    path = Path(weights) if weights else model_path(project)
    mode = config.mode if config.mode != "auto" else ("learned" if path.is_file() else "free")
    if mode == "learned" and not path.is_file():
        raise InputError("no trained propagation weights", path, "run `sonolabel propagation train PROJECT` or use --mode free")
    return PropagationConfig.from_dict({**config.to_dict(), "mode": mode})


def load_engine(project: Project, config: PropagationConfig, weights: str | Path | None = None) -> tuple[Engine, str]:
    """An engine for ``project`` and its model id: the trained weights when the (resolved) mode is learned,
    else training-free keys. ``config`` is not changed; the engine's own config has the resolved mode."""
    n = len(project.palette)
    config = resolve_mode(project, config, weights)
    if config.mode == "free":
        return Engine(config, n), "intensity-keys"
    return learned_engine(config, n, Path(weights) if weights else model_path(project))
