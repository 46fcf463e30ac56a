"""What a training run writes next to its checkpoints: the epoch log, curves and metric tables."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd


def write_csv_atomic(df: pd.DataFrame, path: Path, **kw) -> None:
    """Write a CSV under a temporary name and rename it into place (readers never see half a file)."""
    tmp = path.with_name(f".{path.name}.tmp")
    df.to_csv(tmp, **kw)
    os.replace(tmp, path)


def save_plot(path: Path, draw) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig = draw(plt)
    tmp = path.with_name(f".{path.name}.tmp.png")
    fig.savefig(tmp, dpi=100)
    plt.close(fig)
    os.replace(tmp, path)


def write_epoch_log(out: Path, history: list[dict]) -> None:
    """``log.csv`` (one row per epoch) and ``curves.png`` (losses and validation Dice)."""
    df = pd.DataFrame(history)
    write_csv_atomic(df, out / "log.csv", index=False)

    def draw(plt):
        fig, (a, b) = plt.subplots(1, 2, figsize=(9, 3.5))
        a.plot(df["epoch"], df["train_loss"], "o-", label="train")
        a.plot(df["epoch"], df["val_loss"], "o-", label="validation")
        a.set_xlabel("epoch"), a.set_ylabel("weighted cross-entropy"), a.legend()
        b.plot(df["epoch"], df["val_dice_fg"], "o-", color="C2")
        b.set_xlabel("epoch"), b.set_ylabel("validation Dice (foreground)")
        fig.tight_layout()
        return fig

    save_plot(out / "curves.png", draw)


def write_loso_report(out: Path, rows: list[dict]) -> pd.DataFrame:
    """``loso.csv`` (one row per held-out subject, robust outlier flag) and ``loso.png``."""
    df = pd.DataFrame(rows).sort_values("subject").reset_index(drop=True)
    score = df["dice_fg"].to_numpy(float)
    med = np.nanmedian(score)
    mad = np.nanmedian(np.abs(score - med)) * 1.4826
    df["robust_z"] = (score - med) / mad if mad > 0 else 0.0
    df["outlier"] = (np.abs(df["robust_z"]) > 3) & (np.abs(score - med) > 0.05)  # MAD is tiny with few subjects
    write_csv_atomic(df, out / "loso.csv", index=False, float_format="%.6g")

    def draw(plt):
        fig, ax = plt.subplots(figsize=(max(4, 0.6 * len(df) + 2), 3.5))
        colours = ["C3" if o else "C0" for o in df["outlier"]]
        ax.bar(df["subject"], df["dice_fg"], color=colours)
        ax.axhline(np.nanmean(score), color="k", lw=1, ls="--", label=f"mean {np.nanmean(score):.3f}")
        ax.set_ylabel("held-out Dice (foreground)"), ax.set_ylim(0, 1), ax.legend()
        ax.set_title("leave-one-subject-out (red: robust outlier)")
        plt.setp(ax.get_xticklabels(), rotation=45, ha="right")
        fig.tight_layout()
        return fig

    save_plot(out / "loso.png", draw)
    return df
