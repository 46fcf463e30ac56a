"""Class boundaries of label maps, shared by the drift signals (numpy) and the U-Net's scores (torch)."""

from __future__ import annotations

from typing import TypeVar

import numpy as np
import torch

LabelMap = TypeVar("LabelMap", np.ndarray, torch.Tensor)


def outline(labels: LabelMap) -> LabelMap:
    """Pixels with a 4-neighbour of another class: every class's outline at once, over the last two axes
    of a numpy array or a torch tensor (so one frame or a batch), as a boolean map of the same kind."""
    edge = labels != labels  # all False, of the input's kind, shape and device
    dy = labels[..., 1:, :] != labels[..., :-1, :]
    dx = labels[..., :, 1:] != labels[..., :, :-1]
    edge[..., 1:, :] |= dy
    edge[..., :-1, :] |= dy
    edge[..., :, 1:] |= dx
    edge[..., :, :-1] |= dx
    return edge
