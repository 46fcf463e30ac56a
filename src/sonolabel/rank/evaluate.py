"""Scoring a SonoRank model on held-out windows: ranking AUC on informative pairs, flexion scores.

Windows are encoded once each; ranking logits for any number of pairs then cost only the heads,
so thousands of evaluation pairs are cheap.

Flexion is scored twice: at P(flexed) >= 0.5, and calibrated the way ``rank infer`` decides on a
new session, with per-finger thresholds from the session's own rest period at its start
(:func:`rest_thresholds`).
"""

from __future__ import annotations

import numpy as np
import torch

from ..errors import InputError
from ..store.layout import FINGERS
from .data import Windows, WindowReader, sample_eval_pairs
from .model import SonoRank
from .objectives import binary_scores, flexion_loss, pair_targets, ranking_auc, ranking_loss, roc_auc

REST_SECONDS = 2.0  # the rest period at the start of a session that calibrates its thresholds


@torch.no_grad()
def embed_windows(model: SonoRank, reader: WindowReader, rows: np.ndarray, device: torch.device, batch: int = 16) -> torch.Tensor:
    """Sequence embeddings (W, embed) of windows given as dataset rows (W, T)."""
    model.eval()
    out = []
    for i in range(0, len(rows), batch):
        x = torch.stack([reader.read(r, augment=False) for r in rows[i : i + batch]]).to(device)
        out.append(model.encode(x).float())
    return torch.cat(out) if out else torch.zeros(0, model.cfg.embed, device=device)


@torch.no_grad()
def evaluate_ranking(
    model: SonoRank, reader: WindowReader, windows: Windows, n_pairs: int, device: torch.device, informative_deg: float = 3.0, tie_weight: float = 0.5
) -> dict:
    """Ranking loss and per-finger AUC on a fixed sample of within-video pairs."""
    pairs = sample_eval_pairs(windows, n_pairs)
    used = np.unique(pairs)
    z = torch.zeros(len(windows), model.cfg.embed, device=device)
    z[torch.from_numpy(used).to(device)] = embed_windows(model, reader, windows.rows[used], device)
    logits = model.rank(z[pairs[:, 0]], z[pairs[:, 1]]).float()
    travel = torch.from_numpy(windows.travel).to(device)
    y, m = pair_targets(travel[pairs[:, 0]], travel[pairs[:, 1]], informative_deg)
    auc = ranking_auc(logits.cpu().numpy(), y.cpu().numpy(), m.cpu().numpy())
    return {
        "loss": float(ranking_loss(logits, y, m, tie_weight)),
        "auc": dict(zip(FINGERS, auc.tolist())),
        "mean_auc": float(np.nanmean(auc)),
        "pairs": int(len(pairs)),
        "informative": dict(zip(FINGERS, m.sum(0).int().tolist())),
    }


def _rest_frames(reader: WindowReader, windows: Windows, device: torch.device) -> torch.Tensor:
    return torch.stack([reader.read(np.array([r]), augment=False) for r in windows.rest_rows]).to(device)


@torch.no_grad()
def window_features(model: SonoRank, reader: WindowReader, windows: Windows, device: torch.device, batch: int = 32) -> torch.Tensor | None:
    """What the flexion classifier reads besides embeddings, for every window (W, F): where each class
    changed or the image moved against its video's rest frame (:meth:`SonoRank.area_change`), standardised
    per video when the model says so (:meth:`SonoRank.standardise`). None when it reads embeddings only.
    The features do not depend on the weights, so training computes them once."""
    if model.area_norm is None:
        return None
    rest = _rest_frames(reader, windows, device)
    out = []
    for i in range(0, len(windows), batch):
        video = torch.from_numpy(windows.video[i : i + batch]).to(device)
        x = torch.stack([reader.read(r, augment=False) for r in windows.rows[i : i + batch]]).to(device)
        out.append(model.area_change(x, rest[video]).float())
    feats = torch.cat(out) if out else torch.zeros(0, model.area_norm.num_features, device=device)
    return model.standardise(feats, torch.from_numpy(windows.video))


