"""Which frames to annotate next.

Before any keyframe: evenly spaced frames. Then the frames least like the keyframes (after
XMem++'s annotation-candidate selection). A rule that sent the annotator where propagation's
margin was lowest was measured against it and lost (docs/annotation-effort.md); evenly spaced
keyframes beat both on the phantom.
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


def suggest_keyframes(video: Video, every: int = 200, count: int | None = None, stride: int = 5, config: PropagationConfig | None = None) -> list[int]:
    """Frames to annotate, best first (see the module)."""
    n = video.n_frames
    keys = video.annotated_frames()
    if not keys:
        return evenly_spaced(n, every, count)
    count = count or max(1, n // every - len(keys))
    return least_like_keyframes(video, keys, count, stride, config)


def least_like_keyframes(video: Video, keys: list[int], count: int, stride: int, config: PropagationConfig | None) -> list[int]:
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
