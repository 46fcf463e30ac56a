"""SonoRank under leave-one-subject-out on the phantom: does segmenting the frames help on a subject never seen?

    python benchmarks/sonorank_loso.py [--subjects 5] [--frames 1200] [--work DIR] [--methods ...] [--folds 0,1]

Methods, each trained once per fold with the small configuration (``--config small``):
* ``sonorank-labels``, ``sonorank-raw``, ``sonorank-both``: SonoRank (ranking, then flexion) on label
  maps, raw frames, or both;
* ``mft-<input>`` and ``mft-rest-<input>``: the baselines (flexion only; without and with the rest
  reference) on the best SonoRank input so far (by mean held-out macro F1; labels until all three are known).

Fold *k* tests subject *k*, picks its best epochs on the preceding subject and trains on the rest.
Every finished fold leaves ``metrics.json`` in ``WORK/<method>/fold-<k>`` and its row in the results
file, and is never trained again; an interrupted fold resumes from its ``last.pt``. So the table can be
filled over several sittings, on other machines too (the results file is committed; the work folder
is not): rerun the same command. A method whose settings or defaults changed is trained again; where
only stage-2 settings changed (``STAGE2_ONLY``: stage 2's epochs, batch, refit, what counts as flexed),
its folds keep stage 1 from the work folder and train stage 2 only. Each run prints the CPU minutes spent so far and an estimate of
what is left.

Results: ``benchmarks/results/sonorank_loso.json`` (per fold, mean ± std, Wilcoxon signed-rank tests
between inputs and between methods) and ``docs/images/sonorank_loso.png`` (quoted in docs/sonorank.md).
``--subjects N`` (other than 5) or ``--set key=value`` runs another variant beside it, with its own runs (``WORK/runs-N-key_value``), results
file and plot (``sonorank_loso-N-key_value.*``); for example ``--set flex_input=embeddings --methods
sonorank-labels mft-rest-labels`` compares the two methods on what the encoders learnt.
"""

from __future__ import annotations

import argparse
import json
import platform
import shutil
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from sonorank import build_dataset

RESULTS = Path(__file__).parent / "results"
IMAGE = Path(__file__).parent.parent / "docs" / "images" / "sonorank_loso.png"
INPUTS = ("labels", "raw", "both")


def method_settings(method: str) -> list[str]:
    """RankConfig settings of a method name: sonorank-<input>, mft-<input> or mft-rest-<input>."""
    kind, _, inp = method.rpartition("-")
    frames = ["motion=true"] if inp != "labels" else []  # raw frames transfer to a new subject with their differences (docs/sonorank.md)
    if kind == "sonorank":
        warm = ["pretrain_steps=300"] if inp == "raw" else []  # raw frames rank a new subject far better from a self-supervised start
        return [f"input={inp}", *frames, *warm]
    if kind in ("mft", "mft-rest"):
        return [f"input={inp}", f"baseline={kind}", "stage=flex", *frames]
    raise SystemExit(f"unknown method {method!r}: sonorank-<input>, mft-<input> or mft-rest-<input>, with input one of {', '.join(INPUTS)}")


def method_config(method: str, extra: list[str]) -> dict:
    """Every RankConfig value a method trains with (the small preset, its settings, ``extra``), less the
    fold and the machine's: what the results file records, so that a changed default retrains the method."""
    from sonolabel.rank.config import PRESETS, RankConfig
    from sonolabel.training.config import config_dict, config_from

    cfg = config_dict(config_from(RankConfig, PRESETS["small"], sets=[*method_settings(method), *extra]))
    return {k: v for k, v in cfg.items() if k not in ("fold", "workers", "device")}


# settings that only stage 2 reads and that leave the network as it is: where only these changed, a fold
# keeps its stage 1 (rank_best.pt, pretrain.pt) and trains stage 2 again, minutes instead of hours
STAGE2_ONLY = frozenset({"flex_epochs", "flex_batch_size", "refit", "flex_fraction", "flex_min_range"})
STAGE1_LOG = "stage1_log.csv"  # in a fold that kept its stage 1: that stage's log rows, for its CPU minutes


