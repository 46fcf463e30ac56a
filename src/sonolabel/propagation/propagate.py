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
import time
from dataclasses import dataclass, replace
from typing import Callable, Generator

import numpy as np
import torch

from .._tensors import channel_argmax
from ..errors import InputError
from ..store import Video
from ..store.layout import PROPAGATION_STATE
from .config import PropagationConfig
from .engine import Engine
from .passes import PassCache, PassRecord, digest, pass_key

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
    first_write_s: float | None = None  # from the start to the first frame written (after a correction: next to it)


def _signature(video: Video, seg: Segment, config: PropagationConfig, model_id: str) -> str:
    """What a segment's labels depend on besides the working size and the label scale, which its state
    records beside it (see :func:`_kept`)."""
    return _hashed(video, seg, f"{replace(config, working_size=0).fingerprint()}{model_id}|{seg.name}|{video.n_frames}")


def _former_signature(video: Video, seg: Segment, config: PropagationConfig, model_id: str, scale: int) -> str:
    """The signature of segments recorded before they kept their working size (every setting and the
    label scale hashed in), so that a project propagated then is not read again for nothing."""
    return _hashed(video, seg, f"{config.fingerprint()}{model_id}|{seg.name}|{video.n_frames}|{scale}")


def _hashed(video: Video, seg: Segment, settings: str) -> str:
    h = hashlib.sha256(settings.encode())
    for k in (seg.left, seg.right):
        if k is not None:
            h.update(np.ascontiguousarray(video.annotated[k]).tobytes())
    return h.hexdigest()[:24]


def _kept(done: dict, signature: str, runner: "VideoPropagator", former: Callable[[], str]) -> bool:
    """Whether a segment's stored labels stand: read with the same keyframes and settings, at this working
    size or a finer one, and at the label scale the present keyframes give at that size. A finer reading is
    kept so that the final fine pass (:data:`~.config.FINE_WORKING_SIZE`) survives the correction loop's
    default-size runs, which then redo only the segments a correction touches. A segment recorded without
    its working size stands if ``former()`` (:func:`_former_signature`) matches."""
    size, ours = done.get("working_size"), runner.engine.config.working_size
    if size is None:
        return done.get("signature") is not None and done.get("signature") == former()
    if done.get("signature") != signature or size < ours:
        return False
    return done.get("scale") == runner.scale_at(size)


def _agreement(f: torch.Tensor, b: torch.Tensor, n_classes: int) -> np.ndarray:
    """Per-class IoU of the forward and backward passes' argmax on the label grid, (B, K); NaN where absent."""
    fa, ba = channel_argmax(f), channel_argmax(b)
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


LEAD = 8  # frames in the first batch a pass writes, so the frames next to a correction show at once
KEEP_KEYS = 600  # segments up to this long keep their frames' keys between the two passes (encoded once)


