"""The propagation engine: one directional pass over memory, and the fusion of two passes.

Store-independent: it takes frames and keyframe masks as arrays and returns class
probabilities on the label grid (the key grid, or twice it where a keyframe holds a thin class), so it
can be tested and benchmarked on its own.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F

from .._tensors import channel_argmax
from .config import PropagationConfig
from .encoders import IntensityKeys
from .motion import at_blocks, motion_field
from .readout import LocalMemory, Readout


ANCHOR_EVERY = 8  # frames between the anchors that motion is measured from
THIN_CELLS = 2.5  # a class thinner than this many key cells in a keyframe: labels at twice the key grid (see label_scale)


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
            scale=value.shape[-1] // key.shape[-1],  # label cells per key cell, from the keyframe's value
        )
        # positions: how far each block's content moved since the starting keyframe (None: motion not tracked)
        self.position = torch.zeros(2, *self.memory.blocks, device=engine.device) if c.motion else None
        moved = self._moved(torch.stack([k for k, _ in extra]), key.expand(len(extra), *key.shape)) if extra and c.motion else ()
        for slot, (k, v) in enumerate([(key, value), *extra]):
            self.memory.permanent.put(k, v, slot, -moved[slot - 1] if slot and c.motion else self.position)
        self.prev_key, self.prev_value, self.prev_position, self.steps = key, value, self.position, 0
        self.anchor = (key, self.position)  # motion is measured from here, not chained frame to frame (no drift)

    def _moved(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        """Per block, the motion from key maps ``a`` to ``b`` (N, C, h, w), in cells: where ``a``'s
        content lies in ``b``, (N, 2, by, bx)."""
        return at_blocks(motion_field(a, b), self.memory.blocks)

    def run(self, keys: torch.Tensor) -> list[Readout]:
        """Step through a batch of consecutive frames' keys (B, C, h, w), in pass order. The motion of
        every frame is estimated for the whole batch at once."""
        if self.position is None or not len(keys):
            return [self.step(k) for k in keys]
        # frame i is measured from the anchor in force at its step (as :meth:`step` moves it): the
        # pass's current anchor, or the frame before a step that is a multiple of ANCHOR_EVERY
        ref, anchor = [], self.anchor[0]
        for i in range(len(keys)):
            if (self.steps + i + 1) % ANCHOR_EVERY == 0:
                anchor = keys[i - 1] if i else self.prev_key
            ref.append(anchor)
        moved = self._moved(torch.stack(ref), keys)
        return [self.step(keys[i], moved[i]) for i in range(len(keys))]

    def step(self, key: torch.Tensor, moved: torch.Tensor | None = None) -> Readout:
        """Read the next frame's class probabilities (label grid) and remember the prediction as due.
        ``moved``: the motion from the current anchor to this frame, when already estimated."""
        c = self.config
        self.steps += 1
        if self.steps > 1 and (self.steps - 1) % c.work_every == 0 and c.work_size:
            self.memory.working.put(self.prev_key, self.prev_value, position=self.prev_position)
        if self.position is not None:
            if self.steps % ANCHOR_EVERY == 0:
                self.anchor = (self.prev_key, self.prev_position)
            if moved is None:
                moved = self._moved(self.anchor[0][None], key[None])[0]
            self.position = self.anchor[1] + moved
            self.memory.align(self.position)
        r = self.memory.read(key, top_k=c.top_k, temperature=c.temperature)
        self.prev_key, self.prev_value, self.prev_position = key, r.probs, self.position
        return r


class Engine:
    """Encodes frames and runs memory readout passes for one configuration and class count."""

    def __init__(self, config: PropagationConfig, n_classes: int, encoder: torch.nn.Module | None = None):
        self.config = config
        self.n_classes = n_classes
        self.device = torch.device(config.resolve_device())
        # the learned mode's keys come in as ``encoder`` (propagation.weights.learned_engine); without
        # them the keys are training-free
        self.encoder = (encoder or IntensityKeys()).to(self.device).eval()

    # -- frames on the key grid, labels on the label grid ------------------------------------
    def encode(self, frames: np.ndarray) -> torch.Tensor:
        """(B, H, W) uint8 frames at store resolution -> keys (B, C, h, w) on the key grid."""
        s = self.config.working_size
        x = torch.from_numpy(np.ascontiguousarray(frames)).to(self.device)[:, None].float()
        if x.shape[-2:] != (s, s):
            x = F.interpolate(x, size=(s, s), mode="area")
        with torch.no_grad():
            return self.encoder(x)

    def soft_labels(self, labels: np.ndarray, grid: tuple[int, int], scale: int = 1) -> torch.Tensor:
        """(H, W) label map -> (K, scale·h, scale·w) class fractions on the label grid: the key grid ``grid``
        times ``scale`` (area pooling of one-hot). A pass started from it reads labels on that grid."""
        t = torch.from_numpy(np.ascontiguousarray(labels)).to(self.device).long()
        onehot = F.one_hot(t.clamp_max(self.n_classes - 1), self.n_classes).permute(2, 0, 1)[None].float()
        return F.adaptive_avg_pool2d(onehot, (grid[0] * scale, grid[1] * scale))[0]

    def label_scale(self, masks: list[np.ndarray], working_size: int | None = None) -> int:
        """Label cells per key cell for a video with keyframe ``masks`` at ``working_size`` (None: the
        engine's): 2 when some class is thinner than :data:`THIN_CELLS` key cells in one of them (a fascia,
        an aponeurosis, a thin muscle edge seen end-on), so that the band keeps its shape (a matched key
        cell brings its 2x2 label cells); else 1, at no extra cost. On a thin-band phantom this lifts the
        bands' IoU by 0.1-0.15 (docs/propagation.md)."""
        from scipy.ndimage import distance_transform_edt

        grid_w = (working_size or self.config.working_size) // self.encoder.stride
        for m in masks:
            small = np.asarray(m)[::2, ::2]
            limit = THIN_CELLS * m.shape[1] / grid_w / 2  # in pixels of ``small``
            for c in np.unique(small):
                if c and 2 * distance_transform_edt(small == c).max() < limit:
                    return 2
        return 1

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

    def to_labels(self, probs: torch.Tensor, size: tuple[int, int]) -> np.ndarray:
        """(B, K, h, w) probabilities on the label grid -> (B, H, W) uint8 labels at store resolution."""
        p = probs.float().to(self.device)
        with torch.no_grad():
            p = F.interpolate(p, size=size, mode="bilinear", align_corners=False)
            return channel_argmax(p).cpu().numpy()
