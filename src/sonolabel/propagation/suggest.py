"""Which frames to annotate next: evenly spaced first, then the frames least like the keyframes
or where propagation was least sure (after XMem++'s annotation-candidate selection)."""

from __future__ import annotations

import numpy as np
import torch

from ..store import Video
from .config import PropagationConfig
from .engine import Engine


def suggest_keyframes(video: Video, every: int = 200, count: int | None = None, stride: int = 5, config: PropagationConfig | None = None) -> list[int]:
    """Frames to annotate, best first.

    Without keyframes: every ``every``-th frame. With keyframes: the frames (sampled every
    ``stride``) whose smallest key dissimilarity to the chosen frames is largest, chosen greedily,
    boosted where propagation confidence (readout similarity) was low.
    """
    n = video.n_frames
    keys = video.annotated_frames()
    if not keys:
        grid = list(range(0, n, every))
        if grid[-1] != n - 1 and n - 1 - grid[-1] > every // 2:
            grid.append(n - 1)
        return grid[:count] if count else grid
    count = count or max(1, n // every - len(keys))
    engine = Engine(config or PropagationConfig(device="cpu"), len(video.project.palette))
    candidates = [t for t in range(0, n, stride) if t not in set(keys)]
    if not candidates:
        return []

    def descriptors(frames: list[int]) -> torch.Tensor:
        out = []
        for i in range(0, len(frames), 64):
            k, _ = engine.encode(np.stack([video.frames[t] for t in frames[i : i + 64]]))
            out.append(torch.nn.functional.normalize(k.flatten(1), dim=1))
        return torch.cat(out)

    cand = descriptors(candidates)
    chosen = descriptors(keys)
    dissim = (1 - cand @ chosen.T).min(1).values
    if video.has_column("similarity"):
        sim = video.column("similarity", np.nan)[candidates]
        low = np.nan_to_num(1 - sim, nan=0.0)
        dissim = dissim * (1 + torch.from_numpy(low).float())
    picked = []
    for _ in range(min(count, len(candidates))):
        i = int(dissim.argmax())
        picked.append(candidates[i])
        dissim = torch.minimum(dissim, 1 - cand @ cand[i])
        dissim[i] = -1
    return picked