class VideoPropagator:
    """Runs the segments of one video with one engine, taking unchanged passes from ``cache``."""

    def __init__(self, video: Video, engine: Engine, model_id: str, cache: PassCache | None = None):
        self.video, self.engine, self.model_id, self.cache = video, engine, model_id, cache
        self.n_classes = engine.n_classes
        self.size = (video.height, video.width)
        self.keyframes = video.annotated_frames()
        self._masks = {k: np.asarray(video.annotated[k]) for k in self.keyframes}  # read once: scale, values, digests
        self._scales: dict[int, int] = {}  # working size -> label scale of these keyframes
        self.scale = self.scale_at(engine.config.working_size)
        self._key_cache: dict[int, tuple[torch.Tensor, torch.Tensor]] = {}  # keyframe -> (key, label value)
        self._descriptors: dict[int, torch.Tensor] = {}
        self._digests: dict[int, str] = {}
        self._frame_keys: dict[int, torch.Tensor] = {}  # this segment's, encoded once
        self._settings = f"{model_id}|{video.n_frames}|{self.scale}|{engine.config.fingerprint()}"

    def scale_at(self, working_size: int) -> int:
        """The label scale of this video's keyframes at ``working_size`` (:meth:`Engine.label_scale`)."""
        if working_size not in self._scales:
            self._scales[working_size] = self.engine.label_scale(list(self._masks.values()), working_size)
        return self._scales[working_size]

    def keyframe(self, t: int) -> tuple[torch.Tensor, torch.Tensor]:
        if t not in self._key_cache:
            keys = self.engine.encode(self.video.frames[t : t + 1])
            value = self.engine.soft_labels(self._masks[t], tuple(keys.shape[-2:]), self.scale)
            self._key_cache[t] = (keys[0], value)
            self._descriptors[t] = torch.nn.functional.normalize(keys[0].mean((1, 2)), dim=0)
        return self._key_cache[t]

    def extra_keyframes(self, start: int, reverse: bool) -> list[int]:
        """Keyframes the pass from ``start`` has already passed (before it for a forward pass, after it for a
        backward one), most like ``start`` first, for permanent memory. Only those: a keyframe added or
        corrected ahead of a pass leaves it unchanged, so a correction need not read it again."""
        n = self.engine.config.extra_keyframes
        behind = [k for k in self.keyframes if (k > start if reverse else k < start)]
        if not n or not behind:
            return []
        for k in (start, *behind):
            self.keyframe(k)
        return sorted(behind, key=lambda k: -float(self._descriptors[k] @ self._descriptors[start]))[:n]

    def _pass_key(self, start: int, reverse: bool, extras: list[int]) -> str:
        for k in (start, *extras):
            if k not in self._digests:
                self._digests[k] = digest(self._masks[k])
        return pass_key(self._settings, start, reverse, self._digests, extras)

    def spans(self, first: int, last: int, reverse: bool) -> list[tuple[int, int]]:
        """(s, e) frame ranges covering ``first..last`` in pass order; the first is short (:data:`LEAD`)."""
        b, out = self.engine.config.batch, []
        if reverse:
            e = last + 1
            while e > first:
                s = max(first, e - (LEAD if not out else b))
                out.append((s, e))
                e = s
        else:
            s = first
            while s <= last:
                e = min(last + 1, s + (LEAD if not out else b))
                out.append((s, e))
                s = e
        return out

    def encoded(self, s: int, e: int, keep: bool = False) -> torch.Tensor:
        """Keys of frames ``s..e-1`` (in frame order), encoded once per segment when ``keep``."""
        if all(t in self._frame_keys for t in range(s, e)):
            return torch.stack([self._frame_keys[t] for t in range(s, e)])
        keys = self.engine.encode(np.asarray(self.video.frames[s:e]))
        if keep:
            for i, t in enumerate(range(s, e)):
                self._frame_keys[t] = keys[i]
        return keys

    def read_pass(self, seg: Segment, start: int, reverse: bool, extras: list[int] = (), keep: bool = False):
        """One pass over ``seg`` from keyframe ``start`` with ``extras`` in permanent memory; yields
        ``(s, e, probs, similarity)`` per batch, each in frame order."""
        one = self.engine.start_pass(*self.keyframe(start), [self.keyframe(k) for k in extras])
        for s, e in self.spans(seg.first, seg.last, reverse):
            keys = self.encoded(s, e, keep)
            rs = one.run(keys.flip(0) if reverse else keys)
            if reverse:
                rs = rs[::-1]
            probs = torch.stack([r.probs.cpu() for r in rs]).half()
            yield s, e, probs, np.array([float(r.similarity.mean()) for r in rs], np.float32)

    def _cached(self, key: str, seg: Segment, start: int, reverse: bool):
        """A finished pass over ``seg`` from the cache, as frame-ordered (probs, similarity), or None."""
        record = self.cache.get(key, seg.n_frames) if self.cache is not None else None
        if record is None:
            return None
        idx = [abs(t - start) - 1 for t in range(seg.first, seg.last + 1)]
        return torch.stack([record.probs[i] for i in idx]), np.array([record.similarity[i] for i in idx], np.float32)

    def _remember(self, key: str, start: int, probs: torch.Tensor, sims: np.ndarray, first: int) -> None:
        if self.cache is None:
            return
        order = np.argsort([abs(first + i - start) for i in range(len(probs))])
        self.cache.put(key, PassRecord([probs[i] for i in order], [float(sims[i]) for i in order]))

    def run(self, seg: Segment):
        """Propagate one segment, writing its labels and signals; yields frames written per batch.

        Between two keyframes the pass that is not in the cache (the one from a corrected keyframe)
        runs last and writes as it goes, so the frames next to the correction are written first."""
        if seg.left is None or seg.right is None:
            start, reverse = (seg.left, False) if seg.left is not None else (seg.right, True)
            for s, e, probs, sims in self.read_pass(seg, start, reverse, self.extra_keyframes(start, reverse)):
                yield self._write(s, probs.float(), sims, np.full((e - s, self.n_classes), np.nan, np.float32))
            return
        starts = {False: seg.left, True: seg.right}
        extras = {rev: self.extra_keyframes(starts[rev], rev) for rev in (False, True)}
        keys = {rev: self._pass_key(starts[rev], rev, extras[rev]) for rev in (False, True)}
        cached = {rev: self._cached(keys[rev], seg, starts[rev], rev) for rev in (False, True)}
        stream = not (cached[True] is not None and cached[False] is None)  # True: the backward pass writes
        other = not stream
        if cached[other] is None:
            parts = list(self.read_pass(seg, starts[other], other, extras[other], keep=seg.n_frames <= KEEP_KEYS))
            parts.sort(key=lambda p: p[0])
            other_probs, other_sims = torch.cat([p[2] for p in parts]), np.concatenate([p[3] for p in parts])
            self._remember(keys[other], starts[other], other_probs, other_sims, seg.first)
        else:
            other_probs, other_sims = cached[other]
        span, got = seg.right - seg.left, []
        for s, e, probs, sims in self.read_pass(seg, starts[stream], stream, extras[stream]):
            got.append((s, probs, sims))
            o = other_probs[s - seg.first : e - seg.first].float()
            f, b = (o, probs.float()) if stream else (probs.float(), o)
            pos = torch.arange(s, e, dtype=torch.float32).sub(seg.left).div(span)
            sim = (sims + other_sims[s - seg.first : e - seg.first]) / 2
            yield self._write(s, self.engine.fuse(f, b, pos), sim, _agreement(f, b, self.n_classes))
        for t in range(seg.first, seg.last + 1):
            self._frame_keys.pop(t, None)
        got.sort(key=lambda g: g[0])
        self._remember(keys[stream], starts[stream], torch.cat([g[1] for g in got]), np.concatenate([g[2] for g in got]), seg.first)

    def _write(self, start: int, probs: torch.Tensor, similarity: np.ndarray, agreement: np.ndarray) -> int:
        labels = self.engine.to_labels(probs, self.size)
        self.video.save_propagated(start, labels)
        self.video.write_column("similarity", start, similarity.astype(np.float32))
        self.video.write_column("entropy", start, _entropy(probs))
        self.video.write_column("agreement", start, agreement)
        margin = _margin(probs)
        self.video.save_margin(start, margin)
        self.video.write_column("margin", start, margin.mean((1, 2)).astype(np.float32))
        return len(labels)


