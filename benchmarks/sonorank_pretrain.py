"""What self-supervised pretraining buys SonoRank on raw frames: held-out ranking on a subject it never saw.

    python benchmarks/sonorank_pretrain.py [--steps 300] [--work DIR] [--folds 0,1] [--scratch 0]

Leave-one-subject-out over the 5-subject phantom of ``sonorank_loso.py`` (same data, seed 11, 1,200
frames each, 112 px), stage 1 only, raw input with ``motion=true``, the small preset, with
``pretrain_steps`` (rank/pretrain.py: time-contrastive learning on the fold's training frames, no
labels or kinematics) before it. From scratch is the same stage 1 without pretraining: the
``sonorank-raw`` rows of ``benchmarks/results/sonorank_loso.json`` (same data, settings and seeds), and
``--scratch`` folds retrained here (their run-to-run spread). Reports per fold the held-out mean
ranking AUC, per-finger AUCs, validation AUC per epoch, and CPU minutes (pretraining apart);
Wilcoxon signed-rank on the 25 per-subject, per-finger AUC pairs against the table. Finished folds
are kept in the work folder (rerun to go on). Target (docs/sonorank.md): held-out ranking AUC >= 0.8 within 30
CPU minutes including pretraining. Results: ``benchmarks/results/sonorank_pretrain.json``.
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from scipy.stats import wilcoxon

from sonolabel.kinematics import FINGERS
from sonorank import build_dataset

RESULTS = Path(__file__).parent / "results" / "sonorank_pretrain.json"
TABLE = RESULTS.with_name("sonorank_loso.json")


def fold_result(run: Path, threads: int) -> dict:
    """One finished fold's figures from its metrics.json and log.csv."""
    metrics = json.loads((run / "metrics.json").read_text())
    log = pd.read_csv(run / "log.csv")
    rank = log[log["stage"] == "rank"]
    reached = rank.index[rank["val_mean_auc"] >= 0.8]
    return {
        "subject": metrics["subjects"]["test"][0],
        "mean_auc": metrics["test"]["rank"]["mean_auc"],
        "auc": metrics["test"]["rank"]["auc"],
        "val_auc_per_epoch": rank["val_mean_auc"].round(3).tolist(),
        "first_epoch_val_auc_0.8": int(rank.loc[reached[0], "epoch"]) if len(reached) else None,
        "cpu_minutes_pretrain": float(log.loc[log["stage"] == "pretrain", "seconds"].sum() * threads / 60),
        "cpu_minutes": float(log["seconds"].sum() * threads / 60),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--steps", type=int, default=300, help="pretraining batches (of 32 pairs)")
    ap.add_argument("--work", default="sonorank-loso-work", help="folder for the phantom, dataset and runs (kept: rerun to go on)")
    ap.add_argument("--folds", help="only these folds, e.g. 0,1 (default: all)")
    ap.add_argument("--scratch", default="", help="folds to retrain from scratch here as well, e.g. 0")
    args = ap.parse_args()

    from sonolabel.export.dataset import ExportedDataset
    from sonolabel.rank.config import PRESETS, RankConfig
    from sonolabel.rank.train import train_rank
    from sonolabel.training.config import config_from

    threads = torch.get_num_threads()
    work = Path(args.work)
    ds = build_dataset(work, 5, 1200)
    n_folds = len(ExportedDataset.open(ds).splits["folds"])
    folds = [int(f) for f in args.folds.split(",")] if args.folds else list(range(n_folds))
    scratch = [int(f) for f in args.scratch.split(",") if f]
    variants = {"scratch": (0, scratch), f"pretrain-{args.steps}": (args.steps, folds)}
    out: dict = {"variants": {}, "machine": {"cpu_threads": threads, "platform": platform.platform(), "torch": torch.__version__}}
    for name, (steps, todo) in variants.items():
        rows = []
        for k in todo:
            run = work / "pretrain-runs" / name / f"fold-{k}"
            if not (run / "metrics.json").is_file():
                sets = [f"fold={k}", "workers=1", "input=raw", "motion=true", "stage=rank", f"pretrain_steps={steps}"]
                t0 = time.perf_counter()
                train_rank(ds, run, config_from(RankConfig, PRESETS["small"], sets=sets), progress=False)
                print(f"{name} fold {k}: {(time.perf_counter() - t0) / 60:.1f} min", flush=True)
            rows.append({"fold": k, **fold_result(run, threads)})
            print(f"{name} fold {k}: held-out ranking AUC {rows[-1]['mean_auc']:.3f}", flush=True)
        if not rows:
            continue
        aucs = np.array([r["mean_auc"] for r in rows])
        out["variants"][name] = {
            "pretrain_steps": steps,
            "folds": rows,
            "mean_auc": float(aucs.mean()),
            "mean_auc_std": float(aucs.std(ddof=1)) if len(aucs) > 1 else 0.0,
            "cpu_minutes_per_fold": float(np.mean([r["cpu_minutes"] for r in rows])),
        }
        print(f"{name}: {aucs.mean():.3f} ± {out['variants'][name]['mean_auc_std']:.3f}", flush=True)
    table = {r["fold"]: r for r in json.loads(TABLE.read_text())["folds"]["sonorank-raw"]}
    pre = out["variants"][f"pretrain-{args.steps}"]["folds"]
    ta = np.array([table[r["fold"]]["mean_auc"] for r in pre])
    per_fold = {int(r["fold"]): table[r["fold"]]["mean_auc"] for r in pre}
    out["scratch_in_table"] = {"folds": per_fold, "mean_auc": float(ta.mean()), "mean_auc_std": float(ta.std(ddof=1))}
    pa = [table[r["fold"]][f"auc_{f}"] for r in pre for f in FINGERS]
    pb = [r["auc"][f] for r in pre for f in FINGERS]
    out["wilcoxon_against_table"] = {"pairs": len(pa), "p": float(wilcoxon(pb, pa).pvalue), "median_gain": float(np.median(np.subtract(pb, pa)))}
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text(json.dumps(out, indent=1))
    print(f"from scratch (table): {ta.mean():.3f} ± {ta.std(ddof=1):.3f}; {json.dumps(out['wilcoxon_against_table'])}", RESULTS)


if __name__ == "__main__":
    main()
