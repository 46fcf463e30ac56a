"""The propagation engine: one directional pass over memory, and the fusion of two passes.

Store-independent: it takes frames and keyframe masks as arrays and returns class
probabilities on the key grid, so it can be tested and benchmarked on its own.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F

from .config import PropagationConfig
from .encoders import IntensityKeys, KeyEncoder, RefineHead
from .readout import LocalMemory, Readout


class Pass:
    """One direction of propagation: permanent memory holds the starting keyframe (and any extra
    keyframes), working memory the recent predictions (every ``work_every``-th frame, FIFO)."""

    def __init__(self, engine: "Engine", key: torch.Tensor, value: torch.Tensor, extra: list[tuple[torch.Tensor, torch.Tensor]]):
        c = engine.config
        self.config = c
        scale = 4 / engine.encoder.stride  # radii are set in cells of a stride-4 grid
        self.memory = LocalMemory(
            tuple(key.shape[-2:]),
            key.shape[0],
            engine.n_classes,
            1 + len(extra),
            c.work_size,
            max(1, math.ceil(c.key_radius * scale)),
            max(1, math.ceil(c.work_radius * scale)),
            device=engine.device,
        )
        for slot, (k, v) in enumerate([(key, value), *extra]):
            self.memory.permanent.put(k, v, slot)
        self.prev_key, self.prev_value, self.steps = key, value, 0

    def step(self, key: torch.Tensor) -> Readout:
        """Read the next frame's class probabilities (key grid) and remember the prediction as due."""
        c = self.config
        self.steps += 1
        if self.steps > 1 and (self.steps - 1) % c.work_every == 0 and c.work_size:
            self.memory.working.put(self.prev_key, self.prev_value)
        r = self.memory.read(key, top_k=c.top_k, temperature=c.temperature)
        self.prev_key, self.prev_value = key, r.probs
        return r


class Engine:
    """Encodes frames and runs memory readout passes for one configuration and class count."""

    def __init__(self, config: PropagationConfig, n_classes: int, encoder: torch.nn.Module | None = None, refine: RefineHead | None = None):
        self.config = config
        self.n_classes = n_classes
        self.device = torch.device(config.resolve_device())
        # trained weights come in as ``encoder``; without them the keys are training-free (an "auto" config
        # is resolved by propagation.weights.load_engine before it reaches an engine)
        self.encoder = (encoder or (KeyEncoder() if config.mode == "learned" else IntensityKeys())).to(self.device).eval()
        self.refine = refine.to(self.device).eval() if refine is not None else None

    # -- frames and labels on the key grid ---------------------------------------------------
    def encode(self, frames: np.ndarray) -> tuple[torch.Tensor, torch.Tensor | None]:
        """(B, H, W) uint8 frames at store resolution -> keys (B, C, h, w) and stride-4 features."""
        s = self.config.working_size
        x = torch.from_numpy(np.ascontiguousarray(frames)).to(self.device)[:, None].float()
        if x.shape[-2:] != (s, s):
            x = F.interpolate(x, size=(s, s), mode="area")
        with torch.no_grad():
            keys, fine = self.encoder(x)
        return keys, fine

    def soft_labels(self, labels: np.ndarray, grid: tuple[int, int]) -> torch.Tensor:
        """(H, W) label map -> (K, h, w) class fractions on the key grid (area pooling of one-hot)."""
        t = torch.from_numpy(np.ascontiguousarray(labels)).to(self.device).long()
        onehot = F.one_hot(t.clamp_max(self.n_classes - 1), self.n_classes).permute(2, 0, 1)[None].float()
        return F.adaptive_avg_pool2d(onehot, grid)[0]

    def start_pass(self, key: torch.Tensor, value: torch.Tensor, extra: list[tuple[torch.Tensor, torch.Tensor]] = ()) -> "Pass":
        """A directional pass that starts at a keyframe (``key``, ``value``); ``extra`` keyframes join permanent memory."""
        return Pass(self, key, value, list(extra))

    # -- fusion and output ------------------------------------------------------------------
    @staticmethod
    def fuse(forward: torch.Tensor, backward: torch.Tensor, pos: torch.Tensor) -> torch.Tensor:
        """Fuse (B, K, h, w) passes at relative positions ``pos`` (B,) between the forward pass's
        keyframe (0) and the backward pass's (1): each pass is weighted by its per-pixel
        confidence and by closeness to its own keyframe."""
        pos = pos.view(-1, 1, 1, 1).to(forward.device)
        f, b = forward.float(), backward.float()
        wf = f.amax(1, keepdim=True) * (1 - pos) + 1e-6
        wb = b.amax(1, keepdim=True) * pos + 1e-6
        return (wf * f + wb * b) / (wf + wb)

    def to_labels(self, probs: torch.Tensor, fine: torch.Tensor | None, size: tuple[int, int]) -> np.ndarray:
        """(B, K, h, w) probabilities (+ stride-4 features) -> (B, H, W) uint8 labels at store resolution."""
        p = probs.float().to(self.device)
        with torch.no_grad():
            if self.refine is not None and fine is not None:
                p = torch.softmax(self.refine(p, fine), 1)
            p = F.interpolate(p, size=size, mode="bilinear", align_corners=False)
            return channel_argmax(p).cpu().numpy()


def channel_argmax(p: torch.Tensor) -> torch.Tensor:
    """argmax over dim 1 of (B, K, H, W) as uint8; a running max is several times faster on CPU than
    torch's strided reduction for small K."""
    best, idx = p[:, 0].clone(), torch.zeros(p.shape[0], *p.shape[2:], dtype=torch.uint8, device=p.device)
    for c in range(1, p.shape[1]):
        better = p[:, c] > best
        best = torch.where(better, p[:, c], best)
        idx[better] = c
    return idx