def propagate_steps(
    video: Video,
    config: PropagationConfig | None = None,
    engine: Engine | None = None,
    model_id: str = "intensity-keys",
    stop_after: int | None = None,
    cache: PassCache | None = None,
) -> Generator[int, None, PropagationReport]:
    """Propagate ``video``'s keyframes to all its frames, yielding the number of frames done after each
    batch (for progress bars; stopping the generator cancels, and the next run resumes). Segments
    already done with the same keyframes and settings are skipped. Two segments that meet at a
    keyframe run batch by batch in turn, so after a correction both sides of it update first; with a
    ``cache`` (:class:`PassCache`, held between runs by a session) the passes a correction leaves
    unchanged are not read again. ``stop_after`` segments is for tests of interrupted runs. Returns
    a :class:`PropagationReport`."""
    video.project.require_writable()
    config = config or PropagationConfig()
    keyframes = video.annotated_frames()
    if not keyframes:
        raise InputError(f"video {video.id!r} has no keyframes", video.project.path, "annotate at least one frame (napari, or `sonolabel keyframes import`)")
    engine = engine or Engine(config, len(video.project.palette))
    t0 = time.perf_counter()
    done_before = video.state(STATE_KEY, {}).get("segments", {})
    segments = plan_segments(video.n_frames, keyframes)
    runner = VideoPropagator(video, engine, model_id, cache)
    done, skipped, written, pending, first_write = {}, 0, 0, [], None
    for seg in segments:
        sig = _signature(video, seg, config, model_id)
        if _kept(done_before.get(seg.name, {}), sig, runner, lambda: _former_signature(video, seg, config, model_id, runner.scale)):
            done[seg.name] = done_before[seg.name]
            skipped += 1
            yield seg.n_frames
        else:
            pending.append((seg, sig))
    if stop_after is not None:
        pending = pending[:stop_after]
    while pending:
        pair = 2 if len(pending) > 1 and pending[0][0].right is not None and pending[0][0].right == pending[1][0].left else 1
        group, pending = pending[:pair], pending[pair:]
        runs = {i: runner.run(seg) for i, (seg, _) in enumerate(group)}
        while runs:
            for i in list(runs):
                try:
                    n = next(runs[i])
                except StopIteration:
                    del runs[i]
                    seg, sig = group[i]
                    read_at = {"working_size": engine.config.working_size, "scale": runner.scale}
                    done[seg.name] = {"signature": sig, **read_at, "at": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
                    video.set_state(STATE_KEY, {"segments": {**done_before, **done}, "model": model_id, "config": config.to_dict()})
                else:
                    written += n
                    first_write = first_write if first_write is not None else time.perf_counter() - t0
                    yield n
    # forget segments that no longer exist (keyframes added or removed)
    video.set_state(STATE_KEY, {"segments": done, "model": model_id, "config": config.to_dict(), "complete": len(done) == len(segments)})
    return PropagationReport(video.id, len(done) - skipped, skipped, written, time.perf_counter() - t0, first_write_s=first_write)


def propagate_video(
    video: Video,
    config: PropagationConfig | None = None,
    engine: Engine | None = None,
    model_id: str = "intensity-keys",
    progress: Callable[[int], None] | None = None,
    stop_after: int | None = None,
    cache: PassCache | None = None,
) -> PropagationReport:
    """Run :func:`propagate_steps` to the end, calling ``progress(n_frames)`` after each batch."""
    steps = propagate_steps(video, config, engine, model_id, stop_after, cache)
    while True:
        try:
            n = next(steps)
        except StopIteration as stop:
            return stop.value
        if progress is not None:
            progress(n)
