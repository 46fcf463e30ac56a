"""Run a trained U-Net over every frame of a project's videos: predictions and per-frame disagreement.

Frames stream from the store in batches (the next batch is read while the model runs on this
one). For each frame the project keeps the prediction (``labels/predicted``, at the video's
size), the model's own uncertainty (``table/model_uncertainty``: mean per-pixel entropy of its class
probabilities over log K, 0 = sure everywhere, 1 = no idea), and, where the frame has labels, how
far the prediction is from them at the model's training size: class-weighted cross-entropy
(``table/model_ce``), mean foreground Dice (``table/model_dice``), Dice per class
(``table/model_dice_class``) and, per class, how far its labelled boundary lies from where the
model confidently puts it (``table/model_shift``, px at the video's size). The drift flags read these.
"""

from __future__ import annotations

import hashlib
import time
import warnings
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F

from .._tensors import channel_argmax
from ..boundaries import outline
from ..tasks import map_videos
from ..export.writer import resize_images, resize_labels
from ..store import Project, Video
from ..store.chunks import FrameReader, FrameWriter
from ..store.layout import NO_LABEL, PREDICTION_STATE
from ..checkpoint import load_checkpoint
from ..training.config import config_from
from ..training.device import resolve_device
from .model import PaddedUNet
from .train import UNetConfig, class_weight_tensor


@dataclass
class PredictionReport:
    video: str
    frames: int
    seconds: float
    mean_ce: float
    mean_dice: float


def load_unet(path: str | Path, classes: list[str] | None = None) -> tuple[PaddedUNet, dict]:
    """The model of a U-Net checkpoint; with ``classes``, refused unless trained for exactly those."""
    ckpt = load_checkpoint(path, "unet", classes)
    model = PaddedUNet(ckpt["config"]["encoder"], len(ckpt["classes"]))
    model.load_state_dict(ckpt["model"])
    return model.eval(), ckpt


