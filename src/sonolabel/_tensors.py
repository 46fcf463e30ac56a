"""Tensor helpers shared by the engines: one owner for the class map of per-class scores."""

from __future__ import annotations

import torch


def channel_argmax(p: torch.Tensor) -> torch.Tensor:
    """argmax over dim 1 of (B, K, H, W) as uint8, first class on ties (as ``torch.argmax``). A running max
    is about 8 times faster on a CPU than torch's strided reduction over a non-last dimension for small K
    (16 frames of 8 classes at 480x480: 81 ms against 637 ms on 2 cores)."""
    best, idx = p[:, 0].clone(), torch.zeros(p.shape[0], *p.shape[2:], dtype=torch.uint8, device=p.device)
    for c in range(1, p.shape[1]):
        better = p[:, c] > best
        best = torch.where(better, p[:, c], best)
        idx[better] = c
    return idx
