"""Harder phantom recordings: the motions that break frame-to-frame tracking.

Each function changes a :class:`PhantomSequence` in place and returns it; render it with a
margin wide enough for the motion (:data:`WIDE_MARGIN`), so new tissue, not a smeared border,
enters the view.
"""

from __future__ import annotations

import numpy as np

from .render import PhantomSequence

WIDE_MARGIN = 128  # px of tissue beyond each side of the view: room for slips and sweeps


def probe_slips(seq: PhantomSequence, rng: np.random.Generator, count: int = 3, size: tuple[float, float] = (30, 60)) -> list[int]:
    """The probe slips ``count`` times between two frames, each by ``size`` px in a random direction
    (mostly lateral, as a hand-held probe slides along the forearm); slips alternate in sign so the view
    stays within the tissue. Returns the frames where a slip happens."""
    n = seq.n_frames
    at = np.sort(rng.choice(np.arange(n // 8, n - n // 8), size=count, replace=False))
    sign = rng.choice([-1, 1])
    for i, t in enumerate(at):
        d = rng.uniform(*size)
        angle = rng.uniform(-0.35, 0.35)  # radians off the lateral axis
        seq.drift[t:, 0] += sign * (-1) ** i * d * np.cos(angle)
        seq.drift[t:, 1] += d * np.sin(angle) * 0.5
    return [int(t) for t in at]


def sweep(seq: PhantomSequence, rng: np.random.Generator, travel: float = 90.0, degrees: float = 12.0, period: float = 300.0) -> None:
    """The view translates back and forth, up to ``travel`` px from where it started, and rocks up to
    ``degrees`` about its centre, with ``period`` frames per cycle (a probe swept over the forearm)."""
    t = np.arange(seq.n_frames)
    ph = rng.uniform(0, 2 * np.pi, 2)
    seq.drift[:, 0] += travel / 2 * (np.sin(2 * np.pi * t / period + ph[0]) - np.sin(ph[0]))
    seq.rotation = degrees / 2 * (np.sin(2 * np.pi * t / (period * 1.3) + ph[1]) - np.sin(ph[1]))


def fast_structure(seq: PhantomSequence, rng: np.random.Generator, name: str = "FDS", distance: float = 60.0, frames: int = 6, every: int = 150) -> list[int]:
    """Structure ``name`` darts ``distance`` px sideways within ``frames`` frames and back, every
    ``every`` frames (a tendon pulled by a quick finger flexion). Returns the frames where it starts."""
    n = seq.n_frames
    x = np.zeros(n)
    starts = list(range(int(rng.integers(every // 3, every)), n - 4 * frames, every))
    ramp = np.linspace(0, 1, frames + 1)[1:]
    for s in starts:
        hold = int(rng.integers(frames, 4 * frames))
        out = slice(s, s + frames)
        x[out] = distance * ramp[: len(x[out])]
        x[s + frames : s + frames + hold] = distance
        back = slice(s + frames + hold, s + 2 * frames + hold)
        x[back] = distance * (1 - ramp[: len(x[back])])
    seq.shifts = {**(seq.shifts or {}), name: np.stack([x, np.zeros(n)], 1)}
    return starts


def thin_bands(seq: PhantomSequence, rng: np.random.Generator, thickness: tuple[float, float] = (8.0, 15.0)) -> None:
    """FCR and FCU become thin bright bands ``thickness`` px thick, like aponeuroses and fascia: one over
    FDS, one between FDS and FDP. Their labels stay 4 and 5, so the palette is unchanged."""
    by_name = {s.name: s for s in seq.anatomy.structures}
    fds, fdp = by_name["FDS"], by_name["FDP"]
    top = by_name["FCR"]
    top.cx, top.rx = fds.cx, fds.rx * 1.15
    top.ry = rng.uniform(*thickness) / 2
    top.cy = fds.cy - fds.ry - top.ry - 10
    mid = by_name["FCU"]
    mid.cx, mid.rx = (fds.cx + fdp.cx) / 2, (fds.rx + fdp.rx) / 2
    mid.ry = rng.uniform(*thickness) / 2
    mid.cy = (fds.cy + fds.ry + fdp.cy - fdp.ry) / 2
    for s in (top, mid):
        s.harmonics[:, 0] = rng.uniform(0, 0.01, len(s.harmonics))
        s.echo = rng.uniform(1.4, 1.9)  # hyperechoic, as a tendon sheet


def leave_plane(
    seq: PhantomSequence, rng: np.random.Generator, name: str = "FCR", taper: tuple[int, int] = (20, 40), hold: tuple[int, int] = (40, 120)
) -> list[tuple[int, int]]:
    """Muscle ``name`` leaves the imaging plane and comes back: its cross-section shrinks to nothing over
    ``taper`` frames, stays out for ``hold`` frames and grows back (the probe moving along the forearm past
    the end of the muscle belly, where it becomes a tendon). Once, in the middle half of the recording.
    Returns the (first, stop) frames during which it is not whole."""
    n = seq.n_frames
    down, up = (int(x) for x in rng.integers(*taper, size=2))
    gap = int(rng.integers(*hold))
    start = int(rng.integers(n // 4, max(n // 4 + 1, 3 * n // 4 - down - gap - up)))
    presence = np.ones(n)
    presence[start : start + down] = np.linspace(1, 0, down + 1)[1:]
    presence[start + down : start + down + gap] = 0.0
    back = presence[start + down + gap : start + down + gap + up]
    back[:] = np.linspace(0, 1, up + 1)[1:][: len(back)]
    seq.presence = {**(seq.presence or {}), name: presence}
    return [(start, min(n, start + down + gap + up))]
