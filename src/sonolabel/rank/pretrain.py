"""Self-supervised warm start of SonoRank's frame encoder on a dataset's own frames, with no labels.

Time-contrastive learning: two frames of one video a few frames apart (each with its previous frame
of a window, when the encoder sees motion) are drawn with independent augmentations (crop, gamma,
speckle; never a flip, since the radial-to-ulnar layout tells the fingers apart), encoded, and
projected; an InfoNCE loss asks each frame to find its partner among every other frame of the
batch. Frames of other moments of the session are the negatives, so the encoder learns what tells
one moment of a session from another (the posture of the hand and the state of the tissue) and
ignores what augmentation changes (gain and speckle), which is what ranking travel and detecting
flexion need. Kinematics and labels are not read.

Stage 1 then starts from these encoder weights (``RankConfig.pretrain_steps`` > 0). The run folder
keeps them in ``pretrain.pt``: a resumed or repeated run reuses them, and the log's ``pretrain`` row
holds their cost.
"""

from __future__ import annotations

import math
import time

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import Dataset

from ..errors import InputError
from ..export.dataset import ExportedDataset
from ..training.augment import Augment
from ..training.loop import Optimisation, run_epoch
from .data import WindowReader, batch_loader

TEMPERATURE = 0.1  # InfoNCE softmax temperature
GAP = 2  # a frame's partner lies 1..GAP window steps (``subsample`` frames each) away in the same video
LR = 1e-3
CROP = (0.9, 1.0)  # area share of each frame's random crop: a few px of shift and scale (larger crops left the loss at chance)


def frame_pairs(data: ExportedDataset, subjects: list[str], subsample: int) -> tuple[np.ndarray, np.ndarray]:
    """Every frame of ``subjects``' videos that has a frame ``subsample`` before it: dataset rows
    (N, 2) of (previous, frame), and each one's video (N,). Rows of one video are consecutive."""
    table = data.table
    rows, videos = [], []
    for k, (_, part) in enumerate(table[table["subject"].isin(subjects)].groupby("video", sort=False)):
        part = part.sort_values("frame")
        lookup = dict(zip(part["frame"].tolist(), part.index.tolist()))
        for f, r in lookup.items():
            prev = lookup.get(f - subsample)
            if prev is not None:
                rows.append((prev, r))
                videos.append(k)
    if not rows:
        raise InputError(f"no frames to pretrain on for subjects {subjects}", data.path, "export videos with at least two frames per subject")
    return np.asarray(rows, np.int64), np.asarray(videos, np.int64)


class ContrastivePairs(Dataset):
    """``n`` random (frame, partner) pairs, each read as (2, 2, C, S, S): [anchor, partner] x [previous, frame]."""

    def __init__(self, rows: np.ndarray, videos: np.ndarray, reader: WindowReader, n: int, gap: int, seed: int):
        self.rows, self.videos, self.reader, self.n, self.gap, self.seed = rows, videos, reader, n, gap, seed

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int) -> torch.Tensor:
        rng = np.random.default_rng([self.seed, i])
        a = int(rng.integers(len(self.rows)))
        offsets = [d for d in range(-self.gap, self.gap + 1) if d and 0 <= a + d < len(self.rows) and self.videos[a + d] == self.videos[a]]
        b = a + int(rng.choice(offsets)) if offsets else a
        return torch.stack([self.reader.read(self.rows[a]), self.reader.read(self.rows[b])])


def info_nce(z: torch.Tensor, temperature: float = TEMPERATURE) -> torch.Tensor:
    """InfoNCE over (2B, D) embeddings where rows 2i and 2i+1 are partners: each row's partner
    against every other row of the batch."""
    z = F.normalize(z.float(), dim=1)
    sim = z @ z.T / temperature
    sim = sim.masked_fill(torch.eye(len(z), dtype=torch.bool, device=z.device), -math.inf)
    partner = torch.arange(len(z), device=z.device) ^ 1
    return F.cross_entropy(sim, partner)


def pretrain_frames(model: nn.Module, data: ExportedDataset, subjects: list[str], cfg, device: torch.device, progress: bool = False) -> dict:
    """Train ``model.frames`` (a :class:`~.model.SonoRank`'s encoder) in place by time-contrastive learning on
    ``subjects``' raw frames for ``cfg.pretrain_steps`` batches of ``cfg.pretrain_batch`` pairs; returns the
    log row (mean loss over the steps, seconds). ``cfg`` is the run's :class:`~.config.RankConfig`, checked
    (raw input only) by :meth:`~.config.RankConfig.check`."""
    augment = Augment(resized_crop=1.0, crop_scale=CROP, hflip=0.0, gamma=tuple(cfg.gamma or (0.7, 1.5)), speckle_std=cfg.speckle_std or 0.1, seed=cfg.seed)
    reader = WindowReader(data, "raw", cfg.size, augment)
    rows, videos = frame_pairs(data, subjects, cfg.subsample)
    pairs = ContrastivePairs(rows, videos, reader, cfg.pretrain_steps * cfg.pretrain_batch, GAP, cfg.seed)
    d = cfg.embed
    head = nn.Sequential(nn.Linear(d, d), nn.ReLU(inplace=True), nn.Linear(d, d)).to(device)
    opt = torch.optim.Adam([*model.frames.parameters(), *head.parameters()], LR)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, cfg.pretrain_steps)
    loop = Optimisation(opt, device.type, torch.bfloat16 if cfg.amp and device.type == "cuda" else None, sched)

    def batches():
        for x in batch_loader(pairs, cfg, cfg.pretrain_batch, False, device, cfg.seed):
            x = x.to(device).flatten(0, 1)  # (2B, 2, C, S, S): anchors and partners interleaved

            def loss(x=x):
                feats = model.embed_frames(x[:, 1:], x[:, :-1]) if model.cfg.motion else model.embed_frames(x[:, 1:])
                return info_nce(head(feats[:, 0]))

            yield 1, loss

    t0 = time.perf_counter()
    model.train()
    stats = run_epoch(batches(), loop, cfg.pretrain_steps, desc="pretrain", progress=progress)
    return {"stage": "pretrain", "epoch": 1, "train_loss": stats.mean_loss, "loss": float("nan"), "seconds": time.perf_counter() - t0, "best": True}
