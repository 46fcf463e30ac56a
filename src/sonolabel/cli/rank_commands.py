"""``sonolabel train rank`` and ``sonolabel rank infer|compare``: SonoRank over exported datasets and sessions."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from ..errors import InputError
from .options import add_batch_options


def _config(args):
    from ..rank.config import PRESETS, RankConfig
    from ..training.config import config_from

    preset = PRESETS.get(args.config) if args.config else None
    cfg = config_from(RankConfig, preset, path=None if preset is not None else args.config, sets=args.set)
    for key in ("input", "stage", "baseline"):
        if getattr(args, key) is not None:
            cfg = replace(cfg, **{key: getattr(args, key)})
    cfg.check()
    return cfg


def _print_metrics(metrics: dict) -> None:
    for part in ("val", "test"):
        m = metrics.get(part) or {}
        if "rank" in m:
            aucs = ", ".join(f"{f} {v:.3f}" for f, v in m["rank"]["auc"].items())
            print(f"{part}: ranking AUC {m['rank']['mean_auc']:.3f} ({aucs})")
        if "flex" in m:
            mac = m["flex"]["macro"]
            print(
                f"{part}: flexion accuracy {mac['accuracy']:.3f}, precision {mac['precision']:.3f}, "
                f"recall {mac['recall']:.3f}, F1 {mac['f1']:.3f}, AUC {mac['auc']:.3f} (macro over fingers); "
                f"F1 {m['flex']['calibrated']['f1']:.3f} with thresholds from each session's rest period"
            )
    if "refit" in metrics:
        r = metrics["refit"]
        print(f"final model: stage 2 refit on {', '.join(r['subjects'])}, kept at epoch {r['epoch']} (validation: flex_best.pt)")


def train_rank(args) -> int:
    cfg = _config(args)
    if args.loso or args.lengths:
        from ..rank.loso import compare_methods, train_rank_loso

        folds = [int(f) for f in args.folds.split(",")] if args.folds else None
        lengths = [int(n) for n in args.lengths.split(",")] if args.lengths else [None]
        runs = {}
        for n in lengths:
            out = Path(args.out) if n is None else Path(args.out) / f"T{n}"
            table = train_rank_loso(
                args.dataset, out, cfg if n is None else replace(cfg, length=n), scheduler=args.scheduler, workers=args.workers, folds=folds
            )
            cols = [c for c in ("subject", "mean_auc", "macro_accuracy", "macro_f1") if c in table]
            print(f"{out}:\n{table[cols].to_string(index=False)}")
            runs[f"T={n}"] = out
        if len(runs) > 1:
            print(compare_methods(runs, args.out).to_string(index=False))
        print(f"per-subject tables and plots: {args.out} (loso.csv, summary.csv, loso.png)")
        return 0
    if args.scheduler:
        raise InputError("--scheduler spreads leave-one-subject-out folds; it needs --loso")
    from ..rank.train import train_rank as run

    result = run(args.dataset, args.out, cfg)
    _print_metrics(result.metrics)
    files = ("pretrain.pt", "rank_best.pt", "flex_best.pt", "best.pt", "last.pt", "log.csv", "curves.png", "metrics.json")
    print(f"run folder: {args.out} ({', '.join(n for n in files if (Path(args.out) / n).is_file())})")
    return 0


def infer(args) -> int:
    from ..rank.infer import infer_session

    out = args.out or str(Path(args.model if Path(args.model).is_dir() else Path(args.model).parent) / "infer")
    table = infer_session(args.session, args.model, out, video=args.video, rest_seconds=args.rest_seconds, device=args.device)
    counts = table["finger"][table["finger"] != ""].value_counts()
    print("frames per detection: " + ", ".join(f"{k} {v}" for k, v in counts.items()))
    print(f"wrote {out}/flexion.csv, thresholds.json, flexion.png")
    return 0


def compare(args) -> int:
    from ..rank.loso import compare_methods

    runs = {}
    for item in args.runs:
        name, sep, folder = item.partition("=")
        runs[name if sep else Path(item).name] = folder if sep else item
    print(compare_methods(runs, args.out).to_string(index=False))
    print(f"wrote {args.out}/compare.csv, compare.png")
    return 0


def add_train_parser(train) -> None:
    s = train.add_parser(
        "rank",
        help="SonoRank: pairwise ranking, then flexion classification",
        description="Train SonoRank; rerunning with the same --out resumes from last.pt. "
        "Settings: RankConfig in docs/sonorank.md; --config small is the CPU configuration.",
    )
    s.add_argument("dataset")
    s.add_argument("--out", required=True, help="run folder (or, with --loso, a folder of fold runs)")
    s.add_argument("--config", help="JSON file of settings, or a preset name (small)")
    s.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="one setting; repeatable")
    s.add_argument("--input", choices=("raw", "labels", "both"), help="frames, segmentation labels, or both (default raw)")
    s.add_argument("--stage", choices=("rank", "flex", "both"), help="default both")
    s.add_argument("--baseline", choices=("mft", "mft-rest"), help="train a baseline instead of SonoRank")
    s.add_argument("--loso", action="store_true", help="leave-one-subject-out: one run per held-out subject")
    s.add_argument("--folds", help="with --loso: only these folds (e.g. 0,3)")
    s.add_argument("--lengths", help="window-length sweep, e.g. 4,8,16: a LOSO evaluation per length, compared")
    add_batch_options(s)
    s.set_defaults(func=train_rank)


def add_parsers(sub) -> None:
    rank = sub.add_parser("rank", help="SonoRank inference and comparisons").add_subparsers(dest="rank_command", required=True, metavar="ACTION")
    s = rank.add_parser("infer", help="per-finger flexion curves over a recorded session, thresholds from its rest period")
    s.add_argument("session", help="a project (with --video when it holds several) or a recording file (raw-input models)")
    s.add_argument("--model", required=True, help="run folder or its best.pt")
    s.add_argument("--video", help="video id in the project")
    s.add_argument("--out", help="output folder (default RUN_DIR/infer)")
    s.add_argument("--rest-seconds", type=float, default=None, help="the session starts with this much rest (default 2 s)")
    s.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    s.set_defaults(func=infer)
    s = rank.add_parser("compare", help="compare LOSO folders: mean ± std and Wilcoxon signed-rank tests")
    s.add_argument("runs", nargs="+", metavar="NAME=LOSO_DIR")
    s.add_argument("--out", required=True)
    s.set_defaults(func=compare)
