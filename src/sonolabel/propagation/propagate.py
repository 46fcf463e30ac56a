"""Propagate keyframe annotations to every frame of a video in a project.

The video is cut into segments at its keyframes. A segment between two keyframes gets a forward
pass from the left keyframe and a backward pass from the right one, fused frame by frame; the
frames before the first keyframe and after the last get one pass. Each finished segment is
recorded with a signature of its keyframes and settings, so an interrupted run resumes where it
stopped and a correction re-propagates only the two segments it touches. Annotated frames are
never written.
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass
from typing import Callable, Generator

import numpy as np
import torch

from ..errors import InputError
from ..store import Video
from ..store.layout import PROPAGATION_STATE
from .config import PropagationConfig
from .engine import Engine

STATE_KEY = PROPAGATION_STATE


@dataclass(frozen=True)
class Segment:
    """Frames ``first..last`` (inclusive) lying between keyframes ``left`` and ``right`` (None at the ends)."""

    left: int | None
    right: int | None
    first: int
    last: int

    @property
    def name(self) -> str:
        return f"{'start' if self.left is None else self.left}-{'end' if self.right is None else self.right}"

    @property
    def n_frames(self) -> int:
        return self.last - self.first + 1


def plan_segments(n_frames: int, keyframes: list[int]) -> list[Segment]:
    """The segments that cover every frame that is not a keyframe."""
    keys = sorted(keyframes)
    if not keys:
        return []
    bounds = [None, *keys, None]
    segments = []
    for left, right in zip(bounds[:-1], bounds[1:]):
        first = 0 if left is None else left + 1
        last = n_frames - 1 if right is None else right - 1
        if first <= last:
            segments.append(Segment(left, right, first, last))
    return segments


@dataclass
class PropagationReport:
    video: str
    segments_done: int
    segments_skipped: int
    frames_written: int
    seconds: float
    mode: str = ""  # free | learned (set by propagate_project)
    choice: object = None  # propagation.modes.ModeChoice when auto compared the modes


def _signature(video: Video, seg: Segment, config: PropagationConfig, model_id: str) -> str:
    h = hashlib.sha256(json.dumps({k: v for k, v in config.to_dict().items() if k not in ("batch", "device")}, sort_keys=True).encode())
    h.update(f"{model_id}|{seg.name}|{video.n_frames}".encode())
    for k in (seg.left, seg.right):
        if k is not None:
            h.update(np.ascontiguousarray(video.annotated[k]).tobytes())
    return h.hexdigest()[:24]


def _agreement(f: torch.Tensor, b: torch.Tensor, n_classes: int) -> np.ndarray:
    """Per-class IoU of the forward and backward passes' argmax on the key grid, (B, K); NaN where absent."""
    fa, ba = f.argmax(1), b.argmax(1)
    out = np.full((f.shape[0], n_classes), np.nan, np.float32)
    for c in range(n_classes):
        inter = ((fa == c) & (ba == c)).flatten(1).sum(1).float()
        union = ((fa == c) | (ba == c)).flatten(1).sum(1).float()
        ok = union > 0
        out[ok.numpy(), c] = (inter[ok] / union[ok]).numpy()
    return out


def _margin(p: torch.Tensor) -> np.ndarray:
    """(B, K, h, w) probabilities -> (B, h, w) top minus runner-up: near 0 where two classes compete."""
    top = p.float().topk(2, dim=1).values
    return (top[:, 0] - top[:, 1]).cpu().numpy()


def _entropy(p: torch.Tensor) -> np.ndarray:
    p = p.float().clamp_min(1e-6)
    return (-(p * p.log()).sum(1).mean((1, 2))).numpy().astype(np.float32)


