"""``sonolabel train ...`` and ``sonolabel predict``: trainers and models over exported datasets and projects."""

from __future__ import annotations

import os
from pathlib import Path

from ..errors import InputError
from . import rank_commands
from .options import add_batch_options


def train_unet(args) -> int:
    from ..training.config import config_from
    from ..unet.train import UNetConfig

    cfg = config_from(UNetConfig, path=args.config, sets=args.set)
    if args.loso:
        from ..unet.loso import train_loso

        folds = [int(f) for f in args.folds.split(",")] if args.folds else None
        table = train_loso(args.dataset, args.out, cfg, scheduler=args.scheduler, workers=args.workers, folds=folds)
        print(table[["subject", "best_epoch", "dice_fg", "iou_fg", "pixel_accuracy", "outlier"]].to_string(index=False))
        print(f"per-subject table and plot: {Path(args.out) / 'loso.csv'}, {Path(args.out) / 'loso.png'}")
        return 0
    if args.scheduler:
        raise InputError("--scheduler spreads leave-one-subject-out folds; it needs --loso", hint="for several GPUs on one run use torchrun (docs/training.md)")
    from ..unet.train import train_unet as run

    result = run(args.dataset, args.out, cfg)
    if os.environ.get("RANK", "0") != "0":  # under torchrun, the first process reports
        return 0
    if result.metrics:
        val = result.metrics["val"]
        print(
            f"best epoch {result.best_epoch} (validation loss {result.best_val_loss:.4f}); validation Dice "
            f"{val.loc['macro', 'dice']:.3f} (without background {val.loc['macro_fg', 'dice']:.3f})"
        )
        print(val.round(3).to_string())
    print(f"run folder: {args.out} (best.pt, last.pt, log.csv, curves.png, metrics_val.csv, confusion_val.csv)")
    return 0


def predict(args) -> int:
    from tqdm import tqdm

    from ..store import Project
    from ..unet.predict import predict_project

    with Project.open(args.project, "a") as project:
        ids = args.videos or project.video_ids()
        total = sum(project.video(v).n_frames for v in ids)
        with tqdm(total=total, unit="frame", desc="predict") as bar:
            reports = predict_project(
                project, args.model, ids, batch=args.batch, device=args.device, progress=bar.update, scheduler=args.scheduler, workers=args.workers
            )
    for r in reports:
        print(
            f"{r.video}: {r.frames} frames in {r.seconds:.1f} s ({r.frames / max(r.seconds, 1e-9):.1f} frames/s); "
            f"mean cross-entropy {r.mean_ce:.4f}, mean foreground Dice {r.mean_dice:.3f} against the labels"
        )
    return 0


def add_parsers(sub) -> None:
    train = sub.add_parser("train", help="train models on an exported dataset").add_subparsers(dest="train_command", required=True, metavar="MODEL")
    s = train.add_parser(
        "unet",
        help="segmentation U-Net (segmentation-models-pytorch)",
        description="Train a U-Net; rerunning with the same --out resumes from last.pt. Settings: see UNetConfig in docs/training.md.",
    )
    s.add_argument("dataset")
    s.add_argument("--out", required=True, help="run folder (best.pt, last.pt, log.csv, curves.png, metrics)")
    s.add_argument("--config", help="JSON file of settings")
    s.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="one setting; repeatable")
    s.add_argument("--loso", action="store_true", help="leave-one-subject-out: one run per held-out subject")
    s.add_argument("--folds", help="with --loso: only these folds (e.g. 0,3)")
    s.add_argument("--scheduler", help="with --loso: dask.distributed scheduler address (tcp://host:port)")
    s.add_argument("--workers", type=int, help="with --loso: local dask worker processes (default: one per CPU)")
    s.set_defaults(func=train_unet)
    rank_commands.add_train_parser(train)

    s = sub.add_parser("predict", help="run a trained U-Net over every frame; store predictions and per-frame loss")
    s.add_argument("project")
    s.add_argument("videos", nargs="*", help="video ids (default: all)")
    s.add_argument("--model", required=True, help="checkpoint (RUN_DIR/best.pt)")
    s.add_argument("--batch", type=int, default=16)
    s.add_argument("--device", default="auto", choices=("cpu", "cuda", "auto"))
    add_batch_options(s)
    s.set_defaults(func=predict)
