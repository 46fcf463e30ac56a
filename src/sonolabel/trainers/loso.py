"""Leave-one-subject-out: one U-Net run per held-out subject, in parallel on dask workers.

Fold *k* of the dataset's ``splits.json`` tests subject *k*, chooses its best epoch on the
preceding subject and trains on the rest. The per-subject table shows which subjects the recipe
fails on (a robust outlier is flagged), which a single split hides.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import torch

from ..batch import run_tasks
from ..errors import InputError
from ..export.splits import read_splits
from .reports import write_loso_report
from .unet import UNetConfig, train_unet


def _run_fold(job: tuple[str, str, UNetConfig, int]) -> dict:
    dataset, out, cfg, threads = job
    torch.set_num_threads(threads)
    result = train_unet(dataset, out, cfg, progress=False)
    test = result.metrics["test"]
    fold = read_splits(dataset)["folds"][cfg.fold]
    return {"subject": fold["test"][0], "fold": cfg.fold, "val_subject": fold["val"][0], "best_epoch": result.best_epoch,
            "dice_fg": float(test.loc["macro_fg", "dice"]), "iou_fg": float(test.loc["macro_fg", "iou"]),
            "pixel_accuracy": float(test.loc["macro", "pixel_accuracy"]), "run": str(out)}


def run_folds(dataset: str | Path, out: str | Path, cfg, run_fold, scheduler: str | None = None,
              workers: int | None = None, folds: list[int] | None = None, label: str = "fold") -> list[dict]:
    """Run ``run_fold((dataset, out/fold-<k>, cfg with fold=k, threads))`` for every fold (or ``folds``) of the
    dataset's splits as dask tasks, each with its share of the CPU threads; returns their rows."""
    dataset, out = Path(dataset), Path(out)
    all_folds = read_splits(dataset).get("folds") or []
    if not all_folds:
        raise InputError("the dataset has no leave-one-subject-out folds (they need 3 or more subjects)", dataset / "splits.json")
    chosen = folds if folds is not None else list(range(len(all_folds)))
    n_parallel = 1 if scheduler is None and workers == 1 else min(len(chosen), workers or len(chosen))
    threads = max(1, torch.get_num_threads() // max(1, n_parallel)) if scheduler is None else torch.get_num_threads()
    jobs = [(str(dataset), str(out / f"fold-{k}"), replace(cfg, fold=k), threads) for k in chosen]
    out.mkdir(parents=True, exist_ok=True)
    return run_tasks(run_fold, jobs, scheduler=scheduler, workers=workers, label=label)


def train_loso(dataset: str | Path, out: str | Path, cfg: UNetConfig | None = None, scheduler: str | None = None,
               workers: int | None = None, folds: list[int] | None = None):
    """Train every fold (or ``folds``) into ``out/fold-<k>``; writes ``loso.csv`` and ``loso.png`` and returns the table."""
    rows = run_folds(dataset, out, cfg or UNetConfig(), _run_fold, scheduler, workers, folds, label="loso-fold")
    return write_loso_report(Path(out), rows)
