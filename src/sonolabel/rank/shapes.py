"""What the flexion classifier reads from label maps: where each class changed against the rest frame.

A flexing finger bulges its own compartment of the digit flexors, and the compartments lie side
by side from the radial to the ulnar edge of FDS and FDP. The whole-class area barely tells them
apart (every long finger thickens FDS and FDP); where along the muscle the change happens does.

So each label class is cut into ``strips`` vertical strips of equal width across its own extent
in the rest frame (2% to 98% of its pixels, so the strips follow each subject's anatomy), and
each strip gives two numbers against the rest frame: the change of the class's pixel count
there (a share of the class's whole rest area) and the change of its mean depth (a share of the
image height). The background class is left out. With ``strips=0`` the features are each class's
share of the frame (background included), less the rest frame's: what checkpoints trained before
strips existed read.

Everything goes through per-frame column profiles (:func:`column_profile`), so that real-time
inference keeps a few numbers per frame, not the label maps.
"""

from __future__ import annotations

import torch

EXTENT = (0.02, 0.98)  # share of a class's rest-frame pixels left of its first and right of its last strip edge


def column_profile(onehot: torch.Tensor) -> torch.Tensor:
    """(..., C, H, W) one-hot labels -> (..., C, W, 2): per column, each class's share of the column's
    pixels and the sum of their depths (rows / H) over H: the class's mean depth there is their ratio."""
    h = onehot.shape[-2]
    depth = torch.arange(h, dtype=torch.float32, device=onehot.device)[:, None] / h
    onehot = onehot.float()
    return torch.stack([onehot.sum(-2), (onehot * depth).sum(-2)], -1) / h


def feature_count(classes: int, strips: int) -> int:
    """Length of :func:`profile_change`'s output for ``classes`` label channels (background first)."""
    return classes if strips == 0 else (classes - 1) * strips * 2


def _strip_masks(reference: torch.Tensor, strips: int) -> torch.Tensor:
    """(B, C, W) column masses -> (B, C, strips, W) 0/1: the columns of each strip of each class."""
    mass = reference.cumsum(-1) / reference.sum(-1, keepdim=True).clamp_min(1e-6)
    lo = (mass < EXTENT[0]).sum(-1, keepdim=True).float()
    hi = (mass < EXTENT[1]).sum(-1, keepdim=True).float() + 1
    edges = lo[..., None] + (hi - lo)[..., None] * torch.linspace(0, 1, strips + 1, device=reference.device)  # (B, C, 1, K+1)
    cols = torch.arange(reference.shape[-1], device=reference.device, dtype=torch.float32)
    return ((cols >= edges[..., :-1, None]) & (cols < edges[..., 1:, None]))[:, :, 0].float()


def strip_masks(onehot: torch.Tensor, strips: int) -> torch.Tensor:
    """(C, H, W) one-hot labels of a rest frame -> ((C - 1) * strips, H, W) 0/1: each class's pixels (the
    background left out) within each of its strips, cut as :func:`profile_change` cuts them. Where the
    image moved inside a strip (:func:`.flow.strip_flow`) is read within these."""
    onehot = onehot.float()
    columns = _strip_masks(onehot[None, 1:].sum(-2), strips)[0]  # (C - 1, K, W)
    return (onehot[1:, None] * columns[:, :, None, :]).flatten(0, 1)


def profile_change(window: torch.Tensor, rest: torch.Tensor | None, strips: int) -> torch.Tensor:
    """(B, features) from the column profiles of a window's frames (B, T, C, W, 2) and of its rest
    frame (B, C, W, 2): the change of each strip's share and mean depth (see the module docstring).
    Without a rest frame the window's mean profile sets the strips and the values are absolute."""
    if strips == 0:
        share = window[..., 0].mean((1, -1))
        return share - rest[..., 0].mean(-1) if rest is not None else share
    window = window[:, :, 1:]
    ref = rest[:, 1:] if rest is not None else window.mean(1)
    masks = _strip_masks(ref[..., 0], strips)  # (B, C, K, W)
    ref_count, ref_depth = (torch.einsum("bcw,bckw->bck", ref[..., i], masks) for i in (0, 1))
    count, depth = (torch.einsum("btcw,bckw->btck", window[..., i], masks) for i in (0, 1))
    ref_mean = ref_depth / ref_count.clamp_min(1e-6)
    mean_depth = torch.where(count > 1e-6, depth / count.clamp_min(1e-6), ref_mean[:, None]).mean(1)
    total = ref[..., 0].sum(-1, keepdim=True).clamp_min(1e-6)  # (B, C, 1)
    count = count.mean(1)
    if rest is None:
        return torch.cat([(count / total).flatten(1), mean_depth.flatten(1)], 1)
    return torch.cat([((count - ref_count) / total).flatten(1), (mean_depth - ref_mean).flatten(1)], 1)
