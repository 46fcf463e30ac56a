"""Which frames to annotate next.

Before any keyframe: evenly spaced frames. Then the frame that halves the longest reach of
propagation (:func:`widest_gaps`): a frame between two keyframes is read from both and lies at most
half their gap from one, a frame before the first or after the last is read from one side only.
Propagation's error grows with the distance from a keyframe, so this is where a keyframe cuts the
most error, and one at a time it rebuilds an even placement around the keyframes already drawn.
Two rules that looked at the frames were measured against it and lost on the phantom
(docs/annotation-effort.md): the frames least like the keyframes (after XMem++'s
annotation-candidate selection) and the frames where propagation's
margin was lowest.
"""

from __future__ import annotations

from ..store import Video
from .config import FINE_KEYFRAME_GAP


def evenly_spaced(n_frames: int, every: int = 200, count: int | None = None) -> list[int]:
    """``count`` frames each in the middle of an equal share of the video; without ``count``, every
    ``every``-th frame from the first (and the last, when the tail is long)."""
    if count:
        return sorted({int((i + 0.5) * n_frames / count) for i in range(count)})
    grid = list(range(0, n_frames, every))
    if grid[-1] != n_frames - 1 and n_frames - 1 - grid[-1] > every // 2:
        grid.append(n_frames - 1)
    return grid


def suggest_keyframes(video: Video, every: int = 200, count: int | None = None) -> list[int]:
    """Frames to annotate, best first: ``count`` of them, or enough for a keyframe every ``every`` frames
    (at least one). Evenly spaced before any keyframe, then :func:`widest_gaps`."""
    n = video.n_frames
    keys = video.annotated_frames()
    if not keys:
        return evenly_spaced(n, every, count)
    count = count or max(1, n // every - len(keys))
    return widest_gaps(n, keys, count)


def widest_gaps(n_frames: int, keyframes: list[int], count: int) -> list[int]:
    """``count`` frames, picked one at a time, each splitting the stretch with the longest reach into two of
    equal reach (:func:`longest_reach`): the middle of an inner gap, and a third of the way in from the
    video's first frame (or two thirds towards its last) for an end stretch."""
    keys, picked = sorted(set(keyframes)), []
    for _ in range(count):
        stretches = _stretches(n_frames, keys)
        if not stretches:
            return picked
        _, t = max(stretches, key=lambda r: r[0])
        picked.append(t)
        keys = sorted({*keys, t})
    return picked


def longest_reach(n_frames: int, keyframes: list[int]) -> float:
    """How far the farthest frame lies from a keyframe that reads it: half the gap between two keyframes,
    the whole length before the first keyframe or after the last (``n_frames`` without keyframes)."""
    keys = sorted(set(keyframes))
    return max((r for r, _ in _stretches(n_frames, keys)), default=0.0) if keys else float(n_frames)


def ready_to_finish(n_frames: int, keyframes: list[int], gap: int = FINE_KEYFRAME_GAP) -> bool:
    """Whether the keyframes are dense enough for a final fine pass (``propagate --fine``, napari's *Finish*):
    no frame farther than half of ``gap`` from a keyframe that reads it. Measured on phantom recordings,
    a keyframe that halves a gap of that length removes fewer frames to fix after a fine pass than it costs
    to draw (``benchmarks/keyframe_reach.py``), so the suggestions have done their work."""
    return bool(keyframes) and longest_reach(n_frames, keyframes) <= gap / 2


def _stretches(n_frames: int, keys: list[int]) -> list[tuple[float, int]]:
    """(reach, the frame that halves it) for every stretch of frames that are not keyframes."""
    if not keys:
        return []
    stretches = [(keys[0], keys[0] // 3)] if keys[0] > 0 else []
    stretches += [((b - a) / 2, (a + b) // 2) for a, b in zip(keys[:-1], keys[1:]) if b - a > 1]
    last = n_frames - 1
    if keys[-1] < last:
        stretches.append((last - keys[-1], keys[-1] + -(-2 * (last - keys[-1]) // 3)))
    return stretches
