"""Train an smp U-Net on an exported dataset: the reference recipe, resumable, on one process or many (DDP).

Defaults follow the reference pipeline (ResNet34 encoder, Adam at 1e-5, batch 10, 10 epochs,
class-weighted cross-entropy with background at 0.1, best checkpoint by lowest validation loss,
subject-based split) plus the ultrasound augmentations that fought its overfitting. A run folder
holds ``best.pt``, ``last.pt`` (with the optimiser, for resuming), ``log.csv``, ``curves.png``
and, at the end, per-class metrics and the confusion matrix of the best model.
"""

from __future__ import annotations

import math
import multiprocessing
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, Subset

from .._tensors import channel_argmax
from ..errors import InputError
from ..export.dataset import SPLITS_FILE, ExportedDataset
from ..export.torch_data import SegmentationFrames
from ..training.augment import Augment
from ..checkpoint import load_checkpoint, save_checkpoint
from ..training.config import config_dict
from ..training.device import resolve_device
from ..training.distributed import World, all_sum, barrier, close_world, init_world
from ..training.loop import Optimisation, run_epoch
from ..training.reports import write_epoch_log
from .metrics import confusion_matrix, write_metrics
from .model import PaddedUNet, load_encoder_weights


@dataclass
class UNetConfig:
    encoder: str = "resnet34"
    encoder_weights: str | None = None  # none | imagenet (only from the local cache) | path to a local file
    epochs: int = 10
    batch_size: int = 10
    lr: float = 1e-5
    background_weight: float = 0.1  # cross-entropy weight of class 0; the others get 1.0
    class_weights: list[float] | None = None  # one per class; overrides background_weight
    dice_weight: float = 0.0  # add this times the soft Dice loss over foreground classes
    fold: int | None = None  # leave-one-subject-out fold of splits.json (None: its train/val split)
    augment: bool = True
    resized_crop: float = 0.5  # probability of a random resized crop
    crop_scale: list[float] = field(default_factory=lambda: [0.7, 1.0])
    hflip: float = 0.5
    gamma: list[float] | None = field(default_factory=lambda: [0.7, 1.5])
    speckle_std: float = 0.1  # multiplicative speckle noise (0: off)
    workers: int = 2  # DataLoader worker processes
    steps_per_epoch: int | None = None  # cap on training batches per epoch (quick checks)
    device: str = "auto"  # cpu | cuda | auto
    amp: bool = True  # mixed precision and channels_last, on CUDA only
    seed: int = 0


@dataclass
class RunResult:
    out: Path
    epochs_run: int
    best_epoch: int
    best_val_loss: float
    metrics: dict  # {"val": DataFrame, "test": DataFrame (folds only)}


def class_weight_tensor(cfg: UNetConfig, n_classes: int) -> torch.Tensor:
    if cfg.class_weights is not None:
        if len(cfg.class_weights) != n_classes:
            raise InputError(f"class_weights has {len(cfg.class_weights)} values, the dataset {n_classes} classes")
        return torch.tensor(cfg.class_weights, dtype=torch.float32)
    w = torch.ones(n_classes)
    w[0] = cfg.background_weight
    return w


