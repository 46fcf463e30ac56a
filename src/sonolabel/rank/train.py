"""Train SonoRank on an exported dataset: stage 1 ranks pairs of windows, stage 2 classifies flexion.

A run folder holds ``pretrain.pt`` (with ``pretrain_steps``: the self-supervised frame encoder
stage 1 starts from), ``rank_best.pt`` (stage 1, highest validation ranking AUC), ``flex_best.pt``
(stage 2's epoch with the highest calibrated F1 on the validation subjects), ``best.pt`` (the final
model: with ``refit``, stage 2 trained again on the training and validation subjects together and
stopped at that epoch; else ``flex_best.pt``, or stage 1's best when only ranking was trained),
``last.pt`` (everything needed to resume, optimiser and schedule included), ``log.csv`` /
``curves.png`` and ``metrics.json`` (ranking AUC and flexion scores on the validation subjects, read
with the models they did not train, and, for a fold, on the test subject).
Rerunning the same command resumes where ``last.pt`` left off.
"""

from __future__ import annotations

import json
import math
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

from ..errors import InputError
from ..training.augment import Augment
from ..export.dataset import ExportedDataset
from ..checkpoint import load_checkpoint, save_checkpoint
from ..training.config import config_dict
from ..training.reports import save_plot, write_csv_atomic
from ..training.device import resolve_device
from ..training.loop import Optimisation, run_epoch
from .data import FlexWindows, RankGroups, WindowReader, batch_loader, build_windows, group_pairs
from .evaluate import evaluate_flexion, evaluate_ranking, window_features
from .config import RankConfig
from .model import ArchConfig, SonoRank, count_parameters, parameter_groups
from .pretrain import pretrain_frames
from .objectives import balancing_weights, flexion_loss, pair_targets, ranking_loss


@dataclass
class RankResult:
    out: Path
    metrics: dict
    parameters: int


def _optimizer(model: SonoRank, cfg: RankConfig, total_steps: int):
    lrs = {"early": cfg.lr_early, "late": cfg.lr_late, "temporal": cfg.lr_temporal, "heads": cfg.lr_heads}
    opt = torch.optim.Adam(parameter_groups(model, lrs))
    return opt, torch.optim.lr_scheduler.CosineAnnealingLR(opt, max(1, total_steps))


STAGES = ("rank", "flex", "refit")  # the epoch loops, in their order


