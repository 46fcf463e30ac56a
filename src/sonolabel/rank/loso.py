"""Leave-one-subject-out evaluation of SonoRank and its baselines, and paired comparisons between methods.

Fold *k* of the dataset's ``splits.json`` tests subject *k*, picks its best epochs on the
preceding subject and trains on the others. ``loso.csv`` holds one row per held-out subject
(ranking AUC per finger, flexion accuracy, precision, recall and F1 per finger and macro);
``summary.csv`` the mean and standard deviation over folds. Methods (SonoRank, MFT, MFT+Rest, or
window lengths) are compared by a Wilcoxon signed-rank test on per-subject, per-finger F1.
"""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from ..errors import InputError
from ..export.dataset import ExportedDataset
from ..store.layout import FINGERS
from ..training.folds import run_folds
from ..training.reports import save_plot, write_csv_atomic
from .config import RankConfig
from .train import train_rank

SCORES = ("mean_auc", "macro_f1", "calibrated_f1")  # per-fold scores summarised and compared across methods


def fold_row(metrics: dict, fold: int) -> dict:
    test = metrics["test"]
    row: dict = {"subject": metrics["subjects"]["test"][0], "fold": fold, "val_subject": metrics["subjects"]["val"][0]}
    if "rank" in test:
        row["mean_auc"] = test["rank"]["mean_auc"]
        row.update({f"auc_{f}": v for f, v in test["rank"]["auc"].items()})
    if "flex" in test:
        row.update({f"macro_{k}": v for k, v in test["flex"]["macro"].items()})
        row.update({f"f1_{f}": v["f1"] for f, v in test["flex"]["fingers"].items()})
        if "calibrated" in test["flex"]:  # metrics written before calibration was scored lack it
            row["calibrated_f1"] = test["flex"]["calibrated"]["f1"]
    return row


def _run_fold(job: tuple[str, str, RankConfig, int]) -> dict:
    dataset, out, cfg, threads = job
    torch.set_num_threads(threads)
    return fold_row(train_rank(dataset, out, cfg, progress=False).metrics, cfg.fold)


def train_rank_loso(
    dataset: str | Path,
    out: str | Path,
    cfg: RankConfig | None = None,
    scheduler: str | None = None,
    workers: int | None = None,
    folds: list[int] | None = None,
) -> pd.DataFrame:
    """Train every fold (or ``folds``) into ``out/fold-<k>``; writes ``loso.csv``, ``summary.csv`` and ``loso.png``."""
    rows = run_folds(ExportedDataset.open(dataset), out, cfg or RankConfig(), _run_fold, scheduler, workers, folds, label="rank-fold")
    return write_loso(Path(out), rows)


def write_loso(out: Path, rows: list[dict]) -> pd.DataFrame:
    df = pd.DataFrame(rows).sort_values("subject").reset_index(drop=True)
    write_csv_atomic(df, out / "loso.csv", index=False, float_format="%.6g")
    numeric = df.drop(columns=["subject", "fold", "val_subject"])
    write_csv_atomic(pd.DataFrame({"mean": numeric.mean(), "std": numeric.std(ddof=1)}), out / "summary.csv", float_format="%.6g")

    def draw(plt):
        scores = [c for c in SCORES if c in df]
        fig, ax = plt.subplots(figsize=(max(4, 0.8 * len(df) + 2), 3.5))
        x = np.arange(len(df))
        for i, c in enumerate(scores):
            w = 0.8 / len(scores)
            ax.bar(x + (i - (len(scores) - 1) / 2) * w, df[c], w, label=f"{c} (mean {df[c].mean():.3f})")
        ax.set_xticks(x, df["subject"], rotation=45, ha="right")
        ax.set_ylim(0, 1), ax.set_ylabel("held-out subject"), ax.legend(fontsize=8)
        fig.tight_layout()
        return fig

    save_plot(out / "loso.png", draw)
    return df


def compare_methods(runs: dict[str, str | Path], out: str | Path) -> pd.DataFrame:
    """Paired comparison of methods, each a LOSO folder (its ``loso.csv``): mean ± std of macro F1 and
    ranking AUC, and a Wilcoxon signed-rank test for every pair of methods on per-subject, per-finger F1.
    Writes ``compare.csv`` and ``compare.png`` into ``out``."""
    from scipy.stats import wilcoxon

    out = Path(out)
    tables = {}
    for name, folder in runs.items():
        path = Path(folder) / "loso.csv"
        if not path.is_file():
            raise InputError("no loso.csv here", folder, "run `sonolabel train rank DATASET --loso --out FOLDER` first")
        tables[name] = pd.read_csv(path).set_index("subject")
    rows = []
    for name, t in tables.items():
        rows.append({"method": name, "subjects": len(t), **{f"{c}_{s}": getattr(t[c], s)() for c in SCORES if c in t for s in ("mean", "std")}})
    f1_cols = [f"f1_{f}" for f in FINGERS]
    for a, b in itertools.combinations(tables, 2):
        common = tables[a].index.intersection(tables[b].index)
        if not set(f1_cols) <= set(tables[a]) or not set(f1_cols) <= set(tables[b]) or common.empty:
            continue
        x = tables[a].loc[common, f1_cols].to_numpy().ravel()
        y = tables[b].loc[common, f1_cols].to_numpy().ravel()
        p = 1.0 if np.allclose(x, y) else float(wilcoxon(x, y).pvalue)
        rows.append({"method": f"{a} vs {b}", "subjects": len(common), "f1_difference_mean": float(np.mean(x - y)), "wilcoxon_p": p})
    df = pd.DataFrame(rows)
    out.mkdir(parents=True, exist_ok=True)
    write_csv_atomic(df, out / "compare.csv", index=False, float_format="%.6g")

    def draw(plt):
        fig, ax = plt.subplots(figsize=(max(4, 1.3 * len(tables) + 2), 3.5))
        names = list(tables)
        means = [tables[n]["macro_f1"].mean() if "macro_f1" in tables[n] else np.nan for n in names]
        stds = [tables[n]["macro_f1"].std(ddof=1) if "macro_f1" in tables[n] else 0 for n in names]
        ax.bar(names, means, yerr=stds, capsize=4, color="C0")
        ax.set_ylim(0, 1), ax.set_ylabel("held-out macro F1 (mean ± std over subjects)")
        fig.tight_layout()
        return fig

    save_plot(out / "compare.png", draw)
    return df
