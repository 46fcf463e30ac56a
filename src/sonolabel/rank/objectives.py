"""What SonoRank learns and how it is scored: pair labels, the ranking and flexion losses, AUC and F1.

Stage 1 ranks two windows A and B of one trial, finger by finger: with ``delta = |theta_T - theta_1|``
(the flexion a finger travelled across the window), the label is ``y = 1[delta_A > delta_B]``
and the pair is *informative* for that finger when ``|delta_A - delta_B| >= 3 deg``. The loss is
the mean over fingers and pairs of ``m * BCE(logit, y) + lambda * (1 - m) * logit^2``: decide the
informative pairs, stay undecided (logit 0) on the others.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from scipy.stats import rankdata


def window_travel(theta: torch.Tensor | np.ndarray):
    """``delta = |theta_T - theta_1|`` per finger for windows of flexion angles (..., T, 5) -> (..., 5)."""
    return abs(theta[..., -1, :] - theta[..., 0, :])


def pair_targets(delta_a: torch.Tensor, delta_b: torch.Tensor, informative_deg: float = 3.0) -> tuple[torch.Tensor, torch.Tensor]:
    """Labels ``y = 1[delta_A > delta_B]`` and informative masks ``m = 1[|delta_A - delta_B| >= informative_deg]``."""
    y = (delta_a > delta_b).float()
    m = ((delta_a - delta_b).abs() >= informative_deg).float()
    return y, m


def ranking_loss(logits: torch.Tensor, y: torch.Tensor, m: torch.Tensor, tie_weight: float = 0.5) -> torch.Tensor:
    """Mean over pairs and fingers of ``m * BCE(logit, y) + tie_weight * (1 - m) * logit^2``."""
    bce = F.binary_cross_entropy_with_logits(logits, y, reduction="none")
    return (m * bce + tie_weight * (1 - m) * logits.pow(2)).mean()


def flexion_loss(logits: torch.Tensor, labels: torch.Tensor, pos_weight: torch.Tensor | None = None) -> torch.Tensor:
    """Binary cross-entropy of the five flexion logits against the window labels (positives weighted by ``pos_weight``)."""
    return F.binary_cross_entropy_with_logits(logits, labels.float(), pos_weight=pos_weight)


def balancing_weights(labels: np.ndarray, cap: float = 20.0) -> torch.Tensor:
    """Per-finger weight of a flexed window, negatives / positives (at most ``cap``; 1 without positives):
    a finger is flexed in a small share of windows, and unweighted BCE learns to say "never"."""
    pos = np.asarray(labels, float).sum(0)
    neg = len(labels) - pos
    return torch.tensor(np.where(pos > 0, np.minimum(neg / np.maximum(pos, 1), cap), 1.0), dtype=torch.float32)


def window_labels(frame_labels: np.ndarray) -> np.ndarray:
    """Majority vote over a window's frames: (..., T, 5) 0/1 -> (..., 5) 0/1 (a tie counts as flexed)."""
    t = frame_labels.shape[-2]
    return (2 * frame_labels.sum(-2) >= t).astype(np.int8)


def roc_auc(scores: np.ndarray, labels: np.ndarray) -> float:
    """Area under the ROC curve (the Mann-Whitney statistic, ties counted half); NaN without both classes."""
    scores, labels = np.asarray(scores, float).ravel(), np.asarray(labels).ravel().astype(bool)
    n1, n0 = int(labels.sum()), int((~labels).sum())
    if n1 == 0 or n0 == 0:
        return float("nan")
    r = rankdata(scores)
    return float((r[labels].sum() - n1 * (n1 + 1) / 2) / (n1 * n0))


def ranking_auc(logits: np.ndarray, y: np.ndarray, m: np.ndarray) -> np.ndarray:
    """Per-finger AUC over the pairs informative for that finger: (P, 5) each -> (5,)."""
    return np.array([roc_auc(logits[m[:, f] > 0, f], y[m[:, f] > 0, f]) for f in range(logits.shape[1])])


def binary_scores(pred: np.ndarray, truth: np.ndarray) -> dict[str, np.ndarray]:
    """Accuracy, precision, recall and F1 per column of (N, 5) 0/1 arrays (0 where undefined, as is usual for F1)."""
    pred, truth = np.asarray(pred).astype(bool), np.asarray(truth).astype(bool)
    tp = (pred & truth).sum(0).astype(float)
    fp = (pred & ~truth).sum(0).astype(float)
    fn = (~pred & truth).sum(0).astype(float)
    n = float(len(pred))
    with np.errstate(invalid="ignore", divide="ignore"):
        precision = np.where(tp + fp > 0, tp / (tp + fp), 0.0)
        recall = np.where(tp + fn > 0, tp / (tp + fn), 0.0)
        f1 = np.where(2 * tp + fp + fn > 0, 2 * tp / (2 * tp + fp + fn), 0.0)
    accuracy = (pred == truth).sum(0) / n if n else np.full(pred.shape[1], np.nan)
    return {"accuracy": accuracy, "precision": precision, "recall": recall, "f1": f1}