def frame_scores(logits: torch.Tensor, labels: torch.Tensor, weights: torch.Tensor) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per frame: weighted cross-entropy, mean foreground Dice, and Dice per class (NaN where a class is in neither)."""
    k = logits.shape[1]
    ce = F.cross_entropy(logits, labels, weight=weights, reduction="none").flatten(1).sum(1) / weights[labels].flatten(1).sum(1)
    pred = channel_argmax(logits).long()
    p = F.one_hot(pred, k).flatten(1, 2).float()
    g = F.one_hot(labels, k).flatten(1, 2).float()
    inter, size = (p * g).sum(1), p.sum(1) + g.sum(1)
    dice = torch.where(size > 0, 2 * inter / size.clamp(min=1), torch.full_like(size, float("nan")))
    dice = dice.numpy()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # frames with no foreground class: NaN
        return ce.numpy(), np.nanmean(dice[:, 1:], 1), dice


CONFIDENT = 0.9  # a pixel counts against the labels only where the model gives its class at least this probability


def confident_shift(logits: torch.Tensor, labels: torch.Tensor, scale: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    """Per frame, the model's uncertainty (mean per-pixel entropy over log K), and per class the boundary
    shift (px, times ``scale``) between the labels and the model's confident prediction: pixels where the
    model gives another class than the labels with probability >= :data:`CONFIDENT`, over the class's
    outline length (a boundary moved by *d* pixels along its whole outline gives *d*). Pixels the model
    is unsure of do not count, so a class one structure off shows up while the model's own blur does
    not. Returns (B,) and (B, K), NaN for a class in neither map."""
    k = logits.shape[1]
    prob = torch.softmax(logits.float(), 1)
    entropy = -(prob * torch.log(prob.clamp_min(1e-8))).sum(1).flatten(1).mean(1) / np.log(k)
    top, pred = prob.max(1)
    wrong = (pred != labels) & (top >= CONFIDENT)
    lab = F.one_hot(labels, k).permute(0, 3, 1, 2).bool()
    prd = F.one_hot(pred, k).permute(0, 3, 1, 2).bool()
    miss = ((lab | prd) & wrong[:, None]).flatten(2).sum(2).float()
    edges = 0.5 * ((lab & outline(labels)[:, None]).flatten(2).sum(2) + (prd & outline(pred)[:, None]).flatten(2).sum(2)).float()
    present = (lab | prd).flatten(2).any(2)
    shift = torch.where(present, miss / edges.clamp_min(1.0) * scale, torch.full_like(miss, float("nan")))
    return entropy.numpy(), shift.numpy()


@torch.no_grad()
def predict_video(
    video: Video, model: PaddedUNet, ckpt: dict, batch: int = 16, device: str = "auto", progress: Callable[[int], None] | None = None
) -> PredictionReport:
    """Predict every frame of ``video`` and store the predictions and per-frame scores."""
    video.project.require_writable()
    dev = resolve_device(device)
    model.to(dev)
    size, k = int(ckpt["size"]), len(ckpt["classes"])
    cfg = config_from(UNetConfig, ckpt["config"])
    weights = class_weight_tensor(cfg, k)
    readers = [FrameReader(a) for a in (video.frames, video.annotated, video.propagated)]
    has_labels = video.sources() != 0
    writer = FrameWriter(video.predicted)
    n, t0 = video.n_frames, time.perf_counter()

    def read(start: int):
        rows = np.arange(start, min(n, start + batch))
        img = readers[0].read_many(rows)
        ann, prop = readers[1].read_many(rows), readers[2].read_many(rows)
        return rows, img, np.where(ann != NO_LABEL, ann, prop)

    ce_all, dice_all = [], []
    with ThreadPoolExecutor(max_workers=1) as pool:
        pending = pool.submit(read, 0)
        for start in range(0, n, batch):
            rows, img, lab = pending.result()
            if start + batch < n:
                pending = pool.submit(read, start + batch)
            x = torch.from_numpy(resize_images(img, size)).float().div_(255.0)[:, None].to(dev)
            logits = model(x).float()
            full = F.interpolate(logits, size=(video.height, video.width), mode="bilinear", align_corners=False)
            writer.write_many(int(rows[0]), channel_argmax(full).cpu().numpy())
            target = torch.from_numpy(resize_labels(lab, size, k).astype(np.int64))
            ce, dice, per_class = frame_scores(logits.cpu(), target.clamp(max=k - 1), weights)
            uncertainty, shift = confident_shift(logits.cpu(), target.clamp(max=k - 1), video.width / size)
            mask = has_labels[rows]
            ce, dice, per_class = np.where(mask, ce, np.nan), np.where(mask, dice, np.nan), np.where(mask[:, None], per_class, np.nan)
            shift = np.where(mask[:, None], shift, np.nan)
            video.write_column("model_ce", int(rows[0]), ce.astype(np.float32))
            video.write_column("model_dice", int(rows[0]), dice.astype(np.float32))
            video.write_column("model_dice_class", int(rows[0]), per_class.astype(np.float32))
            video.write_column("model_shift", int(rows[0]), shift.astype(np.float32))
            video.write_column("model_uncertainty", int(rows[0]), uncertainty.astype(np.float32))
            ce_all.append(ce)
            dice_all.append(dice)
            if progress is not None:
                progress(len(rows))
    video.set_state(
        PREDICTION_STATE,
        {
            "model": ckpt.get("path", ""),
            "model_sha256": ckpt.get("sha256", ""),
            "classes": list(ckpt["classes"]),
            "size": size,
            "at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        },
    )
    ce_cat, dice_cat = np.concatenate(ce_all), np.concatenate(dice_all)
    return PredictionReport(
        video.id,
        n,
        time.perf_counter() - t0,
        float(np.nanmean(ce_cat)) if np.isfinite(ce_cat).any() else float("nan"),
        float(np.nanmean(dice_cat)) if np.isfinite(dice_cat).any() else float("nan"),
    )


def _load(model_path: str | Path, classes: list[str]) -> tuple[PaddedUNet, dict]:
    model, ckpt = load_unet(model_path, classes)
    ckpt["path"] = str(Path(model_path).resolve())
    ckpt["sha256"] = hashlib.sha256(Path(model_path).read_bytes()).hexdigest()
    return model, ckpt


def _predict_one(video: Video, model_path: str, batch: int, device: str) -> PredictionReport:
    model, ckpt = _load(model_path, list(video.project.palette.names))
    return predict_video(video, model, ckpt, batch, device)


def predict_project(
    project: Project,
    model_path: str | Path,
    videos: list[str] | None = None,
    batch: int = 16,
    device: str = "auto",
    progress: Callable[[int], None] | None = None,
    scheduler: str | None = None,
    workers: int | None = 1,
) -> list[PredictionReport]:
    """Predict the given videos (default: all) with the checkpoint at ``model_path``; ``workers`` > 1 or a
    ``scheduler`` address spreads the videos over dask workers (each task loads the model)."""
    model, ckpt = _load(model_path, list(project.palette.names))  # a wrong checkpoint is refused here, before any task
    ids = videos or project.video_ids()
    if scheduler is None and (workers or 1) <= 1:
        return [predict_video(project.video(v), model, ckpt, batch, device, progress) for v in ids]
    return map_videos(project, _predict_one, ids, str(model_path), batch, device, scheduler=scheduler, workers=workers, label="predict")
