"""Synthetic finger kinematics: isolated flexions of each finger with rests between, as in enrollment."""

from __future__ import annotations

import numpy as np

FINGERS = ("thumb", "index", "middle", "ring", "little")
# total flexion theta = theta_MP + theta_PIP at full flexion, degrees
PEAK = np.array([75.0, 150.0, 155.0, 150.0, 140.0])
# involuntary co-flexion of neighbouring fingers (row: moving finger)
COUPLING = np.array(
    [
        [1.00, 0.05, 0.00, 0.00, 0.00],
        [0.03, 1.00, 0.15, 0.05, 0.02],
        [0.00, 0.12, 1.00, 0.20, 0.08],
        [0.00, 0.04, 0.25, 1.00, 0.35],
        [0.00, 0.02, 0.08, 0.40, 1.00],
    ]
)


def _ramp(n: int) -> np.ndarray:
    return 0.5 - 0.5 * np.cos(np.linspace(0, np.pi, max(n, 2)))


def finger_kinematics(n_frames: int, fps: float, rng: np.random.Generator) -> np.ndarray:
    """(n_frames, 5) total flexion angles in degrees: rest, flex one finger, release, rest, next finger."""
    theta = np.zeros((n_frames, 5))
    peak = PEAK * rng.uniform(0.8, 1.05, 5)
    t = int(rng.uniform(1.0, 2.5) * fps)
    finger = int(rng.integers(5))
    while t < n_frames:
        up, hold, down = (int(rng.uniform(a, b) * fps) for a, b in ((0.4, 0.8), (0.4, 1.2), (0.4, 0.8)))
        amount = rng.uniform(0.6, 1.0)
        shape = np.concatenate([_ramp(up), np.ones(hold), _ramp(down)[::-1]])
        seg = slice(t, min(t + len(shape), n_frames))
        theta[seg] += np.outer(shape[: seg.stop - seg.start], amount * peak[finger] * COUPLING[finger])
        t += len(shape) + int(rng.uniform(0.8, 2.0) * fps)
        finger = (finger + 1) % 5
    tremor = rng.normal(0, 0.6, theta.shape)
    return np.clip(theta + tremor, 0, None).astype(np.float32)