@torch.no_grad()
def flexion_probabilities(
    model: SonoRank, reader: WindowReader, windows: Windows, device: torch.device, batch: int = 16, features: torch.Tensor | None = None
) -> np.ndarray:
    """P(flexed) per window and finger (W, 5), against each video's rest reference; ``features``: the
    windows' :func:`window_features` when the caller keeps them (they do not change with the weights)."""
    model.eval()
    feats = features if features is not None else window_features(model, reader, windows, device)
    zr = model.encode_rest(_rest_frames(reader, windows, device)).float() if model.cfg.rest and model.uses_embeddings else None
    out = []
    for i in range(0, len(windows), batch):
        video = torch.from_numpy(windows.video[i : i + batch]).to(device)
        zq = None
        if model.uses_embeddings:
            zq = model.encode(torch.stack([reader.read(r, augment=False) for r in windows.rows[i : i + batch]]).to(device)).float()
        logits = model.classify(zq, zr[video] if zr is not None else None, feats[i : i + batch] if feats is not None else None)
        out.append(torch.sigmoid(logits.float()).cpu())
    return torch.cat(out).numpy() if out else np.zeros((0, len(FINGERS)), np.float32)


def rest_thresholds(rest_probs: np.ndarray, margin: float = 0.05) -> np.ndarray:
    """Per-finger thresholds: the highest P(flexed) (rows, 5) of the rest period plus ``margin``, within
    [0.5, 0.99]; rows before the first full window (NaN) are skipped."""
    seen = rest_probs[~np.isnan(rest_probs).any(1)]
    if len(seen) == 0:
        raise InputError("the rest period ends before the first full window", hint="lengthen --rest-seconds (it must cover more than one window)")
    return np.clip(seen.max(0) + margin, 0.5, 0.99)


def calibrated_thresholds(probs: np.ndarray, windows: Windows, rest_seconds: float = REST_SECONDS) -> np.ndarray:
    """(W, 5) thresholds: each video's :func:`rest_thresholds` over its windows that end within
    ``rest_seconds`` of its start; 0.5 for a video with no such window (or no clock)."""
    out = np.full(probs.shape, 0.5)
    for v in np.unique(windows.video):
        mine = windows.video == v
        rest = mine & (windows.seconds < rest_seconds)
        if rest.any():
            out[mine] = rest_thresholds(probs[rest])
    return out


def evaluate_flexion(
    model: SonoRank, reader: WindowReader, windows: Windows, device: torch.device, threshold: float = 0.5, features: torch.Tensor | None = None
) -> dict:
    """BCE, and accuracy, precision, recall and F1 per finger and macro, of flexion at ``threshold``; the same
    scores calibrated (``calibrated``: thresholds from each session's rest period, as ``rank infer``); and the
    threshold-free ROC AUC of P(flexed) per finger (how well the windows are ordered, whatever the calibration)."""
    p = flexion_probabilities(model, reader, windows, device, features=features)
    truth = windows.flexed
    logits = torch.logit(torch.from_numpy(p).clamp(1e-6, 1 - 1e-6))
    scores = binary_scores(p >= threshold, truth)
    scores["auc"] = np.array([roc_auc(p[:, i], truth[:, i]) for i in range(len(FINGERS))])
    calibrated = binary_scores(p >= calibrated_thresholds(p, windows), truth)
    per_finger = {f: {k: float(v[i]) for k, v in scores.items()} | {"calibrated_f1": float(calibrated["f1"][i])} for i, f in enumerate(FINGERS)}
    macro = {k: float(np.nanmean(v)) for k, v in scores.items()}
    return {
        "loss": float(flexion_loss(logits, torch.from_numpy(truth))),
        "fingers": per_finger,
        "macro": macro,
        "calibrated": {k: float(np.nanmean(v)) for k, v in calibrated.items()},
        "windows": int(len(truth)),
        "positives": dict(zip(FINGERS, truth.sum(0).tolist())),
    }
