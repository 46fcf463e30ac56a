"""Drafts for a video's first keyframe: the project's U-Net prediction, or the same subject's other recording.

Once one recording of a subject is labelled, no keyframe of that subject's next recording needs to start
empty: the propagation engine reads the frame against the labelled recording's keyframes (the most
similar one starts the pass, the next ones join its permanent memory), as it would read a frame of the
same video. The forearm is the same, so the muscles and bones sit near where they sat; the draft is a
proposal the annotator corrects, never stored as an annotation by itself.
"""

from __future__ import annotations

import numpy as np
import torch

from ..errors import InputError
from ..store import Video, layout
from .config import PropagationConfig
from .engine import Engine
from .propagate import VideoPropagator


def draft_source(video: Video) -> Video | None:
    """The same subject's other video with the most keyframes (None when there is none)."""
    subject = video.attrs.get("subject")
    others = [v for v in video.project.videos() if v.id != video.id and v.attrs.get("subject") == subject and v.annotated_frames()]
    return max(others, key=lambda v: len(v.annotated_frames()), default=None)


def draft_labels(video: Video, t: int, source: Video | None = None, engine: Engine | None = None) -> tuple[np.ndarray, str]:
    """Labels for frame ``t`` of ``video`` read from ``source``'s keyframes (by default :func:`draft_source`);
    returns them with the source video's id."""
    source = source or draft_source(video)
    if source is None:
        raise InputError(
            f"no other recording of subject {video.attrs.get('subject')!r} has keyframes to draft from",
            video.project.path,
            "annotate a keyframe of this video by hand (or of another recording of the subject first)",
        )
    engine = engine or Engine(PropagationConfig(mode="free", device="cpu"), len(video.project.palette))
    runner = VideoPropagator(source, engine, "draft")
    query = engine.encode(np.asarray(video.frames[t : t + 1]))
    here = torch.nn.functional.normalize(query[0].mean((1, 2)), dim=0)
    memory = {k: runner.keyframe(k) for k in source.annotated_frames()}
    likeness = {k: float(torch.nn.functional.normalize(key.mean((1, 2)), dim=0) @ here) for k, (key, _) in memory.items()}
    ranked = sorted(memory, key=lambda k: -likeness[k])
    first, *extra = [memory[k] for k in ranked[: 1 + engine.config.extra_keyframes]]
    readout = engine.start_pass(*first, extra).step(query[0])
    labels = engine.to_labels(readout.probs[None].cpu(), (video.height, video.width))[0]
    return labels, source.id


def draft_for(video: Video, t: int) -> tuple[np.ndarray, str]:
    """A draft of frame ``t``: the U-Net's prediction when ``sonolabel predict`` stored one for this video, else
    :func:`draft_labels` from the same subject's other recording; returns it with where it came from."""
    if video.state(layout.PREDICTION_STATE) and video.has_prediction:
        return np.asarray(video.predicted[t]), "the U-Net's prediction"
    return draft_labels(video, t)
