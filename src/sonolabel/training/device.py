"""Which torch device a run uses."""

from __future__ import annotations

import torch

from ..errors import InputError
from .distributed import World


def resolve_device(device: str, world: World | None = None) -> torch.device:
    """``auto`` (CUDA when present, else CPU), ``cpu`` or ``cuda``; a distributed CUDA run uses its local rank's GPU."""
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda"):
        if not torch.cuda.is_available():
            raise InputError("device cuda asked for, but no CUDA device is available", hint="use --set device=cpu")
        if world is not None and world.distributed:
            return torch.device("cuda", world.local_rank)
    return torch.device(device)
