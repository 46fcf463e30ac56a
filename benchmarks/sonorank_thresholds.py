"""What the flexion decision threshold is worth on a subject the model never saw.

    python benchmarks/sonorank_thresholds.py --work DIR [--methods mft-rest-labels mft-rest-raw] [--set key=value]

Reads the folds that ``sonorank_loso.py --work DIR`` trained (the same ``--subjects`` and ``--set``;
nothing is trained here) and scores each held-out subject's P(flexed) under several decision rules:

* ``0.5``: P(flexed) >= 0.5, what the held-out F1 of the table reports. Stage 2 weights a flexed
  window by negatives / positives (``balancing_weights``), so 0.5 sits where that weighting puts it;
* ``rest``: thresholds from the session's own rest period (``rank infer``, the table's calibrated F1);
* ``prior 0.5``: the weighting undone (the logit less log(weight)), then 0.5: the accuracy-optimal rule;
* ``validation``: per finger, the threshold that maximises F1 on the validation subject (read with the
  model that did not train on it, ``flex_best.pt``), a calibration learned on a subject held out;
* ``session range``: per finger, the middle of the logit's 5th-95th percentile range over the session,
  as the flexion labels are the middle of each finger's range;
* ``oracle``: per finger, the threshold that maximises F1 on the held-out subject's own truth: the
  most any threshold rule could give these probabilities (not a rule: it reads the answer).

Also the threshold-free per-finger ROC AUC. Results: ``benchmarks/results/sonorank_thresholds[-variant].json``.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch

from sonorank_loso import RESULTS, method_settings

TRIED = np.linspace(0.01, 0.99, 99)


def best_thresholds(p: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Per finger, the threshold of :data:`TRIED` with the highest F1 on (p, y) (W, 5)."""
    from sonolabel.rank.objectives import binary_scores

    out = []
    for i in range(p.shape[1]):
        f1 = np.array([binary_scores(p[:, i : i + 1] >= t, y[:, i : i + 1])["f1"][0] for t in TRIED])
        out.append(TRIED[int(np.nanargmax(f1))] if np.isfinite(f1).any() else 0.5)
    return np.array(out)


def logit(p: np.ndarray) -> np.ndarray:
    p = np.clip(p, 1e-6, 1 - 1e-6)
    return np.log(p / (1 - p))


def fold_probabilities(data, run_dir: Path, method: str, fold: int, extra: list[str]) -> dict:
    """P(flexed) and truth of the held-out subject (``best.pt``) and of the validation subject (``flex_best.pt``),
    the rest-period thresholds of the held-out one, and stage 2's positive weights."""
    from sonolabel.checkpoint import load_checkpoint
    from sonolabel.rank.config import PRESETS, RankConfig
    from sonolabel.rank.evaluate import calibrated_thresholds, flexion_probabilities
    from sonolabel.rank.objectives import balancing_weights
    from sonolabel.rank.train import Run
    from sonolabel.training.config import config_from

    cfg = config_from(RankConfig, PRESETS["small"], sets=[f"fold={fold}", "workers=1", *method_settings(method), *extra])
    run = Run(data, run_dir, cfg, False)
    out = {}
    for part, name, windows in (("test", "best.pt", run.test_windows), ("val", "flex_best.pt", run.val_windows)):
        run.model.load_state_dict(load_checkpoint(run_dir / name, "rank")["model"])
        p = flexion_probabilities(run.model, run.reader, windows, run.device)
        out[part] = {"p": p, "y": windows.flexed, "rest": calibrated_thresholds(p, windows)}
    train = run.train_windows.subset(np.arange(len(run.train_windows))[:: cfg.window_step])  # as stage 2 weighs them
    out["weight"] = balancing_weights(train.flexed).numpy()
    return out


def rule_scores(f: dict) -> dict[str, float]:
    """Held-out macro F1 under each rule, and the macro AUC."""
    from sonolabel.rank.objectives import binary_scores, roc_auc

    p, y = f["test"]["p"], f["test"]["y"]
    z = logit(p)
    lo, hi = np.percentile(z, 5, 0), np.percentile(z, 95, 0)
    decisions = {
        "0.5": p >= 0.5,
        "rest": p >= f["test"]["rest"],
        "prior 0.5": z - np.log(f["weight"]) >= 0,
        "validation": p >= best_thresholds(f["val"]["p"], f["val"]["y"]),
        "session range": z >= (lo + hi) / 2,
        "oracle": p >= best_thresholds(p, y),
    }
    scores = {name: float(np.nanmean(binary_scores(d, y)["f1"])) for name, d in decisions.items()}
    scores["auc"] = float(np.nanmean([roc_auc(p[:, i], y[:, i]) for i in range(p.shape[1])]))
    return scores


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--work", required=True, help="the --work folder of sonorank_loso.py")
    ap.add_argument("--subjects", type=int, default=5)
    ap.add_argument("--methods", nargs="+", default=["mft-rest-labels", "mft-rest-raw"])
    ap.add_argument("--set", action="append", default=[], help="the --set values the folds were trained with")
    args = ap.parse_args()
    from sonolabel.export.dataset import ExportedDataset

    torch.set_num_threads(2)
    work = Path(args.work)
    variant = ("" if args.subjects == 5 else f"-{args.subjects}") + "".join(f"-{s}" for s in args.set).replace("=", "_").replace("/", "_")
    runs = work / f"runs{variant}" if variant else work
    data = ExportedDataset.open(work / "ds")
    result = {"subjects": args.subjects, "settings": args.set, "methods": {}}
    for method in args.methods:
        folds = sorted(int(d.name.split("-")[1]) for d in (runs / method).glob("fold-*") if (d / "metrics.json").is_file())
        rows = [{"fold": k, **rule_scores(fold_probabilities(data, runs / method / f"fold-{k}", method, k, args.set))} for k in folds]
        names = [k for k in rows[0] if k != "fold"] if rows else []
        summary = {k: {"mean": float(np.mean([r[k] for r in rows])), "std": float(np.std([r[k] for r in rows], ddof=1))} for k in names}
        result["methods"][method] = {"folds": rows, "summary": summary}
        print(method, "  ".join(f"{k} {v['mean']:.3f} ± {v['std']:.3f}" for k, v in summary.items()), flush=True)
    path = RESULTS / f"sonorank_thresholds{variant}.json"
    path.write_text(json.dumps(result, indent=1))
    print(path)


if __name__ == "__main__":
    main()
