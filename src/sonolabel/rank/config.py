"""SonoRank's settings: :class:`RankConfig` (the paper's defaults) and the CPU preset, filled from
JSON (``--config``) and ``--set key=value``; saved in every checkpoint."""

from __future__ import annotations

from dataclasses import dataclass, field

from ..errors import InputError
from . import flow
from .model import FEATURE_NORMS, FLEX_INPUTS, ArchConfig

STAGES = ("rank", "flex", "both")
BASELINES = ("mft", "mft-rest")


@dataclass
class RankConfig:
    """SonoRank settings; defaults are the paper's. ``--config small`` gives the CPU configuration."""

    input: str = "raw"  # raw | labels | both
    stage: str = "both"  # rank | flex | both
    baseline: str | None = None  # None: SonoRank; mft (no ranking, no rest); mft-rest (no ranking)
    fold: int | None = None  # leave-one-subject-out fold of splits.json (None: its train/val split)
    size: int = 224
    length: int = 16  # frames per window (T)
    subsample: int = 2  # take every 2nd frame: 20 fps -> 10 Hz
    widths: list[int] = field(default_factory=lambda: [64, 128, 256, 512, 512])
    embed: int = 64
    layers: int = 2
    heads: int = 4
    feedforward: int = 256
    dropout: float = 0.3
    pairs_per_epoch: int = 50_000
    batch_size: int = 8  # groups of windows per batch (a group of 2 is one pair)
    group_size: int = 2  # windows per group, every pair of which is ranked (2: the paper's pairs)
    epochs: int = 10  # stage 1
    lr_early: float = 1e-5
    lr_late: float = 5e-5
    lr_temporal: float = 1e-4
    lr_heads: float = 3e-4
    informative_deg: float = 3.0
    tie_weight: float = 0.5  # lambda: weight of logit^2 on uninformative pairs
    ema_decay: float = 0.0  # > 0: stage 1 validates and keeps an exponential moving average of the weights (0: off)
    flex_epochs: int = 10  # stage 2
    refit: bool = True  # stage 2 again on the training and validation subjects together, kept at the epoch validation chose
    flex_batch_size: int = 8  # windows (each with its rest reference) per batch
    # flexion reads: embeddings | areas (class shapes vs the rest frame) | both | flow (image motion) |
    # areas_flow (areas, and the image's motion within each class's strips); auto: areas, or flow for raw
    flex_input: str = "auto"
    flex_strips: int = 4  # areas: strips across each class (0: whole-class shares); see rank/shapes.py
    feature_norm: str = "session"  # areas / flow: standardised by each session's own statistics, or by the training set's (training)
    motion: bool = False  # raw frames: the encoder also sees each frame's difference from the window's previous frame
    pretrain_steps: int = 0  # raw frames: batches of self-supervised (time-contrastive) encoder training before stage 1 (0: none; rank/pretrain.py)
    pretrain_batch: int = 32  # pairs of frames per pretraining batch
    flex_fraction: float = 0.5  # flexed: above min + fraction * range of the finger in the session
    flex_min_range: float = 10.0  # degrees; a finger that moved less never counts as flexed
    window_step: int = 4  # frames between window starts for flexion and evaluation
    eval_pairs: int = 4000
    augment: bool = True  # one draw per window: crop, gamma, speckle (no flips: the radial-ulnar layout tells fingers apart)
    resized_crop: float = 0.5
    crop_scale: list[float] = field(default_factory=lambda: [0.8, 1.0])
    gamma: list[float] | None = field(default_factory=lambda: [0.7, 1.5])
    speckle_std: float = 0.1
    workers: int = 2
    steps_per_epoch: int | None = None  # cap on batches per epoch (quick checks)
    device: str = "auto"
    amp: bool = True  # bfloat16 autocast on CUDA only
    seed: int = 0

    def arch(self, in_channels: int) -> ArchConfig:
        return ArchConfig(
            in_channels,
            list(self.widths),
            self.embed,
            self.length,
            self.layers,
            self.heads,
            self.feedforward,
            self.dropout,
            rest=self.baseline != "mft",
            label_channels=0 if self.input == "raw" else in_channels - (self.input == "both"),
            flex_input=self.resolved_flex_input,
            strips=self.flex_strips,
            motion=self.motion,
            flow_version=flow.VERSION,
            feature_norm=self.feature_norm,
        )

    @property
    def resolved_flex_input(self) -> str:
        """``auto``: class areas where the input has labels, else where the image moved (flow): both find the
        flexed finger of a new subject better than learnt embeddings do (docs/sonorank.md)."""
        if self.flex_input != "auto":
            return self.flex_input
        return "flow" if self.input == "raw" else "areas"

    def check(self) -> None:
        if self.stage not in STAGES:
            raise InputError(f"stage {self.stage!r} is not one of {', '.join(STAGES)}")
        if self.baseline is not None and self.baseline not in BASELINES:
            raise InputError(f"baseline {self.baseline!r} is not one of {', '.join(BASELINES)}")
        if self.flex_input not in (*FLEX_INPUTS, "auto"):
            raise InputError(f"flex_input {self.flex_input!r} is not one of auto, {', '.join(FLEX_INPUTS)}")
        if self.feature_norm not in FEATURE_NORMS:
            raise InputError(f"feature_norm {self.feature_norm!r} is not one of {', '.join(FEATURE_NORMS)}")
        if self.resolved_flex_input in ("areas", "both") and self.input == "raw":
            raise InputError(f"flex_input {self.flex_input} reads class areas, which raw input has not", hint="use --set input=labels or both")
        if self.resolved_flex_input == "flow" and self.input == "labels":
            raise InputError("flex_input flow reads the image's motion, which label input has not", hint="use --set input=raw or both")
        if self.resolved_flex_input == "areas_flow" and self.input != "both":
            raise InputError("flex_input areas_flow reads class areas and the image's motion within them", hint="use --set input=both")
        if self.motion and self.input == "labels":
            raise InputError("motion is the difference of raw frames, which label input has not", hint="use --set input=raw or both")
        if self.pretrain_steps and self.input != "raw":
            raise InputError("pretraining reads raw frames only", hint="use --set input=raw, or pretrain_steps=0")
        if self.baseline and self.stage == "rank":
            raise InputError("the baselines skip ranking: --stage rank has no baseline")


# The CPU configuration: a narrower encoder at 112x112, T=8, and a short schedule. Trained from
# scratch within minutes, it uses one learning rate of 1e-3, no dropout and no augmentation, and
# ranks every pair of groups of 8 windows of one video (28 pairs for 8 encoded windows: about 7x
# the pairs per second of single pairs, as the encoder dominates the cost).
SMALL = {
    "size": 112,
    "length": 8,
    "widths": [16, 32, 64, 128, 128],
    "group_size": 8,
    "batch_size": 2,
    "pairs_per_epoch": 8000,
    "epochs": 8,
    "flex_epochs": 8,  # with features standardised per session, 8 epochs find a new subject's flexion better than 4 (docs/sonorank.md)
    "eval_pairs": 3000,
    "dropout": 0.0,
    "augment": False,
    "ema_decay": 0.995,
    "lr_early": 1e-3,
    "lr_late": 1e-3,
    "lr_temporal": 1e-3,
    "lr_heads": 1e-3,
}
PRESETS = {"small": SMALL}