class VideoPropagator:
    """Runs the segments of one video with one engine."""

    def __init__(self, video: Video, engine: Engine, model_id: str):
        self.video, self.engine, self.model_id = video, engine, model_id
        self.n_classes = engine.n_classes
        self.size = (video.height, video.width)
        self.keyframes = video.annotated_frames()
        self._key_cache: dict[int, tuple[torch.Tensor, torch.Tensor]] = {}
        self._descriptors: dict[int, torch.Tensor] = {}

    def keyframe(self, t: int) -> tuple[torch.Tensor, torch.Tensor]:
        if t not in self._key_cache:
            keys, _ = self.engine.encode(self.video.frames[t : t + 1])
            value = self.engine.soft_labels(self.video.annotated[t], tuple(keys.shape[-2:]))
            self._key_cache[t] = (keys[0], value)
            self._descriptors[t] = torch.nn.functional.normalize(keys[0].mean((1, 2)), dim=0)
        return self._key_cache[t]

    def extra_keyframes(self, seg: Segment) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """Other keyframes most like this segment's own, for permanent memory."""
        n = self.engine.config.extra_keyframes
        own = [k for k in (seg.left, seg.right) if k is not None]
        others = [k for k in self.keyframes if k not in own]
        if not n or not others:
            return []
        for k in own + others:
            self.keyframe(k)
        target = sum(self._descriptors[k] for k in own)
        ranked = sorted(others, key=lambda k: -float(self._descriptors[k] @ target))
        return [self.keyframe(k) for k in ranked[:n]]

    def _batches(self, seg: Segment, reverse: bool):
        b = self.engine.config.batch
        starts = range(seg.first, seg.last + 1, b)
        for s in reversed(starts) if reverse else starts:
            e = min(s + b, seg.last + 1)
            frames = np.asarray(self.video.frames[s:e])
            keys, fine = self.engine.encode(frames[::-1].copy() if reverse else frames)
            yield s, e, keys, fine

    def run(self, seg: Segment):
        """Propagate one segment, writing its labels and signals; yields frames written per batch."""
        extra = self.extra_keyframes(seg)
        forward = backward = None
        if seg.left is not None:
            forward = self.engine.start_pass(*self.keyframe(seg.left), extra)
        if seg.right is not None:
            backward = self.engine.start_pass(*self.keyframe(seg.right), extra)
        if forward is not None and backward is not None:
            fwd_probs, fwd_sim = [], []
            for _, _, keys, _ in self._batches(seg, reverse=False):
                for key in keys:
                    r = forward.step(key)
                    fwd_probs.append(r.probs.half().cpu())
                    fwd_sim.append(float(r.similarity.mean()))
            span = seg.right - seg.left
            for s, e, keys, fine in self._batches(seg, reverse=True):
                rs = [backward.step(key) for key in keys]
                b = torch.stack([r.probs.cpu() for r in rs[::-1]])
                f = torch.stack(fwd_probs[s - seg.first : e - seg.first]).float()
                pos = torch.arange(s, e, dtype=torch.float32).sub(seg.left).div(span)
                fused = self.engine.fuse(f, b, pos)
                sim = (np.asarray(fwd_sim[s - seg.first : e - seg.first]) + np.array([float(r.similarity.mean()) for r in rs[::-1]])) / 2
                yield self._write(s, fused, fine.flip(0) if fine is not None else None, sim, _agreement(f, b, self.n_classes))
        else:
            one, reverse = (forward, False) if forward is not None else (backward, True)
            for s, e, keys, fine in self._batches(seg, reverse=reverse):
                rs = [one.step(key) for key in keys]
                if reverse:
                    rs, fine = rs[::-1], (fine.flip(0) if fine is not None else None)
                p = torch.stack([r.probs.cpu() for r in rs])
                agree = np.full((e - s, self.n_classes), np.nan, np.float32)
                yield self._write(s, p, fine, np.array([float(r.similarity.mean()) for r in rs]), agree)

    def _write(self, start: int, probs: torch.Tensor, fine, similarity: np.ndarray, agreement: np.ndarray) -> int:
        labels = self.engine.to_labels(probs, fine, self.size)
        self.video.save_propagated(start, labels)
        self.video.write_column("similarity", start, similarity.astype(np.float32))
        self.video.write_column("entropy", start, _entropy(probs))
        self.video.write_column("agreement", start, agreement)
        margin = _margin(probs)
        self.video.save_margin(start, margin)
        self.video.write_column("margin", start, margin.mean((1, 2)).astype(np.float32))
        return len(labels)


def propagate_steps(
    video: Video, config: PropagationConfig | None = None, engine: Engine | None = None, model_id: str = "intensity-keys", stop_after: int | None = None
) -> Generator[int, None, PropagationReport]:
    """Propagate ``video``'s keyframes to all its frames, yielding the number of frames done after each
    batch (for progress bars; stopping the generator cancels, and the next run resumes). Segments
    already done with the same keyframes and settings are skipped. ``stop_after`` segments is for
    tests of interrupted runs. Returns a :class:`PropagationReport`."""
    video.project.require_writable()
    config = config or PropagationConfig()
    keyframes = video.annotated_frames()
    if not keyframes:
        raise InputError(f"video {video.id!r} has no keyframes", video.project.path, "annotate at least one frame (napari, or `sonolabel keyframes import`)")
    engine = engine or Engine(config, len(video.project.palette))
    t0 = time.perf_counter()
    done_before = video.state(STATE_KEY, {}).get("segments", {})
    segments = plan_segments(video.n_frames, keyframes)
    runner = VideoPropagator(video, engine, model_id)
    done, skipped, written = {}, 0, 0
    for seg in segments:
        sig = _signature(video, seg, config, model_id)
        if done_before.get(seg.name, {}).get("signature") == sig:
            done[seg.name] = done_before[seg.name]
            skipped += 1
            yield seg.n_frames
            continue
        if stop_after is not None and len(done) - skipped >= stop_after:
            break
        for n in runner.run(seg):
            written += n
            yield n
        done[seg.name] = {"signature": sig, "at": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
        video.set_state(STATE_KEY, {"segments": {**done_before, **done}, "model": model_id, "config": config.to_dict()})
    # forget segments that no longer exist (keyframes added or removed)
    video.set_state(STATE_KEY, {"segments": done, "model": model_id, "config": config.to_dict(), "complete": len(done) == len(segments)})
    return PropagationReport(video.id, len(done) - skipped, skipped, written, time.perf_counter() - t0)


def propagate_video(
    video: Video,
    config: PropagationConfig | None = None,
    engine: Engine | None = None,
    model_id: str = "intensity-keys",
    progress: Callable[[int], None] | None = None,
    stop_after: int | None = None,
) -> PropagationReport:
    """Run :func:`propagate_steps` to the end, calling ``progress(n_frames)`` after each batch."""
    steps = propagate_steps(video, config, engine, model_id, stop_after)
    while True:
        try:
            n = next(steps)
        except StopIteration as stop:
            return stop.value
        if progress is not None:
            progress(n)
