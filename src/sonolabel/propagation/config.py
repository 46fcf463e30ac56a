"""Propagation settings, filled from defaults, a JSON file, or the CLI."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, fields
from pathlib import Path

from ..errors import InputError


MODES = ("auto", "free", "learned")
# the final fine pass (napari's Finish, `sonolabel propagate --fine`): about 4x the default's
# time; it leaves few frames to fix by hand (docs/annotation-effort.md), and later default-size runs keep it
# wherever the keyframes are unchanged
FINE_WORKING_SIZE = 480
# keyframes at most this many frames apart are dense enough for the fine pass: a keyframe halving a wider
# gap removes more frames to fix after it than it costs to draw (benchmarks/keyframe_reach.py,
# docs/annotation-effort.md); `keyframes suggest` and napari's next-suggested button say so
FINE_KEYFRAME_GAP = 600


@dataclass
class PropagationConfig:
    mode: str = "auto"  # free: training-free intensity keys; learned: the project's trained encoder; auto: learned when trained
    working_size: int = 240  # frames are resized to this square size for key encoding
    top_k: int = 16  # memory matches averaged per query cell
    temperature: float = 0.05  # softmax temperature on cosine similarities
    key_radius: int = 8  # search radius in annotated keyframes, in cells of 4 working pixels
    work_radius: int = 4  # search radius in recent predictions, in cells of 4 working pixels
    work_every: int = 2  # a prediction joins working memory every this many frames
    work_size: int = 6  # frames held in working memory (first in, first out)
    motion: bool = True  # re-centre the search windows on the coarse motion between frames (probe slips, sweeps)
    extra_keyframes: int = 1  # keyframes a pass has already passed, kept in its permanent memory (the most similar)
    batch: int = 32  # frames encoded and written at once
    device: str = "auto"  # cpu | cuda | auto

    def resolve_device(self) -> str:
        import torch

        if self.device == "auto":
            return "cuda" if torch.cuda.is_available() else "cpu"
        if self.device == "cuda" and not torch.cuda.is_available():
            raise InputError("--device cuda but no CUDA device is available", hint="use --device cpu or auto")
        return self.device

    def to_dict(self) -> dict:
        return asdict(self)

    def fingerprint(self) -> str:
        """The settings that change what propagation writes (not the batch size or the device), as canonical
        JSON: part of every segment signature, kept-pass key and keyframe check."""
        return json.dumps({k: v for k, v in self.to_dict().items() if k not in ("batch", "device")}, sort_keys=True)

    @classmethod
    def from_dict(cls, d: dict) -> "PropagationConfig":
        names = {f.name for f in fields(cls)}
        unknown = set(d) - names
        if unknown:
            raise InputError(f"unknown propagation settings {sorted(unknown)}", hint=f"known: {', '.join(sorted(names))}")
        cfg = cls(**d)
        if cfg.mode not in MODES:
            raise InputError(f"mode must be one of {', '.join(MODES)}, not {cfg.mode!r}")
        return cfg

    @classmethod
    def from_file(cls, path: str | Path, **overrides) -> "PropagationConfig":
        try:
            d = json.loads(Path(path).read_text())
        except (OSError, ValueError) as e:
            raise InputError(f"cannot read config ({e})", path) from None
        d.update({k: v for k, v in overrides.items() if v is not None})
        return cls.from_dict(d)
