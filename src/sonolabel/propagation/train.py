"""Train the propagation encoder and refine head on a project's own data, on a CPU, in minutes.

Two stages share the time budget:

1. **Self-supervised correspondence** on unlabeled frames (contrastive random walk): keys of a
   short clip define transition matrices between neighbouring frames; a walk forward and back
   along the clip must return where it started.
2. **Keyframe supervision**: labels are read out from a keyframe into a deformed copy of itself
   (random affine and elastic warps, gain and speckle changes) and into the other keyframes of
   the video, then refined; cross-entropy against the known labels trains readout keys and
   refine head together (the encoder at a lower learning rate).

Nothing is downloaded; the weights are stored in the project with their config and provenance.
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F

from .. import __version__
from ..checkpoint import save_checkpoint
from ..errors import InputError
from ..store import Project
from ..training.device import resolve_device
from ..training.loop import Optimisation, run_epoch
from .encoders import KeyEncoder, RefineHead
from .weights import model_path


@dataclass
class TrainConfig:
    minutes: float = 20.0
    self_supervised_share: float = 0.4  # of the time budget
    working_size: int = 240
    clip_length: int = 4
    clip_batch: int = 4
    temperature: float = 0.05
    edge_dropout: float = 0.1
    pair_batch: int = 4
    lr: float = 1e-3
    encoder_lr_keyframes: float = 2e-4
    radius: int = 4  # key cells searched in training readouts
    seed: int = 0
    device: str = "auto"  # cpu | cuda | auto (CUDA when present)


def _resize(frames: np.ndarray, size: int) -> torch.Tensor:
    x = torch.from_numpy(np.ascontiguousarray(frames))[:, None].float()
    return F.interpolate(x, size=(size, size), mode="area") if x.shape[-1] != size else x


def _local_bias(h: int, w: int, radius: int) -> torch.Tensor:
    """(h*w, h*w) additive mask: 0 within ``radius`` cells, -inf beyond."""
    yy, xx = torch.meshgrid(torch.arange(h), torch.arange(w), indexing="ij")
    y, x = yy.flatten(), xx.flatten()
    far = ((y[:, None] - y[None]).abs() > radius) | ((x[:, None] - x[None]).abs() > radius)
    return torch.zeros(h * w, h * w).masked_fill(far, float("-inf"))


def crw_loss(keys: torch.Tensor, temperature: float, bias: torch.Tensor, edge_dropout: float) -> torch.Tensor:
    """Palindrome random-walk loss for keys (B, T, C, h, w)."""
    b, t, c = keys.shape[:3]
    k = keys.flatten(3).transpose(2, 3)  # (B, T, N, C)
    n = k.shape[2]

    def step(a, bb):
        logits = a @ bb.transpose(1, 2) / temperature + bias
        if edge_dropout:
            logits = logits.masked_fill(torch.rand_like(logits) < edge_dropout, float("-inf"))
        return torch.softmax(logits, -1)

    walk = torch.eye(n, device=k.device).expand(b, n, n)
    order = list(range(t)) + list(range(t - 2, -1, -1))
    for i, j in zip(order[:-1], order[1:]):
        walk = walk @ step(k[:, i], k[:, j])
    target = torch.arange(n, device=k.device).expand(b, n)
    return F.nll_loss(torch.log(walk.clamp_min(1e-12)).flatten(0, 1), target.flatten())


def random_warp(img: torch.Tensor, lab: torch.Tensor, gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Warp (1, 1, S, S) image and (S, S) labels by a random affine plus smooth elastic field."""
    s = img.shape[-1]
    r = lambda a: (torch.rand(1, generator=gen).item() * 2 - 1) * a  # noqa: E731
    ang, sc = math.radians(r(6)), 1 + r(0.08)
    theta = torch.tensor([[sc * math.cos(ang), -sc * math.sin(ang), r(0.1)], [sc * math.sin(ang), sc * math.cos(ang), r(0.06)]], dtype=torch.float32)[None]
    grid = F.affine_grid(theta, (1, 1, s, s), align_corners=False)
    coarse = (torch.rand(1, 2, 5, 5, generator=gen) * 2 - 1) * 0.03
    grid = grid + F.interpolate(coarse, size=(s, s), mode="bicubic", align_corners=False).permute(0, 2, 3, 1)
    warped = F.grid_sample(img, grid, mode="bilinear", padding_mode="border", align_corners=False)
    warped_lab = F.grid_sample(lab[None, None].float(), grid, mode="nearest", padding_mode="border", align_corners=False)
    gain = 1 + r(0.25)
    noise = torch.randn(warped.shape, generator=gen) * (3 + 6 * torch.rand(1, generator=gen).item())
    return (warped * gain + noise).clamp(0, 255), warped_lab[0, 0].long()


def supervised_loss(
    encoder: KeyEncoder,
    refine: RefineHead,
    src: torch.Tensor,
    src_lab: torch.Tensor,
    dst: torch.Tensor,
    dst_lab: torch.Tensor,
    n_classes: int,
    temperature: float,
    bias: torch.Tensor,
) -> torch.Tensor:
    """Read labels from ``src`` into ``dst`` (B, 1, S, S) through the keys, refine, compare with ``dst_lab``."""
    ks, _ = encoder(src)
    kd, fine = encoder(dst)
    b, c, h, w = ks.shape
    values = F.adaptive_avg_pool2d(F.one_hot(src_lab, n_classes).permute(0, 3, 1, 2).float().contiguous(), (h, w))
    att = torch.softmax(kd.flatten(2).transpose(1, 2) @ ks.flatten(2) / temperature + bias, -1)  # (B, N, N)
    probs = (att @ values.flatten(2).transpose(1, 2)).transpose(1, 2).contiguous().view(b, n_classes, h, w)
    logits = refine(probs, fine)
    logits = F.interpolate(logits, size=dst_lab.shape[-2:], mode="bilinear", align_corners=False)
    coarse = F.interpolate(torch.log(probs.clamp_min(1e-4)), size=dst_lab.shape[-2:], mode="bilinear", align_corners=False)
    return F.cross_entropy(logits, dst_lab) + 0.5 * F.nll_loss(coarse, dst_lab)


