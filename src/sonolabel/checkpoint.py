"""Checkpoints: written atomically, read with ``weights_only=True`` and checked before use.

A checkpoint is a plain dict of tensors and JSON-like data (never pickled objects), so loading
one cannot run code; a file that needs more than that is refused.
"""

from __future__ import annotations

import os
import pickle
from pathlib import Path

import numpy as np
import torch

from .errors import InputError

FORMAT = "sonolabel-checkpoint"
KINDS = ("unet", "rank", "propagation")  # what a checkpoint holds: its "kind" key


def _plain(x):
    """``x`` with numpy scalars and arrays turned into Python numbers and lists (tensors stay)."""
    if isinstance(x, dict):
        return {k: _plain(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return type(x)(_plain(v) for v in x)
    if isinstance(x, (np.generic, np.ndarray)):
        return x.tolist()
    return x


def save_checkpoint(path: str | Path, payload: dict) -> None:
    """Write ``payload`` to ``path`` through a temporary file and a rename: a kill leaves the old file or the new one."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        with open(tmp, "wb") as fh:
            torch.save(_plain({"format": FORMAT, **payload}), fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def _load(path: Path) -> dict:
    """The dict in ``path``, loaded with ``weights_only=True``; anything else is refused."""
    if not path.is_file():
        raise InputError("no such checkpoint", path, "give the best.pt or last.pt of a training run")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 - torch raises many kinds; all mean "not a safe checkpoint"
        if isinstance(e, pickle.UnpicklingError):
            what = "it holds Python objects beyond tensors and plain data, which could run code when loaded"
        else:
            what = f"{type(e).__name__}: {str(e).strip()[:120]}"
        raise InputError(f"refused as a checkpoint ({what})", path, "only checkpoints holding tensors and plain data load; retrain or re-save it") from None
    if not isinstance(ckpt, dict):
        raise InputError("not a sonolabel checkpoint", path, "give the best.pt or last.pt of a training run")
    return ckpt


def read_kind(path: str | Path) -> str:
    """What the checkpoint in ``path`` holds (one of :data:`KINDS`). Propagation weights written before
    this format (a dict of ``encoder`` and ``refine``) count as "propagation"."""
    ckpt = _load(Path(path))
    if ckpt.get("format") != FORMAT and "encoder" in ckpt and "refine" in ckpt:
        return "propagation"
    if ckpt.get("format") != FORMAT:
        raise InputError("not a sonolabel checkpoint", path, "give the best.pt or last.pt of a training run")
    return str(ckpt.get("kind"))


def load_checkpoint(path: str | Path, kind: str, classes: list[str] | None = None) -> dict:
    """Load a ``kind`` checkpoint (one of :data:`KINDS`); with ``classes``, refuse one trained for other classes."""
    path = Path(path)
    ckpt = _load(path)
    if ckpt.get("format") != FORMAT:
        raise InputError("not a sonolabel checkpoint", path, "give the best.pt or last.pt of a training run")
    if ckpt.get("kind") != kind:
        raise InputError(f"a {ckpt.get('kind')} checkpoint, expected {kind}", path)
    if classes is not None and list(ckpt.get("classes", [])) != list(classes):
        raise InputError(
            f"checkpoint is for classes {ckpt.get('classes')}, the data has {list(classes)}",
            path,
            "use a model trained on data with the same palette, or retrain",
        )
    return ckpt
