"""Which frames to annotate next.

The keyframes are done when they are dense enough for the final fine pass (:func:`ready_to_finish`:
no frame farther than half of ``FINE_KEYFRAME_GAP`` from a keyframe that reads it). :func:`finish_plan`
names the fewest frames that get there: every stretch that reaches too far is split evenly, so a
2,000-frame video needs 4 keyframes (250, 750, 1250, 1750) where halving the longest reach one
keyframe at a time needs 7. Past that point, or for more frames than the plan holds, the frame that
halves the longest reach of propagation (:func:`widest_gaps`): a frame between two keyframes is read
from both and lies at most half their gap from one, a frame before the first or after the last is
read from one side only. Propagation's error grows with the distance from a keyframe, so this is
where a keyframe cuts the most error. Two rules that looked at the frames were measured against it
and lost on the phantom (docs/annotation-effort.md): the frames least like the keyframes (after
XMem++'s annotation-candidate selection) and the frames where propagation's margin was lowest.
"""

from __future__ import annotations

import math

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


def suggest_keyframes(video: Video, count: int | None = None, gap: int = FINE_KEYFRAME_GAP) -> list[int]:
    """Frames to annotate, best first: the :func:`finish_plan` for keyframes at most ``gap`` apart, or
    ``count`` frames (the plan's first, then :func:`widest_gaps`)."""
    return keyframe_advice(video, count, gap)[0]


def keyframe_advice(video: Video, count: int | None = None, gap: int = FINE_KEYFRAME_GAP) -> tuple[list[int], bool]:
    """What the front ends show, from one read of the video's keyframes: :func:`suggest_keyframes` and
    whether the keyframes are already dense enough to finish (:func:`ready_to_finish`)."""
    n, keys = video.n_frames, video.annotated_frames()
    plan = finish_plan(n, keys, gap)
    if count is not None:
        picked = plan[:count]
        plan = picked + widest_gaps(n, [*keys, *picked], count - len(picked))
    return plan, ready_to_finish(n, keys, gap)


def finish_plan(n_frames: int, keyframes: list[int], gap: int = FINE_KEYFRAME_GAP) -> list[int]:
    """The fewest frames that, with ``keyframes``, leave no frame farther than ``gap / 2`` from a keyframe
    that reads it (:func:`ready_to_finish`), best first.

    Each stretch that reaches too far is split evenly into as few parts as the rule allows: an inner gap
    into parts of at most ``gap``, an end stretch into parts of at most ``gap`` and an end part of at most
    ``gap / 2`` (it is read from one side). Without keyframes, evenly spaced frames, the one nearest the
    middle first. Then the stretch that reaches farthest first, and in it the frame next to a keyframe,
    whose draft propagation reads from nearest."""
    keys = sorted(set(keyframes))
    if not keys:
        plan = evenly_spaced(n_frames, count=-(-n_frames // gap))
        return sorted(plan, key=lambda t: abs(2 * t - (n_frames - 1)))
    last, found = n_frames - 1, []
    if keys[0] > gap / 2:
        found.append((keys[0], [keys[0] - t for t in _end_split(keys[0], gap)]))
    for a, b in zip(keys[:-1], keys[1:]):
        if b - a > gap:
            parts = -(-(b - a) // gap)
            found.append(((b - a) / 2, [a + round(j * (b - a) / parts) for j in range(1, parts)]))
    if last - keys[-1] > gap / 2:
        found.append((last - keys[-1], [keys[-1] + t for t in _end_split(last - keys[-1], gap)]))
    found.sort(key=lambda r: -r[0])
    return [t for _, frames in found for t in frames]


def _end_split(length: int, gap: int) -> list[int]:
    """Offsets from the keyframe, nearest first, that split an end stretch of ``length`` frames into parts of
    at most ``gap`` and a last part of at most ``gap / 2``, all of equal reach."""
    parts = math.ceil((length - gap / 2) / gap)
    step = length / (parts + 0.5)
    return [length - math.floor(length - j * step) for j in range(1, parts + 1)]


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
