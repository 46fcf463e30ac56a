"""Ultrasound augmentations, applied with one draw of random parameters to every frame of a sample.

Each transform takes images (T, 1, H, W) in 0-1 and labels (T, H, W) and returns both; a
single frame is a sequence of length one, so the U-Net and the sequence models share them.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.nn.functional as F


@dataclass
class Augment:
    """Switchable augmentations (each one a probability or a range; 0 or None switches it off)."""

    resized_crop: float = 0.5  # probability of a random resized crop
    crop_scale: tuple[float, float] = (0.7, 1.0)  # area share of the crop
    hflip: float = 0.5
    gamma: tuple[float, float] | None = (0.7, 1.5)
    speckle_std: float = 0.1  # multiplicative noise std (0: off)
    seed: int | None = None

    def __post_init__(self) -> None:
        self._gen = torch.Generator()
        self._pid = os.getpid()
        if self.seed is not None:
            self._gen.manual_seed(self.seed)

    def _u(self, lo: float = 0.0, hi: float = 1.0) -> float:
        if self._pid != os.getpid():  # a DataLoader worker: draw from the worker's own seed
            self._pid = os.getpid()
            self._gen.manual_seed(torch.initial_seed() if self.seed is None else self.seed + torch.initial_seed() % 1000)
        return lo + (hi - lo) * torch.rand(1, generator=self._gen).item()

    def __call__(self, img: torch.Tensor, lab: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        t, _, h, w = img.shape
        if self.resized_crop and self._u() < self.resized_crop:
            area = self._u(*self.crop_scale)
            ch, cw = max(8, int(round(h * area**0.5))), max(8, int(round(w * area**0.5)))
            y0, x0 = int(self._u(0, h - ch + 1)), int(self._u(0, w - cw + 1))
            img = F.interpolate(img[..., y0 : y0 + ch, x0 : x0 + cw], size=(h, w), mode="bilinear", align_corners=False)
            lab = F.interpolate(lab[:, None, y0 : y0 + ch, x0 : x0 + cw].float(), size=(h, w), mode="nearest")[:, 0].long()
        if self.hflip and self._u() < self.hflip:
            img, lab = img.flip(-1), lab.flip(-1)
        if self.gamma:
            img = img.clamp(0, 1) ** self._u(*self.gamma)
        if self.speckle_std:
            noise = 1 + self.speckle_std * torch.randn(img.shape, generator=self._gen)
            img = (img * noise).clamp(0, 1)
        return img.contiguous(), lab.contiguous()
