"""Open any trained model by its file: a U-Net, a SonoRank or a project's propagation weights.

Every kind is written in the one checkpoint format (:mod:`sonolabel.checkpoint`), whose ``kind`` says
which network to build; each package keeps its own typed loader, and this module picks it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from .checkpoint import KINDS, read_kind
from .errors import InputError


@dataclass
class LoadedModel:
    kind: str  # one of checkpoint.KINDS
    model: torch.nn.Module  # in eval mode; propagation: a ModuleDict of "encoder" and "refine"
    checkpoint: dict  # the metadata saved beside the weights (config, classes, provenance)

    @property
    def classes(self) -> list[str]:
        return list(self.checkpoint.get("classes") or [])


def load_model(path: str | Path, classes: list[str] | None = None) -> LoadedModel:
    """The model in ``path`` (a checkpoint file, or a training run folder holding ``best.pt``) in eval mode.
    With ``classes``, a model trained for other classes is refused with a message naming both."""
    path = Path(path)
    if path.is_dir():
        path = path / "best.pt"
    kind = read_kind(path)
    if kind == "unet":
        from .unet.predict import load_unet

        model, ckpt = load_unet(path, classes)
    elif kind == "rank":
        from .rank.train import load_rank_model

        model, ckpt = load_rank_model(path, classes)
    elif kind == "propagation":
        from .propagation.weights import load_weights

        encoder, refine, ckpt, _ = load_weights(path, len(classes) if classes else None)
        model = torch.nn.ModuleDict({"encoder": encoder, "refine": refine}).eval()
    else:
        raise InputError(f"a checkpoint of unknown kind {kind!r} (known: {', '.join(KINDS)})", path, "it was written by a newer sonolabel; update sonolabel")
    return LoadedModel(kind, model, ckpt)
