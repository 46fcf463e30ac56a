"""Which keys propagate a video: chosen by measured quality, never by whether weights exist.

``mode=auto`` with trained weights reads every keyframe of the video from its neighbours in both modes
(leave-one-keyframe-out, :mod:`.loko`) and propagates with the learned keys only when they read the
keyframes better by more than the noise of that comparison (one standard error of the per-keyframe
differences). The check reads at twice the keyframe spacing, so a small lead there need not hold at the
video's own spacing; ties, small leads and videos without the evidence (fewer than two keyframes, or a
single reading to compare on) keep the training-free keys, so training never lowers a video's labels
unseen. ``free`` and ``learned`` force a mode. The checks are cached per keyframe, so the choice
costs two check passes once and, after a correction, only the keyframes around it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..store import Project, Video
from ..store.layout import MODE_STATE
from .config import PropagationConfig
from .engine import Engine
from .loko import KeyframeCheck, check_keyframes, video_score
from .weights import learned_engine, model_path, resolve_mode


@dataclass
class ModeChoice:
    mode: str  # free | learned
    scores: dict[str, float | None] = field(default_factory=dict)  # leave-one-keyframe-out score per mode
    reason: str = ""


class Engines:
    """The engines one run may use, each loaded once: the forced mode's, or for ``auto`` with trained
    weights both, to be chosen per video by :meth:`for_video`."""

    def __init__(self, project: Project, config: PropagationConfig, weights: str | Path | None = None):
        n = len(project.palette)
        path = Path(weights) if weights else model_path(project)
        self.compare = config.mode == "auto" and path.is_file()
        self.config = resolve_mode(project, config, weights)  # auto -> learned when weights exist
        self._engines: dict[str, tuple[Engine, str]] = {}
        free = PropagationConfig.from_dict({**self.config.to_dict(), "mode": "free"})
        if self.config.mode == "free" or self.compare:
            self._engines["free"] = (Engine(free, n), "intensity-keys")
        if self.config.mode == "learned":
            self._engines["learned"] = learned_engine(self.config, n, path)

    def for_video(self, video: Video) -> tuple[Engine, str, ModeChoice | None]:
        """The engine and model id for ``video``, and the choice when ``auto`` compared the modes."""
        if not self.compare:
            engine, model_id = next(iter(self._engines.values()))
            return engine, model_id, None
        choice = choose_mode(video, self._engines)
        if video.project.writable:
            video.set_state(MODE_STATE, {"mode": choice.mode, "scores": choice.scores, "reason": choice.reason})
        return (*self._engines[choice.mode], choice)


def choose_mode(video: Video, engines: dict[str, tuple[Engine, str]]) -> ModeChoice:
    """The better of the ``free`` and ``learned`` engines on ``video``'s own keyframes."""
    if len(video.annotated_frames()) < 2:
        return ModeChoice("free", {}, "one keyframe: nothing to compare the modes on; training-free keys")
    checks = {mode: check_keyframes(video, engine, model_id) for mode, (engine, model_id) in engines.items()}
    scores = {mode: video_score(c) for mode, c in checks.items()}
    free, learned = scores.get("free"), scores.get("learned")
    if learned is None or free is None:
        return ModeChoice("free", scores, "no leave-one-keyframe-out score for both modes; training-free keys")
    lead, noise = learned_lead(checks["free"], checks["learned"])
    if lead > noise:
        why = f"learned {learned:.3f} > free {free:.3f}, lead {lead:.3f} beyond its noise {noise:.3f}"
        return ModeChoice("learned", scores, f"{why} (leave-one-keyframe-out mIoU)")
    why = "free reads the keyframes at least as well" if lead <= 0 else f"learned's lead {lead:.3f} is within its noise {noise:.3f}"
    return ModeChoice("free", scores, f"free {free:.3f}, learned {learned:.3f}: {why} (leave-one-keyframe-out mIoU)")


def _per_keyframe(checks: list[KeyframeCheck]) -> dict[int, float]:
    """The readings the modes are compared on, by keyframe: the fused mIoU of the interior keyframes, or,
    with fewer than two of them (keyframes at both ends and one between: a single reading has no spread),
    every keyframe's one-sided mean IoU, ends included."""
    fused = {c.frame: c.miou for c in checks if c.miou is not None}
    return fused if len(fused) >= 2 else {c.frame: float(np.nanmean(c.side_iou)) for c in checks}


def learned_lead(free: list[KeyframeCheck], learned: list[KeyframeCheck]) -> tuple[float, float]:
    """The learned mode's mean lead over the free mode, keyframe by keyframe, and its standard error
    (infinite with a single keyframe to compare on: one keyframe is no evidence of a lead)."""
    a, b = _per_keyframe(free), _per_keyframe(learned)
    diff = np.array([b[k] - a[k] for k in sorted(a.keys() & b.keys())])
    if len(diff) == 0:
        return 0.0, float("inf")
    noise = float(diff.std(ddof=1) / np.sqrt(len(diff))) if len(diff) > 1 else float("inf")
    return float(diff.mean()), noise


def compare_modes(project: Project, config: PropagationConfig | None = None, weights: str | Path | None = None) -> dict[str, ModeChoice]:
    """Both modes' leave-one-keyframe-out scores on every video with two keyframes or more (what training
    gained or lost, per video), recorded as auto's choice for each video."""
    cfg = PropagationConfig.from_dict({**(config or PropagationConfig()).to_dict(), "mode": "auto"})
    engines = Engines(project, cfg, weights)
    if not engines.compare:
        return {}
    return {v.id: engines.for_video(v)[2] for v in project.videos() if len(v.annotated_frames()) >= 2}