def cpu_minutes(run: Path, threads: int) -> float:
    logs = [run / "log.csv", run / STAGE1_LOG]
    return sum(float(pd.read_csv(log)["seconds"].sum()) for log in logs if log.is_file()) * threads / 60


def trained_with(run: Path) -> dict | None:
    """The settings a fold's run folder was trained with (its last checkpoint's), or None. Where stage 2
    continued the folder's kept stage 1 (``--stage flex`` beside ``rank_best.pt``), stage 1's settings
    come from ``rank_best.pt`` and the run counts as both stages."""
    from sonolabel.checkpoint import load_checkpoint

    ckpt = next((run / n for n in ("last.pt", "best.pt") if (run / n).is_file()), None)
    if ckpt is None:
        return None
    was = load_checkpoint(ckpt, "rank")["config"]
    if (run / STAGE1_LOG).is_file() and (run / "rank_best.pt").is_file():
        ranked = load_checkpoint(run / "rank_best.pt", "rank")["config"]
        was = {**ranked, **{k: was[k] for k in STAGE2_ONLY if k in was}, "stage": ranked.get("stage")}
    return was


def set_aside_if_stale(run: Path, method: str, extra: list[str]) -> None:
    """Move a fold's run folder to ``fold-<k>.stale`` when it was trained with other settings than the
    method's now (a changed default): its metrics must not stand in the table, nor its ``last.pt`` be
    resumed, under the new settings. Where only stage-2 settings (:data:`STAGE2_ONLY`) changed, the new
    folder keeps stage 1 (``rank_best.pt``, ``pretrain.pt`` and that stage's log rows), and the fold
    trains stage 2 only, as ``--stage flex`` continues a ranking run."""
    was = trained_with(run)
    if was is None:
        return
    now = method_config(method, extra)
    changed = sorted(k for k in now if was.get(k) != now[k])
    if not changed:
        return
    aside = run.with_name(f"{run.name}.stale")
    shutil.rmtree(aside, ignore_errors=True)
    run.rename(aside)
    what = ", ".join(f"{k} {was.get(k)} -> {now[k]}" for k in changed)
    if set(changed) <= STAGE2_ONLY and (aside / "rank_best.pt").is_file():
        run.mkdir()
        for name in ("rank_best.pt", "pretrain.pt"):
            if (aside / name).is_file():
                shutil.copy2(aside / name, run / name)
        logs = pd.concat([pd.read_csv(aside / n) for n in (STAGE1_LOG, "log.csv") if (aside / n).is_file()])
        logs[logs["stage"] == "rank"].to_csv(run / STAGE1_LOG, index=False)  # pretraining's row comes back with pretrain.pt
        print(f"{run}: stage 2 was trained with other settings ({what}); stage 1 kept, stage 2 trained again ({aside.name} holds the old run)")
    else:
        print(f"{run}: trained with other settings ({what}); moved to {aside.name}, trained again")


