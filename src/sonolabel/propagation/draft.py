"""Drafts for a keyframe: the project's U-Net prediction, the video's own keyframes, or the same subject's
other recording.

No keyframe needs to start empty once one is drawn. From the video's own keyframes, the propagation engine
reads the frame from the nearest one through every ``DRAFT_STRIDE``-th frame between (:func:`chain_draft`):
as good a draft as a full propagation gives there, in seconds where propagating the video takes minutes on a
CPU. From the subject's labelled recording it reads the frame in one step against that recording's
keyframes (the most similar one starts the pass, the next ones join its permanent memory), which drafts a
new recording's first keyframe: the forearm is the same, so the muscles and bones sit near where they sat.
A draft is a proposal the annotator corrects, never stored as an annotation by itself.
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
    """Labels for frame ``t`` of ``video`` read in one step from ``source``'s keyframes (by default
    :func:`draft_source`); returns them with the source video's id."""
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


# frames skipped between reads in a draft chained from a keyframe: on phantom recordings, 500 frames from a
# keyframe, every 4th frame read gives mIoU 0.949-0.968 in 4-5 s on 2 cores, every frame 0.943-0.964 in 16-18 s,
# every 8th 0.945-0.968, every 16th 0.932-0.955, and one step from the keyframe 0.827-0.880 (docs/napari.md)
DRAFT_STRIDE = 4


def chain_draft(video: Video, t: int, engine: Engine | None = None, stride: int = DRAFT_STRIDE, keys: list[int] | None = None) -> tuple[np.ndarray, int]:
    """Labels for frame ``t`` read from the video's nearest keyframe (of ``keys``, by default all) through every
    ``stride``-th frame between, as one propagation pass; returns them with that keyframe."""
    keys = video.annotated_frames() if keys is None else keys
    if not keys:
        raise InputError(f"video {video.id} has no keyframe to draft from", video.project.path, "annotate a keyframe first")
    k = min(keys, key=lambda k: (abs(k - t), k))
    engine = engine or Engine(PropagationConfig(mode="free", device="cpu"), len(video.project.palette))
    step = stride if t > k else -stride
    frames = [*range(k + step, t, step), t] if t != k else [t]
    readout = None
    run = engine.start_pass(*VideoPropagator(video, engine, "draft").keyframe(k))
    for i in range(0, len(frames), engine.config.batch):
        readout = run.run(engine.encode(np.stack([video.frames[f] for f in frames[i : i + engine.config.batch]])))[-1]
    return engine.to_labels(readout.probs[None].cpu(), (video.height, video.width))[0], k


def draft_for(video: Video, t: int) -> tuple[np.ndarray, str]:
    """A draft of frame ``t``: the U-Net's prediction when ``sonolabel predict`` stored one for this video, else
    :func:`chain_draft` from the video's own keyframes, else :func:`draft_labels` from the same subject's other
    recording; returns it with where it came from."""
    if video.state(layout.PREDICTION_STATE) and video.has_prediction:
        return np.asarray(video.predicted[t]), "the U-Net's prediction"
    keys = [k for k in video.annotated_frames() if k != t]
    if keys:
        labels, k = chain_draft(video, t, keys=keys)
        return labels, f"this video's keyframe {k}"
    return draft_labels(video, t)
