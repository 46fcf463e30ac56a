"""Which frames to annotate next.

Before any keyframe: evenly spaced frames. Once the video is propagated, the frames where a new
keyframe would remove the most estimated error: propagation's margin says where it is unsure
(the best class barely beats the runner-up), and a keyframe cuts the error of the frames it
becomes the nearest keyframe of (:func:`by_error`).
Keyframes but no propagation yet: the frames least like the keyframes (after XMem++'s
annotation-candidate selection).
"""

from __future__ import annotations

import numpy as np
import torch

from ..store import Video
from .config import PropagationConfig
from .engine import Engine


def evenly_spaced(n_frames: int, every: int = 200, count: int | None = None) -> list[int]:
    """``count`` frames each in the middle of an equal share of the video; without ``count``, every
    ``every``-th frame from the first (and the last, when the tail is long)."""
    if count:
        return sorted({int((i + 0.5) * n_frames / count) for i in range(count)})
    grid = list(range(0, n_frames, every))
    if grid[-1] != n_frames - 1 and n_frames - 1 - grid[-1] > every // 2:
        grid.append(n_frames - 1)
    return grid


def estimated_error(video: Video) -> np.ndarray | None:
    """Per-frame error estimate in [0, 1] (None before propagation): 1 - the mean margin between the
    best class and the runner-up, 0 on keyframes and unpropagated frames. On the phantom it follows
    the true per-frame error (1 - mIoU) with a correlation of about 0.8; the two passes' agreement
    follows it less well (about 0.3) and is not used."""
    if not video.has_column("margin"):
        return None
    err = np.nan_to_num(1 - np.asarray(video.column("margin", np.nan), np.float64), nan=0.0)
    err[video.annotated_frames()] = 0.0
    return np.clip(err, 0.0, 1.0)


def by_error(error: np.ndarray, keyframes: list[int], count: int, stride: int = 5) -> list[int]:
    """Greedily, the frames whose new keyframe would remove the most estimated ``error``.

    Propagation error grows with the distance to the nearest keyframe, so a keyframe at ``t`` is
    taken to scale the error of each frame ``u`` by ``|u - t| / d(u)`` where that is below 1
    (``d`` the distance to the nearest keyframe now). A keyframe next to an existing one removes
    little; one in the middle of a long unsure stretch removes most. Each pick updates the error."""
    err, keys, n, picked = error.astype(np.float64).copy(), sorted(keyframes), len(error), []
    frames = np.arange(n)
    for _ in range(count):
        near = np.abs(frames[:, None] - np.asarray(keys)[None, :]).min(1).astype(np.float64)
        candidates = [t for t in range(0, n, stride) if near[t] > 0]
        if not candidates:
            break
        ratio = np.minimum(1.0, np.abs(frames[None, :] - np.asarray(candidates)[:, None]) / np.maximum(near, 1)[None, :])
        gain = (err[None, :] * (1 - ratio)).sum(1)
        best = int(gain.argmax())
        if gain[best] <= 0:
            break
        picked.append(candidates[best])
        err *= ratio[best]
        keys = sorted([*keys, candidates[best]])
    return picked


def suggest_keyframes(video: Video, every: int = 200, count: int | None = None, stride: int = 5, config: PropagationConfig | None = None) -> list[int]:
    """Frames to annotate, best first (see the module)."""
    n = video.n_frames
    keys = video.annotated_frames()
    if not keys:
        return evenly_spaced(n, every, count)
    count = count or max(1, n // every - len(keys))
    error = estimated_error(video)
    if error is not None and error.any():
        return by_error(error, keys, count, stride)
    return _least_like_keyframes(video, keys, count, stride, config)


def _least_like_keyframes(video: Video, keys: list[int], count: int, stride: int, config: PropagationConfig | None) -> list[int]:
    """The frames (every ``stride``-th) whose smallest key dissimilarity to the chosen frames is largest."""
    engine = Engine(config or PropagationConfig(device="cpu"), len(video.project.palette))
    candidates = [t for t in range(0, video.n_frames, stride) if t not in set(keys)]
    if not candidates:
        return []

    def descriptors(frames: list[int]) -> torch.Tensor:
        out = []
        for i in range(0, len(frames), 64):
            k, _ = engine.encode(np.stack([video.frames[t] for t in frames[i : i + 64]]))
            out.append(torch.nn.functional.normalize(k.flatten(1), dim=1))
        return torch.cat(out)

    cand = descriptors(candidates)
    dissim = (1 - cand @ descriptors(keys).T).min(1).values
    picked = []
    for _ in range(min(count, len(candidates))):
        i = int(dissim.argmax())
        picked.append(candidates[i])
        dissim = torch.minimum(dissim, 1 - cand @ cand[i])
        dissim[i] = -1
    return picked