def best_input(folds: int, done: dict) -> str:
    """The SonoRank input with the highest mean held-out macro F1 over its folds, once all are finished (labels until then)."""
    scores = {}
    for inp in INPUTS:
        f1 = [r["macro_f1"] for (m, _), r in done.items() if m == f"sonorank-{inp}"]
        if len(f1) == folds:
            scores[inp] = float(np.mean(f1))
    return max(scores, key=scores.get) if scores else "labels"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--subjects", type=int, default=5)
    ap.add_argument("--frames", type=int, default=1200)
    ap.add_argument("--work", default="sonorank-loso-work", help="folder for the phantom, dataset and runs (kept: rerun to go on)")
    ap.add_argument("--methods", nargs="*", help="default: the three SonoRank inputs, then mft and mft-rest on the best input")
    ap.add_argument("--folds", help="only these folds, e.g. 0,1 (default: all)")
    ap.add_argument("--budget", type=float, help="CPU minutes this sitting may spend: no fold starts after that (rerun to go on)")
    ap.add_argument("--set", action="append", default=[], help="extra RankConfig settings key=value (every method)")
    args = ap.parse_args()

    from sonolabel.export.dataset import ExportedDataset
    from sonolabel.rank.loso import fold_row
    from sonolabel.rank.config import PRESETS, RankConfig
    from sonolabel.rank.train import train_rank
    from sonolabel.training.config import config_from

    threads = torch.get_num_threads()
    work = Path(args.work)
    ds = build_dataset(work, args.subjects, args.frames)
    n_folds = len(ExportedDataset.open(ds).splits["folds"])
    folds = [int(f) for f in args.folds.split(",")] if args.folds else list(range(n_folds))
    methods = args.methods or [f"sonorank-{i}" for i in INPUTS] + ["mft-{best}", "mft-rest-{best}"]

    data = {"subjects": args.subjects, "frames_per_subject": args.frames, "folds": n_folds}
    settings = {"preset": "small", "extra": args.set}
    # another phantom size or other settings: their own runs, results and plot
    variant = ("" if args.subjects == 5 else f"-{args.subjects}") + "".join(f"-{s}" for s in args.set).replace("=", "_").replace("/", "_")
    runs = work / f"runs{variant}" if variant else work
    results, image = RESULTS / f"sonorank_loso{variant}.json", IMAGE.with_name(f"sonorank_loso{variant}.png")
    done = finished_rows(results, data, settings, args.set)
    started, spent, per_fold, todo = time.perf_counter(), 0.0, [], []
    for template in methods:
        method = template.format(best=best_input(n_folds, done))
        for k in folds:
            run = runs / method / f"fold-{k}"
            if (method, k) in done:  # its CPU minutes as recorded (the work folder's log does not say with how many threads)
                print(f"{method} fold {k}: in the results file, held-out flexion macro F1 {done[method, k]['macro_f1']:.3f}", flush=True)
            else:
                set_aside_if_stale(run, method, args.set)
                if not (run / "metrics.json").is_file():
                    if args.budget is not None and (time.perf_counter() - started) * threads / 60 >= args.budget:
                        todo.append((method, k))
                        continue
                    kept = ["stage=flex"] if (run / STAGE1_LOG).is_file() else []  # stage 1 kept: stage 2 continues it
                    cfg = config_from(RankConfig, PRESETS["small"], sets=[f"fold={k}", "workers=1", *method_settings(method), *args.set, *kept])
                    print(f"{method} fold {k}: training", flush=True)
                    train_rank(ds, run, cfg, progress=False)
                row = {**fold_row(json.loads((run / "metrics.json").read_text()), k), "cpu_minutes": cpu_minutes(run, threads)}
                done[method, k] = row
                save(result_file(runs, methods, n_folds, done, data, settings, threads, args.set), results, image)  # a stopped sitting keeps this fold
                print(f"{method} fold {k}: {row['cpu_minutes']:.0f} CPU min, held-out flexion macro F1 {row['macro_f1']:.3f}", flush=True)
            spent += done[method, k]["cpu_minutes"]
            per_fold.append(done[method, k]["cpu_minutes"])
    print(f"CPU minutes: {spent:.0f} in {len(per_fold)} finished folds ({threads} threads)", end="")
    print(f"; {len(todo)} folds left, about {len(todo) * np.mean(per_fold or [30]):.0f} more: rerun to go on" if todo else "; the table is complete")
    result = result_file(runs, methods, n_folds, done, data, settings, threads, args.set)
    save(result, results, image)
    print(pd.DataFrame(result["compare"]).to_string(index=False))


def finished_rows(path: Path, data: dict, settings: dict, extra: list[str]) -> dict[tuple[str, int], dict]:
    """Fold rows already in the results file, keyed by (method, fold), when it was made with the same data and
    settings and the method's configuration (:func:`method_config`) is what it was: a method whose settings
    or defaults changed is trained again, the others are kept."""
    if not path.is_file():
        return {}
    old = json.loads(path.read_text())
    if old.get("data") != data or old.get("settings") != settings:
        print(f"{path}: made with other data or settings; its folds are trained again")
        return {}
    kept = {}
    for m, rows in old["folds"].items():
        was, now = old.get("method_config", {}).get(m, {}), method_config(m, extra)
        if was != now:
            changed = ", ".join(f"{k} {was.get(k)} -> {now.get(k)}" for k in sorted(set(was) | set(now)) if was.get(k) != now.get(k))
            print(f"{path}: {m} was trained with other settings ({changed}); its folds are trained again")
            continue
        kept.update({(m, int(r["fold"])): r for r in rows})
    return kept


