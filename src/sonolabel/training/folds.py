"""Leave-one-subject-out folds as dask tasks: one training run per held-out subject, for any trainer.

Fold *k* of the dataset's ``splits.json`` tests subject *k*, chooses its best epoch on the
preceding subject and trains on the rest (see :mod:`sonolabel.export.splits`).
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import torch

from ..tasks import run_tasks
from ..errors import InputError


def run_folds(
    dataset, out: str | Path, cfg, run_fold, scheduler: str | None = None, workers: int | None = None, folds: list[int] | None = None, label: str = "fold"
) -> list[dict]:
    """Run ``run_fold((dataset, out/fold-<k>, cfg with fold=k, threads))`` for every fold (or ``folds``) of an
    opened :class:`~sonolabel.export.dataset.ExportedDataset` as dask tasks, each with its share of the CPU
    threads; returns their rows."""
    all_folds = dataset.splits.get("folds") or []
    dataset, out = dataset.path, Path(out)
    if not all_folds:
        raise InputError("the dataset has no leave-one-subject-out folds (they need 3 or more subjects)", dataset / "splits.json")
    chosen = folds if folds is not None else list(range(len(all_folds)))
    n_parallel = 1 if scheduler is None and workers == 1 else min(len(chosen), workers or len(chosen))
    threads = max(1, torch.get_num_threads() // max(1, n_parallel)) if scheduler is None else torch.get_num_threads()
    jobs = [(str(dataset), str(out / f"fold-{k}"), replace(cfg, fold=k), threads) for k in chosen]
    out.mkdir(parents=True, exist_ok=True)
    return run_tasks(run_fold, jobs, scheduler=scheduler, workers=workers, label=label)