def soft_dice_loss(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """1 - mean soft Dice over the foreground classes (class 0 is background)."""
    probs = logits.float().softmax(1)[:, 1:]
    onehot = F.one_hot(target, logits.shape[1]).permute(0, 3, 1, 2)[:, 1:].float()
    inter = (probs * onehot).sum((0, 2, 3))
    denom = probs.sum((0, 2, 3)) + onehot.sum((0, 2, 3))
    return 1 - ((2 * inter + 1) / (denom + 1)).mean()


def _augment(cfg: UNetConfig) -> Augment | None:
    if not cfg.augment:
        return None
    return Augment(
        resized_crop=cfg.resized_crop,
        crop_scale=tuple(cfg.crop_scale),
        hflip=cfg.hflip,
        gamma=tuple(cfg.gamma) if cfg.gamma else None,
        speckle_std=cfg.speckle_std,
        seed=cfg.seed,
    )


class Evaluator:
    """Class-weighted loss and confusion matrix of a model over a dataset, summed over DDP processes."""

    def __init__(self, ds: SegmentationFrames, world: World, batch: int, workers: int, weights: torch.Tensor):
        shard = Subset(ds, list(range(world.rank, len(ds), world.size)))
        self.loader = DataLoader(shard, batch_size=batch, num_workers=workers)
        self.n_classes, self.world, self.weights = len(ds.class_names), world, weights

    @torch.no_grad()
    def __call__(self, model: torch.nn.Module, device: torch.device, amp: bool) -> tuple[float, np.ndarray]:
        model.eval()
        w = self.weights.to(device)
        loss_sum = torch.zeros(2, dtype=torch.float64, device=device)
        cm = torch.zeros(self.n_classes, self.n_classes, dtype=torch.int64, device=device)
        for img, lab in self.loader:
            img, lab = img.to(device, non_blocking=True), lab.to(device, non_blocking=True)
            with torch.autocast(device.type, enabled=amp):
                logits = model(img)
            loss_sum[0] += F.cross_entropy(logits.float(), lab, weight=w, reduction="sum")
            loss_sum[1] += w[lab].sum()
            cm += confusion_matrix(channel_argmax(logits).long(), lab, self.n_classes)
        loss_sum, cm = all_sum(loss_sum, self.world), all_sum(cm, self.world)
        return float(loss_sum[0] / loss_sum[1]) if loss_sum[1] > 0 else math.nan, cm.cpu().numpy()


def _loader_workers(cfg: UNetConfig) -> int:
    # a daemonic process (a dask worker) cannot start DataLoader workers
    return 0 if multiprocessing.current_process().daemon else cfg.workers


def _resume_state(out: Path, checksum: str, classes: list[str], cfg: UNetConfig) -> dict | None:
    last = out / "last.pt"
    if not last.exists():
        return None
    ckpt = load_checkpoint(last, "unet", classes)
    if ckpt.get("dataset_sha256") != checksum:
        raise InputError("this run was trained on another dataset", out, "choose a new --out folder to start afresh")
    if ckpt["config"].get("encoder") != cfg.encoder or ckpt["config"].get("fold") != cfg.fold:
        raise InputError("this run has another encoder or fold", out, "choose a new --out folder to start afresh")
    return ckpt


def train_unet(dataset: "str | Path | ExportedDataset", out: str | Path, cfg: UNetConfig | None = None, progress: bool = True) -> RunResult:
    """Train (or resume training) in ``out``; returns where the best model is and its metrics."""
    cfg = cfg or UNetConfig()
    data, out = ExportedDataset.open(dataset), Path(out)
    dataset = data.path
    classes, checksum = data.classes, data.info["provenance"]["content_sha256"]
    subjects = data.fold(cfg.fold)
    if not subjects["train"]:
        raise InputError("no training subjects in the split", dataset / SPLITS_FILE)
    device = resolve_device(cfg.device)
    world = init_world(device.type)
    device = resolve_device(cfg.device, world)
    amp = cfg.amp and device.type == "cuda"
    torch.manual_seed(cfg.seed + world.rank)
    weights = class_weight_tensor(cfg, len(classes))
    val_subjects = subjects["val"] or subjects["train"]
    if world.main and not subjects["val"]:
        print("warning: the split has no validation subjects; the best model is chosen on training subjects")
    train_ds = SegmentationFrames(data, subjects["train"], transform=_augment(cfg))
    evaluate = Evaluator(SegmentationFrames(data, val_subjects), world, cfg.batch_size, _loader_workers(cfg), weights)

    model = PaddedUNet(cfg.encoder, len(classes))
    weights_source = load_encoder_weights(model, cfg.encoder_weights, cfg.encoder)
    state = _resume_state(out, checksum, classes, cfg)
    if state is not None:
        model.load_state_dict(state["model"])
    model.to(device)
    if amp:
        model = model.to(memory_format=torch.channels_last)
    net = torch.nn.parallel.DistributedDataParallel(model) if world.distributed else model
    optimizer = torch.optim.Adam(net.parameters(), lr=cfg.lr)
    opt = Optimisation(optimizer, device.type, torch.float16 if amp else None)
    history: list[dict] = []
    start, best = 0, {"loss": math.inf, "epoch": -1}
    if state is not None:
        optimizer.load_state_dict(state["optimizer"])
        start, history, best = int(state["epoch"]) + 1, list(state["history"]), dict(state["best"])
        if world.main:
            print(f"resuming {out} after epoch {start} of {cfg.epochs}")

    sampler = torch.utils.data.DistributedSampler(train_ds, world.size, world.rank, seed=cfg.seed) if world.distributed else None
    gen = torch.Generator().manual_seed(cfg.seed)
    loader = DataLoader(
        train_ds,
        batch_size=cfg.batch_size,
        shuffle=sampler is None,
        sampler=sampler,
        generator=gen,
        num_workers=_loader_workers(cfg),
        drop_last=len(train_ds) > cfg.batch_size * world.size,
        pin_memory=device.type == "cuda",
        persistent_workers=False,
    )
    w_dev = weights.to(device)
    meta = {
        "kind": "unet",
        "classes": classes,
        "config": config_dict(cfg),
        "dataset": str(dataset),
        "dataset_sha256": checksum,
        "size": int(data.info["size"]),
        "in_channels": 1,
        "encoder_weights": weights_source,
        "subjects": subjects,
        "world_size": world.size,
    }
    for epoch in range(start, cfg.epochs):
        t0 = time.perf_counter()
        net.train()
        if sampler is not None:
            sampler.set_epoch(epoch)
        steps = len(loader) if cfg.steps_per_epoch is None else min(len(loader), cfg.steps_per_epoch)

        def batches():
            for img, lab in loader:
                img, lab = img.to(device, non_blocking=True), lab.to(device, non_blocking=True)
                if amp:
                    img = img.to(memory_format=torch.channels_last)

                def loss(img=img, lab=lab):
                    logits = net(img)
                    value = F.cross_entropy(logits.float(), lab, weight=w_dev)
                    return value + cfg.dice_weight * soft_dice_loss(logits, lab) if cfg.dice_weight else value

                yield len(img), loss

        stats = run_epoch(batches(), opt, steps, desc=f"epoch {epoch + 1}/{cfg.epochs}", progress=progress and world.main)
        total, seen = stats.loss_sum, stats.items
        sums = all_sum(torch.tensor([total, float(seen)], dtype=torch.float64), world)
        train_loss = float(sums[0] / sums[1].clamp(min=1))
        val_loss, cm = evaluate(model, device, amp)
        tp = np.diag(cm)[1:].astype(float)
        dice_fg = float(np.nanmean(2 * tp / (cm.sum(0)[1:] + cm.sum(1)[1:]).clip(min=1)))
        row = {
            "epoch": epoch + 1,
            "train_loss": train_loss,
            "val_loss": val_loss,
            "val_dice_fg": dice_fg,
            "val_pixel_accuracy": float(tp.sum() + cm[0, 0]) / max(1, cm.sum()),
            "seconds": time.perf_counter() - t0,
            "images": int(sums[1]),
        }
        history.append(row)
        improved = val_loss < best["loss"] or best["epoch"] < 0
        if improved:
            best = {"loss": val_loss, "epoch": epoch + 1}
        if world.main:
            payload = {**meta, "model": model.state_dict(), "epoch": epoch, "history": history, "best": best}
            if improved:
                save_checkpoint(out / "best.pt", payload)
            save_checkpoint(out / "last.pt", {**payload, "optimizer": optimizer.state_dict()})
            write_epoch_log(out, history)
            if progress:
                print(
                    f"epoch {epoch + 1}/{cfg.epochs}: train loss {train_loss:.4f}, val loss {val_loss:.4f}, "
                    f"val Dice (fg) {dice_fg:.3f}{' *' if improved else ''} ({row['seconds']:.0f} s)"
                )
        barrier(world)

    metrics = {}
    best_ckpt = load_checkpoint(out / "best.pt", "unet", classes)
    model.load_state_dict(best_ckpt["model"])
    for part in ("val", "test"):
        if part == "val" or subjects.get("test"):
            ev = evaluate if part == "val" else Evaluator(SegmentationFrames(data, subjects["test"]), world, cfg.batch_size, _loader_workers(cfg), weights)
            _, cm = ev(model, device, amp)
            if world.main:
                metrics[part] = write_metrics(out, part, cm, classes)
    barrier(world)
    close_world(world)
    return RunResult(out, len(history), int(best["epoch"]), float(best["loss"]), metrics)
