"""Which keys propagate a video: chosen by measured quality, never by whether weights exist.

``mode=auto`` with trained weights reads every keyframe of the video from its neighbours in both modes
(leave-one-keyframe-out, :mod:`.loko`) and propagates with the better one; ties and videos without
the evidence (fewer than two keyframes) keep the training-free keys, so training never lowers a video's
labels unseen. ``free`` and ``learned`` force a mode. The checks are cached per keyframe, so the choice
costs two check passes once and, after a correction, only the keyframes around it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from ..store import Project, Video
from ..store.layout import MODE_STATE
from .config import PropagationConfig
from .engine import Engine
from .loko import check_keyframes, video_score
from .weights import load_weights, model_path, resolve_mode


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
            encoder, refine, _, model_id = load_weights(path, n)
            self._engines["learned"] = (Engine(self.config, n, encoder=encoder, refine=refine), model_id)

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
    scores = {mode: video_score(check_keyframes(video, engine, model_id)) for mode, (engine, model_id) in engines.items()}
    free, learned = scores.get("free"), scores.get("learned")
    if learned is not None and free is not None and learned > free:
        return ModeChoice("learned", scores, f"learned {learned:.3f} > free {free:.3f} (leave-one-keyframe-out mIoU)")
    return ModeChoice("free", scores, f"free {free:.3f} >= learned {learned:.3f} (leave-one-keyframe-out mIoU)")


def compare_modes(project: Project, config: PropagationConfig | None = None, weights: str | Path | None = None) -> dict[str, ModeChoice]:
    """Both modes' leave-one-keyframe-out scores on every video with two keyframes or more (what training
    gained or lost, per video), recorded as auto's choice for each video."""
    cfg = PropagationConfig.from_dict({**(config or PropagationConfig()).to_dict(), "mode": "auto"})
    engines = Engines(project, cfg, weights)
    if not engines.compare:
        return {}
    return {v.id: engines.for_video(v)[2] for v in project.videos() if len(v.annotated_frames()) >= 2}
