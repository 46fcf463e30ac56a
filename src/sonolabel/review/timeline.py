"""What a video's timeline shows, frame by frame: where its labels come from (keyframes, corrected
frames, propagated, imported and unlabelled stretches), propagation's confidence, and the drift flags
with their review state.

The napari timeline under the frame slider draws a :class:`Timeline`; computing one reads only
per-frame columns and the flag file (no frames or labels), so it can be rebuilt after every save.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..store import LabelSource, Video
from .log import ReviewLog


@dataclass
class Timeline:
    """One video along time. ``sources`` holds a :class:`LabelSource` per frame; ``confidence`` is the mean
    per-pixel margin of propagation's fused class probabilities (1 on keyframes, NaN where nothing was
    propagated or the labels were imported); ``flags`` are the drift flags, each with ``start``, ``stop``, ``severity``, ``kind`` and
    review ``state``."""

    n_frames: int
    sources: np.ndarray
    confidence: np.ndarray
    flags: list[dict] = field(default_factory=list)

    @property
    def keyframes(self) -> list[int]:
        return np.flatnonzero(np.isin(self.sources, (LabelSource.ANNOTATED, LabelSource.CORRECTED))).tolist()

    @property
    def corrected(self) -> list[int]:
        return np.flatnonzero(self.sources == LabelSource.CORRECTED).tolist()

    def runs(self) -> list[tuple[int, int, LabelSource]]:
        """Stretches of one label source: (start, stop, source), covering every frame in order."""
        if self.n_frames == 0:
            return []
        cuts = np.flatnonzero(np.diff(self.sources.astype(np.int16))) + 1
        starts = np.r_[0, cuts]
        stops = np.r_[cuts, self.n_frames]
        return [(int(a), int(b), LabelSource(int(self.sources[a]))) for a, b in zip(starts, stops)]


def video_timeline(video: Video, log: ReviewLog | None = None) -> Timeline:
    """The timeline of ``video`` as stored now (flags from ``log``, the project's review log by default)."""
    sources = video.sources()
    confidence = video.column("margin", np.nan).astype(np.float32)
    key = np.isin(sources, (LabelSource.ANNOTATED, LabelSource.CORRECTED))
    confidence[key] = 1.0
    confidence[~key & (sources != LabelSource.PROPAGATED)] = np.nan  # unlabelled, or imported from another tool
    log = log or ReviewLog(video.project)
    q = log.queue(None, video=video.id)
    flags = [{k: r[k] for k in ("start", "stop", "severity", "kind", "state")} for r in q.to_dict("records")]
    return Timeline(video.n_frames, sources, confidence, flags)
