"""Segmentation metrics from a confusion matrix: per class, and macro with and without background."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import torch

from ..training.reports import write_csv_atomic


def confusion_matrix(pred: torch.Tensor, target: torch.Tensor, n_classes: int) -> torch.Tensor:
    """(K, K) counts, rows the true class and columns the predicted one; target pixels >= K are ignored."""
    t = target.reshape(-1).long()
    p = pred.reshape(-1).long()
    keep = (t >= 0) & (t < n_classes)
    return torch.bincount(t[keep] * n_classes + p[keep], minlength=n_classes * n_classes).reshape(n_classes, n_classes)


def metrics_table(cm: np.ndarray | torch.Tensor, names: list[str], background: int = 0) -> pd.DataFrame:
    """Per-class pixel accuracy, precision, recall, Dice and IoU, then ``macro`` and ``macro_fg`` rows
    (means over classes present in the truth or the prediction; ``macro_fg`` leaves background out).
    Pixel accuracy per class is (TP + TN) / all; the macro rows also carry overall pixel accuracy."""
    cm = np.asarray(cm, dtype=np.float64)
    total = cm.sum()
    tp = np.diag(cm)
    fp = cm.sum(0) - tp
    fn = cm.sum(1) - tp
    tn = total - tp - fp - fn
    with np.errstate(invalid="ignore", divide="ignore"):
        df = pd.DataFrame(
            {
                "pixel_accuracy": (tp + tn) / total if total else np.nan,
                "precision": tp / (tp + fp),
                "recall": tp / (tp + fn),
                "dice": 2 * tp / (2 * tp + fp + fn),
                "iou": tp / (tp + fp + fn),
                "support": cm.sum(1),
            },
            index=pd.Index(names, name="class"),
        )
    present = (cm.sum(0) + cm.sum(1)) > 0
    overall = tp.sum() / total if total else np.nan
    fg = present.copy()
    fg[background] = False
    rows = {}
    for label, sel in (("macro", present), ("macro_fg", fg)):
        row = df[sel].drop(columns="support").mean() if sel.any() else pd.Series(np.nan, index=df.columns[:-1])
        row["pixel_accuracy"] = overall if label == "macro" else (tp[fg].sum() / cm[fg].sum() if cm[fg].sum() else np.nan)
        row["support"] = cm[sel].sum()
        rows[label] = row
    return pd.concat([df, pd.DataFrame(rows).T])


def write_metrics(out: Path, part: str, cm: np.ndarray, classes: list[str]) -> pd.DataFrame:
    """``metrics_<part>.csv`` (per class, macro, macro without background) and ``confusion_<part>.csv``."""
    table = metrics_table(cm, classes)
    write_csv_atomic(table, out / f"metrics_{part}.csv", float_format="%.6g")
    write_csv_atomic(pd.DataFrame(cm, index=pd.Index(classes, name="true"), columns=classes), out / f"confusion_{part}.csv")
    return table