def train_propagation(project: Project, config: TrainConfig | None = None, log: Callable[[str], None] = print) -> Path:
    """Train on ``project`` (open for writing) and store the weights in it; returns their path."""
    project.require_writable()
    cfg = config or TrainConfig()
    torch.manual_seed(cfg.seed)
    gen = torch.Generator().manual_seed(cfg.seed)
    rng = np.random.default_rng(cfg.seed)
    n_classes = len(project.palette)
    videos = [v for v in project.videos() if v.n_frames >= cfg.clip_length * 4]
    keyed = [(v, t) for v in project.videos() for t in v.annotated_frames()]
    if not keyed:
        raise InputError("no keyframes to learn from", project.path, "annotate keyframes first")
    device = resolve_device(cfg.device)
    encoder, refine = KeyEncoder().to(device), RefineHead(n_classes).to(device)
    s = cfg.working_size
    grid = s // encoder.stride
    bias = _local_bias(grid, grid, cfg.radius).to(device)
    started = time.monotonic()
    budget = cfg.minutes * 60

    # stage 1: self-supervised correspondence on unlabeled frames
    def clip_batches():
        while True:
            clips = []
            for _ in range(cfg.clip_batch):
                v = videos[rng.integers(len(videos))]
                stride = int(rng.integers(1, 5))
                t0 = int(rng.integers(0, v.n_frames - stride * (cfg.clip_length - 1)))
                clips.append(_resize(v.frames[t0 : t0 + stride * cfg.clip_length : stride], s))
            x = torch.stack(clips).to(device)  # (B, T, 1, S, S)

            def loss(x=x):
                keys, _ = encoder(x.flatten(0, 1))
                return crw_loss(keys.view(*x.shape[:2], *keys.shape[1:]), cfg.temperature, bias, cfg.edge_dropout)

            yield len(x), loss

    encoder.train()
    stats = {}
    if videos:
        stats["crw"] = run_epoch(
            clip_batches(),
            Optimisation(torch.optim.Adam(encoder.parameters(), lr=cfg.lr), device.type),
            deadline=started + cfg.self_supervised_share * budget,
            desc="random walk",
            log=log,
        )

    # stage 2: keyframe supervision (deformed copies and pairs of keyframes)
    frames = {(v.id, t): _resize(v.frames[t : t + 1], s) for v, t in keyed}
    labels = {
        (v.id, t): F.interpolate(torch.from_numpy(np.asarray(v.annotated[t]))[None, None].float(), size=(s, s), mode="nearest")[0, 0].long() for v, t in keyed
    }

    def pair_batches():
        while True:
            src, src_lab, dst, dst_lab = [], [], [], []
            for _ in range(cfg.pair_batch):
                v, t = keyed[rng.integers(len(keyed))]
                same_video = [k for vv, k in keyed if vv.id == v.id and k != t]
                img, lab = frames[(v.id, t)], labels[(v.id, t)]
                if same_video and rng.random() < 0.3:  # a real pair: the nearest other keyframe
                    u = min(same_video, key=lambda k: abs(k - t))
                    d_img, d_lab = frames[(v.id, u)], labels[(v.id, u)]
                else:
                    d_img, d_lab = random_warp(img, lab, gen)
                src.append(img[0])
                src_lab.append(lab)
                dst.append(d_img[0])
                dst_lab.append(d_lab)
            batch = tuple(torch.stack(x).to(device) for x in (src, src_lab, dst, dst_lab))
            yield cfg.pair_batch, lambda b=batch: supervised_loss(encoder, refine, *b, n_classes, cfg.temperature, bias)

    opt = torch.optim.Adam([{"params": refine.parameters(), "lr": cfg.lr}, {"params": encoder.parameters(), "lr": cfg.encoder_lr_keyframes}])
    refine.train()
    stats["keyframes"] = run_epoch(pair_batches(), Optimisation(opt, device.type), deadline=started + budget, desc="keyframe", log=log)

    path = model_path(project)
    save_checkpoint(
        path,
        {
            "kind": "propagation",
            "classes": list(project.palette.names),
            "n_classes": n_classes,
            "encoder": {k: v.cpu() for k, v in encoder.state_dict().items()},
            "refine": {k: v.cpu() for k, v in refine.state_dict().items()},
            "architecture": {"encoder": {}, "refine": {}},
            "config": asdict(cfg),
            "provenance": {
                "tool_version": __version__,
                "project": str(project.path),
                "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
                "videos": [v.id for v in project.videos()],
                "keyframes": len(keyed),
                "crw_steps": stats["crw"].steps if "crw" in stats else 0,
                "keyframe_steps": stats["keyframes"].steps,
                "seconds": time.monotonic() - started,
                "final_losses": {k: st.recent_loss for k, st in stats.items()},
            },
        },
    )
    return path
