"""Directional passes kept between propagations of a video, so a correction costs half a re-propagation.

A pass starts at one keyframe and reads frame after frame in one direction; it is causal, so its
first n frames depend only on its starting keyframe, its extra keyframes, the frames and the
settings. When a keyframe is added or corrected between keyframes L and R, the pass forward from
L and the pass backward from R are unchanged over the frames they still cover: only the two
passes that start at the corrected keyframe need reading. A :class:`PassCache` held by a session
(the napari viewer, a benchmark's annotation loop) remembers finished passes in memory; the
propagator takes what it can from it and reads the rest. A plain ``sonolabel propagate`` holds
none and reads every pass.
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from dataclasses import dataclass

import numpy as np
import torch


@dataclass
class PassRecord:
    """Per-frame output of a pass, in pass order (index 0 is the frame next to its keyframe)."""

    probs: list[torch.Tensor]  # (K, h, w) float16 on the CPU
    similarity: list[float]

    @property
    def nbytes(self) -> int:
        return sum(p.numel() * p.element_size() for p in self.probs)


class PassCache:
    """Finished passes of one video, least recently used dropped first beyond ``max_bytes``."""

    def __init__(self, max_bytes: int = 1 << 30):
        self.max_bytes = max_bytes
        self._records: OrderedDict[str, PassRecord] = OrderedDict()
        self.nbytes = 0  # held by the records
        self.hits = self.misses = 0

    def get(self, key: str, n_frames: int) -> PassRecord | None:
        """The record of pass ``key`` if it covers at least ``n_frames`` frames."""
        record = self._records.get(key)
        if record is None or len(record.probs) < n_frames:
            self.misses += 1
            return None
        self._records.move_to_end(key)
        self.hits += 1
        return record

    def put(self, key: str, record: PassRecord) -> None:
        old = self._records.get(key)
        if old is not None and len(old.probs) >= len(record.probs):
            return
        self.nbytes += record.nbytes - (old.nbytes if old is not None else 0)
        self._records[key] = record
        self._records.move_to_end(key)
        while len(self._records) > 1 and self.nbytes > self.max_bytes:
            self.nbytes -= self._records.popitem(last=False)[1].nbytes

    def clear(self) -> None:
        self._records.clear()
        self.nbytes = 0

    def __len__(self) -> int:
        return len(self._records)


def pass_key(settings: str, start: int, reverse: bool, digests: dict[int, str], extras: list[int]) -> str:
    """What a pass's output depends on: the settings and model (``settings``), where it starts, its
    direction, and the annotations of its keyframe and extra keyframes."""
    h = hashlib.sha256(f"{settings}|{start}|{int(reverse)}|{digests[start]}".encode())
    for k in extras:
        h.update(f"|{k}:{digests[k]}".encode())
    return h.hexdigest()[:24]


def digest(labels: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(labels).tobytes()).hexdigest()[:16]
