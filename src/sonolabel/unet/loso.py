"""Leave-one-subject-out: one U-Net run per held-out subject, in parallel on dask workers.

Fold *k* of the dataset's ``splits.json`` tests subject *k*, chooses its best epoch on the
preceding subject and trains on the rest. The per-subject table shows which subjects the recipe
fails on (a robust outlier is flagged), which a single split hides.
"""

from __future__ import annotations

from pathlib import Path

import torch

from ..export.dataset import ExportedDataset
from ..training.folds import run_folds
from ..training.reports import write_loso_report
from .train import UNetConfig, train_unet


def _run_fold(job: tuple[str, str, UNetConfig, int]) -> dict:
    dataset, out, cfg, threads = job
    torch.set_num_threads(threads)
    result = train_unet(dataset, out, cfg, progress=False)
    test = result.metrics["test"]
    fold = ExportedDataset.open(dataset).fold(cfg.fold)
    return {
        "subject": fold["test"][0],
        "fold": cfg.fold,
        "val_subject": fold["val"][0],
        "best_epoch": result.best_epoch,
        "dice_fg": float(test.loc["macro_fg", "dice"]),
        "iou_fg": float(test.loc["macro_fg", "iou"]),
        "pixel_accuracy": float(test.loc["macro", "pixel_accuracy"]),
        "run": str(out),
    }


def train_loso(
    dataset: str | Path,
    out: str | Path,
    cfg: UNetConfig | None = None,
    scheduler: str | None = None,
    workers: int | None = None,
    folds: list[int] | None = None,
):
    """Train every fold (or ``folds``) into ``out/fold-<k>``; writes ``loso.csv`` and ``loso.png`` and returns the table."""
    rows = run_folds(ExportedDataset.open(dataset), out, cfg or UNetConfig(), _run_fold, scheduler, workers, folds, label="loso-fold")
    return write_loso_report(Path(out), rows)