class Run:
    """One training run in ``out``: the data, the model, checkpoints and the epoch log."""

    def __init__(self, data: ExportedDataset, out: Path, cfg: RankConfig, progress: bool):
        cfg.check()
        dataset = data.path
        self.data, self.dataset, self.out, self.cfg, self.progress = data, dataset, out, cfg, progress
        self.classes, self.checksum = data.classes, data.info["provenance"]["content_sha256"]
        self.subjects = data.fold(cfg.fold)
        if not self.subjects["train"]:
            raise InputError("no training subjects in the split", dataset / "splits.json")
        self.device = resolve_device(cfg.device)
        self.amp = cfg.amp and self.device.type == "cuda"
        aug = (
            Augment(
                resized_crop=cfg.resized_crop,
                crop_scale=tuple(cfg.crop_scale),
                hflip=0.0,
                gamma=tuple(cfg.gamma) if cfg.gamma else None,
                speckle_std=cfg.speckle_std,
                seed=cfg.seed,
            )
            if cfg.augment
            else None
        )
        self.reader = WindowReader(data, cfg.input, cfg.size, aug)

        def win(subjects, step):
            return build_windows(data, subjects, cfg.length, cfg.subsample, step, cfg.flex_fraction, cfg.flex_min_range)

        self.train_windows = win(self.subjects["train"], 1)
        val = self.subjects["val"] or self.subjects["train"]
        self.val_windows = win(val, cfg.window_step)
        self.test_windows = win(self.subjects["test"], cfg.window_step) if self.subjects.get("test") else None
        torch.manual_seed(cfg.seed)
        self.model = SonoRank(cfg.arch(self.reader.channels)).to(self.device)
        self.history: list[dict] = []
        self.meta = {
            "kind": "rank",
            "classes": self.classes,
            "config": config_dict(cfg),
            "arch": asdict(self.model.cfg),
            "dataset": str(dataset),
            "dataset_sha256": self.checksum,
            "subjects": self.subjects,
            "parameters": count_parameters(self.model),
        }

    # -- checkpoints -----------------------------------------------------------------------
    def save(self, name: str, **extra) -> None:
        save_checkpoint(self.out / name, {**self.meta, "model": self.model.state_dict(), "history": self.history, **extra})

    def resume_state(self) -> dict | None:
        last = self.out / "last.pt"
        if not last.exists():
            return None
        state = load_checkpoint(last, "rank")
        same = [state["config"].get(k) == self.meta["config"][k] for k in ("fold", "input", "size", "subsample")]
        if state.get("dataset_sha256") != self.checksum or not self.same_network(state) or not all(same):
            raise InputError(
                "this run folder holds a run on another dataset, fold, input, size or network", self.out, "choose a new --out folder to start afresh"
            )
        return state

    def same_network(self, state: dict) -> bool:
        """Whether a checkpoint's network is this run's; settings it predates take their defaults (as it loads)."""
        return "arch" in state and asdict(ArchConfig(**state["arch"])) == self.meta["arch"]

    def load_ranking(self) -> None:
        """Stage 1's best weights; a flexion classifier of another shape (one that reads class areas) keeps its own."""
        ranked = load_checkpoint(self.out / "rank_best.pt", "rank")["model"]
        mine = self.model.state_dict()
        self.model.load_state_dict({k: ranked[k] if k in ranked and ranked[k].shape == v.shape else v for k, v in mine.items()})

    def log(self, row: dict) -> None:
        self.history.append(row)
        write_rank_log(self.out, self.history)

    # -- stages ----------------------------------------------------------------------------
    def pretrain(self) -> None:
        """The frame encoder from ``pretrain.pt``, or trained self-supervised on the training subjects' frames
        (:mod:`.pretrain`) and kept there."""
        path = self.out / "pretrain.pt"
        if path.exists():
            state = load_checkpoint(path, "rank")
            if not self.same_network(state) or state.get("dataset_sha256") != self.checksum or state["config"].get("fold") != self.cfg.fold:
                raise InputError("pretrain.pt here was made for another dataset, fold or network", path, "delete it, or choose a new --out folder")
            self.model.frames.load_state_dict(state["frames"])
            self.history = list(state["history"])
            return
        row = pretrain_frames(self.model, self.data, self.subjects["train"], self.cfg, self.device, self.progress)
        self.log(row)
        save_checkpoint(path, {**self.meta, "frames": self.model.frames.state_dict(), "history": self.history})
        if self.progress:
            print(f"pretrain: {self.cfg.pretrain_steps} batches, loss {row['train_loss']:.3f} ({row['seconds']:.0f} s)")

    def _epochs(self, stage: str, n_epochs: int, steps: int, state: dict | None, step_fn, validate, score: str, stop: int | None = None) -> None:
        """Shared loop of the stages: train ``steps`` batches per epoch on a schedule of ``n_epochs``,
        validate, keep the best (highest validation ``score``) and the last. Without ``validate`` (the
        refit), train up to epoch ``stop`` of the same schedule and keep that epoch."""
        opt, sched = _optimizer(self.model, self.cfg, n_epochs * steps)
        # ranking only: stage 2's classifier starts from random weights, and an average that starts there
        # lags it for epochs (flexion from class areas: held-out F1 0.09 with the average, 0.50 without)
        averaged = self.cfg.ema_decay > 0 and stage == "rank"
        ema = AveragedModel(self.model, multi_avg_fn=get_ema_multi_avg_fn(self.cfg.ema_decay), use_buffers=True) if averaged else None
        start, best = 0, -math.inf
        if state is not None and state.get("stage") == stage:
            opt.load_state_dict(state["optimizer"])
            sched.load_state_dict(state["scheduler"])
            start, best = int(state["epoch"]) + 1, float(state["best"])
            if ema is not None:
                ema.load_state_dict(state["ema"])
        best_name = {"rank": "rank_best.pt", "flex": "flex_best.pt"}.get(stage, "best.pt")
        loop = Optimisation(opt, self.device.type, torch.bfloat16 if self.amp else None, sched, ema, self.model)
        for epoch in range(start, stop or n_epochs):
            t0 = time.perf_counter()
            # the epoch's draws (dropout) come from the seed, the stage and the epoch alone: a resumed run,
            # or stage 2 continuing another process's stage 1 (--stage flex), draws what one uninterrupted run does
            torch.manual_seed(int(np.random.SeedSequence([self.cfg.seed, STAGES.index(stage), epoch]).generate_state(1)[0]))
            self.model.train()
            stats = run_epoch(((1, loss) for loss in step_fn(epoch)), loop, steps, desc=f"{stage} {epoch + 1}/{n_epochs}", progress=self.progress)
            trained = None
            if ema is not None:  # validate and keep the average; training goes on from the trained weights
                trained = {k: v.clone() for k, v in self.model.state_dict().items()}
                self.model.load_state_dict(ema.module.state_dict())
            if validate is None:
                val, improved = {}, epoch + 1 == stop
            else:
                val = validate()
                improved = val[score] > best or not (self.out / best_name).exists()
                best = max(best, val[score])
            row = {"stage": stage, "epoch": epoch + 1, "train_loss": stats.mean_loss, **val, "seconds": time.perf_counter() - t0, "best": improved}
            self.log(row)
            if improved:
                self.save(best_name, stage=stage, epoch=epoch)
            if trained is not None:
                self.model.load_state_dict(trained)
            self.save(
                "last.pt",
                stage=stage,
                epoch=epoch,
                best=best,
                optimizer=opt.state_dict(),
                scheduler=sched.state_dict(),
                **({"ema": ema.state_dict()} if ema is not None else {}),
            )
            if self.progress:
                shown = "".join(f", {k} {v:.3f}" for k, v in val.items() if isinstance(v, float))
                print(f"{stage} epoch {epoch + 1}/{n_epochs}: train loss {row['train_loss']:.4f}{shown}{' *' if improved else ''} ({row['seconds']:.0f} s)")

    def train_ranking(self, state: dict | None) -> None:
        cfg, dev = self.cfg, self.device
        k = cfg.group_size
        per_step = cfg.batch_size * k * (k - 1) // 2
        steps = max(1, cfg.pairs_per_epoch // per_step)
        steps = steps if cfg.steps_per_epoch is None else min(steps, cfg.steps_per_epoch)
        groups = RankGroups(self.train_windows, self.reader, steps * cfg.batch_size, k, cfg.seed)
        ia, ib = group_pairs(k)

        def batches(epoch: int):
            groups.set_epoch(epoch)
            for x, travel in batch_loader(groups, cfg, cfg.batch_size, False, dev, cfg.seed + epoch):
                travel = travel.to(dev)
                y, m = pair_targets(travel[:, ia].flatten(0, 1), travel[:, ib].flatten(0, 1), cfg.informative_deg)
                yield lambda x=x, y=y, m=m: ranking_loss(self.model.rank_groups(x.to(dev), ia, ib).float(), y, m, cfg.tie_weight)

        def validate() -> dict:
            r = evaluate_ranking(self.model, self.reader, self.val_windows, cfg.eval_pairs, dev, cfg.informative_deg, cfg.tie_weight)
            return {"loss": r["loss"], "val_mean_auc": r["mean_auc"]}

        self._epochs("rank", cfg.epochs, steps, state, batches, validate, "val_mean_auc")

    @property
    def refits(self) -> bool:
        """Whether stage 2 is trained again on the validation subjects too (``refit``; they must be others)."""
        return self.cfg.refit and bool(set(self.subjects["val"]) - set(self.subjects["train"]))

    def train_flexion(self, state: dict | None, refit_to: int | None = None) -> None:
        """Stage 2 on the training subjects, keeping the epoch with the best calibrated F1 on the validation
        subjects; with ``refit_to``, the same schedule again from the same start on the training and
        validation subjects together, kept at epoch ``refit_to`` (the refit)."""
        cfg, dev = self.cfg, self.device
        if state is not None and int(state["epoch"]) + 1 >= (refit_to or cfg.flex_epochs):
            return  # a finished stage, resumed: nothing to compute
        # features compared against the rest frame (areas, flow) need the window as seen, like the rest
        # frame: a crop of one and not the other is a change of its own; they are computed once, and
        # standardised per video with feature_norm session
        model = self.model
        windows = self.train_windows
        if refit_to:
            subjects = self.subjects["train"] + self.subjects["val"]
            windows = build_windows(self.data, subjects, cfg.length, cfg.subsample, 1, cfg.flex_fraction, cfg.flex_min_range)
        windows = windows.subset(np.arange(len(windows))[:: cfg.window_step])
        t0 = time.perf_counter()
        feats = window_features(model, self.reader, windows, dev)
        val_feats = None if refit_to else window_features(model, self.reader, self.val_windows, dev)  # once, not every epoch
        if feats is not None:  # their cost, in the log like pretraining's (not drawn)
            self.log({"stage": "features", "epoch": 0, "seconds": time.perf_counter() - t0})
        ds = FlexWindows(windows, self.reader, augment=feats is None, frames=model.uses_embeddings)
        pos_weight = balancing_weights(ds.windows.flexed).to(dev)
        steps = max(1, len(ds) // cfg.flex_batch_size)
        steps = steps if cfg.steps_per_epoch is None else min(steps, cfg.steps_per_epoch)

        def batches(epoch: int):
            for x, rest, lab, i in batch_loader(ds, cfg, cfg.flex_batch_size, True, dev, cfg.seed + epoch):

                def loss(x=x, rest=rest, lab=lab, i=i):
                    areas = feats[i.to(feats.device)] if feats is not None else None
                    return flexion_loss(model.flex_logits(x.to(dev), rest.to(dev), areas).float(), lab.to(dev), pos_weight)

                yield loss

        def validate() -> dict:
            r = evaluate_flexion(self.model, self.reader, self.val_windows, dev, features=val_feats)
            return {"loss": r["loss"], "val_macro_f1": r["macro"]["f1"], "val_calibrated_f1": r["calibrated"]["f1"]}

        if refit_to:
            self._epochs("refit", cfg.flex_epochs, steps, state, batches, None, "", stop=refit_to)
        else:
            self._epochs("flex", cfg.flex_epochs, steps, state, batches, validate, "val_calibrated_f1")

    def refit_flexion(self, state: dict | None) -> None:
        """Stage 2 again, from the weights it started from, on the training and validation subjects together,
        stopped at the epoch validation chose: one more subject to learn from, where a fold has few (held-out
        flexion F1 on five phantom subjects, docs/sonorank.md)."""
        chosen = int(load_checkpoint(self.out / "flex_best.pt", "rank")["epoch"]) + 1
        if state is None:  # stage 2's start: the seeded weights, the pretrained frame encoder, stage 1's best
            torch.manual_seed(self.cfg.seed)
            self.model.load_state_dict(SonoRank(self.model.cfg).state_dict())
            if (self.out / "pretrain.pt").exists():
                self.model.frames.load_state_dict(load_checkpoint(self.out / "pretrain.pt", "rank")["frames"])
            if self.cfg.baseline is None and (self.out / "rank_best.pt").exists():
                self.load_ranking()
        self.train_flexion(state, refit_to=chosen)

    def final_metrics(self) -> dict:
        parts = {"val": self.val_windows, **({"test": self.test_windows} if self.test_windows is not None else {})}
        metrics: dict = {"parameters": self.meta["parameters"], "subjects": self.subjects}
        for part, windows in parts.items():
            metrics[part] = {}
            if self.cfg.baseline is None and (self.out / "rank_best.pt").exists():
                self.load_ranking()
                metrics[part]["rank"] = evaluate_ranking(
                    self.model, self.reader, windows, self.cfg.eval_pairs, self.device, self.cfg.informative_deg, self.cfg.tie_weight
                )
            if self.cfg.stage != "rank":  # validation subjects are read with the model they did not train
                name = "flex_best.pt" if part == "val" and (self.out / "flex_best.pt").exists() else "best.pt"
                self.model.load_state_dict(load_checkpoint(self.out / name, "rank")["model"])
                metrics[part]["flex"] = evaluate_flexion(self.model, self.reader, windows, self.device)
        if self.cfg.stage != "rank" and self.refits:
            kept = int(load_checkpoint(self.out / "best.pt", "rank")["epoch"]) + 1
            metrics["refit"] = {"epoch": kept, "subjects": self.subjects["train"] + self.subjects["val"]}
        tmp = self.out / ".metrics.json.tmp"
        tmp.write_text(json.dumps(metrics, indent=1, default=float))
        os.replace(tmp, self.out / "metrics.json")
        return metrics


def train_rank(dataset: "str | Path | ExportedDataset", out: str | Path, cfg: RankConfig | None = None, progress: bool = True) -> RankResult:
    """Train (or resume) SonoRank in ``out``: stage 1, stage 2 or both, or a baseline; returns the metrics."""
    cfg = cfg or RankConfig()
    out = Path(out)
    run = Run(ExportedDataset.open(dataset), out, cfg, progress)
    out.mkdir(parents=True, exist_ok=True)
    if progress:
        print(
            f"SonoRank: {run.meta['parameters']:,} parameters ({cfg.input} input, {cfg.size}x{cfg.size}, T={cfg.length}); "
            f"{len(run.train_windows)} training windows of {len(run.train_windows.videos)} videos"
        )
    state = run.resume_state()
    if state is not None:
        run.history = list(state["history"])
        run.model.load_state_dict(state["model"])
        if progress:
            print(f"resuming {out} after {state['stage']} epoch {int(state['epoch']) + 1}")
    if state is None and cfg.pretrain_steps:
        run.pretrain()
    ranking = cfg.baseline is None and cfg.stage in ("rank", "both")
    if ranking and (state is None or state.get("stage") == "rank"):
        run.train_ranking(state)
        state = None
    if cfg.stage in ("flex", "both"):
        if state is None or state.get("stage") not in ("flex", "refit"):
            if cfg.baseline is None:
                if not (out / "rank_best.pt").exists():
                    raise InputError(
                        "--stage flex continues a ranking run, and this folder has none",
                        out,
                        "train --stage rank (or both) here first, or choose --baseline mft-rest",
                    )
                run.load_ranking()
            state = None
        if state is None or state["stage"] == "flex":
            run.train_flexion(state)
            state = None
        if run.refits:
            run.refit_flexion(state)
        else:
            save_checkpoint(out / "best.pt", load_checkpoint(out / "flex_best.pt", "rank"))
    else:  # ranking only: the final model is stage 1's best
        save_checkpoint(out / "best.pt", load_checkpoint(out / "rank_best.pt", "rank"))
    return RankResult(out, run.final_metrics(), run.meta["parameters"])


def load_rank_model(path: str | Path, classes: list[str] | None = None) -> tuple[SonoRank, dict]:
    """A trained SonoRank from ``best.pt`` (or a run folder), in eval mode, with its checkpoint's metadata.
    With ``classes``, a model that reads label maps is refused for data with other classes."""
    path = Path(path)
    path = path / "best.pt" if path.is_dir() else path
    ckpt = load_checkpoint(path, "rank")
    if classes is not None and ckpt["config"].get("input") != "raw" and list(ckpt["classes"]) != list(classes):
        raise InputError(
            f"model reads label maps of classes {ckpt['classes']}, the data has {list(classes)}",
            path,
            "use a model trained on data with the same palette, or one trained on raw frames",
        )
    model = SonoRank(ArchConfig(**ckpt["arch"]))
    model.load_state_dict(ckpt["model"])
    return model.eval(), ckpt


def write_rank_log(out: Path, history: list[dict]) -> None:
    """``log.csv`` and ``curves.png``: training and validation loss per epoch of each stage, and the validation
    score. The pretraining row (one, on another loss's scale) and the flexion features' row are logged, not
    drawn: their cost is what they tell."""
    import pandas as pd

    df = pd.DataFrame(history)
    write_csv_atomic(df, out / "log.csv", index=False)
    df = df[~df["stage"].isin(("pretrain", "features"))]
    if df.empty:
        return

    def draw(plt):
        fig, axes = plt.subplots(1, 2, figsize=(9, 3.5))
        for stage, part in df.groupby("stage", sort=False):
            x = np.arange(len(part)) + 1
            axes[0].plot(x, part["train_loss"], "o-", label=f"{stage} train")
            axes[0].plot(x, part["loss"], "s--", label=f"{stage} validation")
            for score in ("val_mean_auc",) if stage == "rank" else ("val_macro_f1", "val_calibrated_f1"):
                axes[1].plot(x, part[score], "o-", label=score.replace("val_", "validation ").replace("_", " "))
        axes[0].set_xlabel("epoch"), axes[0].set_ylabel("loss"), axes[0].legend(fontsize=8)
        axes[1].set_xlabel("epoch"), axes[1].set_ylim(0, 1), axes[1].legend(fontsize=8)
        fig.tight_layout()
        return fig

    save_plot(out / "curves.png", draw)