def names(methods: list[str], done: dict, n_folds: int) -> list[str]:
    """The method names of ``methods`` with ``{best}`` filled in (see :func:`best_input`)."""
    return list(dict.fromkeys(m.format(best=best_input(n_folds, done)) for m in methods))


def result_file(work: Path, methods: list[str], n_folds: int, done: dict, data: dict, settings: dict, threads: int, extra: list[str]) -> dict:
    """The results file's content: every finished fold, mean ± std per method, and the paired tests."""
    from sonolabel.rank.loso import compare_methods, write_loso

    tables = {}
    for m in names(methods, done, n_folds):
        rows = sorted((r for (mm, _), r in done.items() if mm == m), key=lambda r: r["fold"])
        if rows:
            (work / m).mkdir(parents=True, exist_ok=True)
            tables[m] = write_loso(work / m, rows)
    compare = compare_methods({m: work / m for m in tables}, work / "compare") if tables else pd.DataFrame()
    return {
        "machine": {"cpu_threads": threads, "platform": platform.platform(), "torch": torch.__version__},
        "data": data,
        "settings": settings,
        "cpu_minutes": {m: float(t["cpu_minutes"].sum()) for m, t in tables.items()},
        "method_config": {m: method_config(m, extra) for m in tables},
        "folds_left": [f"{m} fold {k}" for m in names(methods, done, n_folds) for k in range(n_folds) if (m, k) not in done],
        "folds": {m: t.to_dict("records") for m, t in tables.items()},
        "summary": {m: summary(t) for m, t in tables.items()},
        "compare": compare.to_dict("records"),
        "_tables": tables,
    }


def save(result: dict, path: Path, image: Path) -> None:
    """Write the results file and the plot (after every finished fold)."""
    tables = result.pop("_tables")
    path.parent.mkdir(exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(result, indent=1, default=float))
    tmp.replace(path)
    if tables:
        draw(tables, image)


def summary(table: pd.DataFrame) -> dict:
    """Mean and standard deviation over folds of every score column."""
    cols = [c for c in table.columns if c.startswith(("macro_", "mean_auc", "auc_", "f1_"))]
    return {c: {"mean": float(table[c].mean()), "std": float(table[c].std(ddof=1)) if len(table) > 1 else None} for c in cols}


def draw(tables: dict[str, pd.DataFrame], path: Path) -> None:
    """Held-out flexion macro F1 and AUC, and ranking AUC, per method: mean ± std over folds, folds as dots."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cols = [("macro_f1", "flexion macro F1"), ("calibrated_f1", "calibrated F1"), ("macro_auc", "flexion AUC"), ("mean_auc", "ranking AUC")]
    fig, ax = plt.subplots(figsize=(2 + 1.6 * len(tables), 4.0))
    width = 0.8 / len(cols)
    for j, (c, label) in enumerate(cols):
        for i, (m, t) in enumerate(tables.items()):
            if c not in t:
                continue
            x = i + (j - (len(cols) - 1) / 2) * width
            ax.bar(x, t[c].mean(), width, yerr=t[c].std(ddof=1) if len(t) > 1 else 0, capsize=3, color=f"C{j}", label=label if i == 0 else None)
            ax.plot(np.full(len(t), x), t[c], "k.", ms=3)
    ax.set_xticks(range(len(tables)), list(tables), rotation=20, ha="right")
    ax.set_ylim(0, 1), ax.set_ylabel("held-out subject (mean ± std over folds)")
    ax.legend(fontsize=8, loc="lower center", bbox_to_anchor=(0.5, 1.0), ncol=2, frameon=False)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


if __name__ == "__main__":
    main()
