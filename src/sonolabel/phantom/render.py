"""Render phantom B-mode frames and their ground-truth labels.

Tissue lives on a fixed canvas (tissue coordinates); every frame is a smooth backward warp of
that canvas: probe drift and jitter, plus muscles that bulge and slide with the flexion of the
fingers that drive them. The finger flexors (FDS, FDP) also bulge locally in one compartment per
finger, laid out from the radial side (index) to the ulnar side (little) as in a real forearm,
so which finger moved is visible, not only how much. Speckle is a filtered complex field on the same canvas, so it moves
with the tissue; it is slowly rotated towards a second field so it also partly decorrelates.
Bones get a bright cortex on their upper surface and cast an acoustic shadow below.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator

import numpy as np
import torch
import torch.nn.functional as F
from scipy import ndimage

from .anatomy import Anatomy, make_anatomy, radial, rasterize
from .kinematics import PEAK, finger_kinematics

SIZE = 480
MARGIN = 32
COMPARTMENT_MUSCLES = ("FDS", "FDP")
COMPARTMENTS = {1: -0.5, 2: -0.17, 3: 0.17, 4: 0.5}  # finger -> centre offset in muscle half-widths (radial < 0)


@dataclass
class PhantomSequence:
    """One recording: subject anatomy, kinematics and the motion that drives every frame."""

    anatomy: Anatomy
    kinematics: np.ndarray  # (T, 5) degrees
    drift: np.ndarray  # (T, 2) probe translation in px (x, y)
    gain_db: np.ndarray  # (T,)
    phase: np.ndarray  # (T,) speckle decorrelation angle
    seed: int
    fps: float
    rotation: np.ndarray | None = None  # (T,) view rotation in degrees about the image centre (probe rocking)
    shifts: dict[str, np.ndarray] | None = None  # structure name -> (T, 2) extra motion in px (x, y), with its surroundings
    presence: dict[str, np.ndarray] | None = None  # structure name -> (T,) its cross-section's scale in the plane (1 whole, 0 gone)

    @property
    def n_frames(self) -> int:
        return len(self.kinematics)


def _smooth_walk(rng: np.random.Generator, n: int, step: float, sigma: float, limit: float) -> np.ndarray:
    walk = np.cumsum(rng.normal(0, step, n))
    walk = ndimage.gaussian_filter1d(walk, sigma) if n > 1 else walk
    return np.clip(walk - walk[0], -limit, limit)


def make_sequence(subject_seed: int, trial_seed: int, n_frames: int, fps: float = 20.0) -> PhantomSequence:
    """A subject's anatomy (from ``subject_seed``) performing one trial (``trial_seed``)."""
    anatomy = make_anatomy(np.random.default_rng(subject_seed))
    rng = np.random.default_rng([subject_seed, trial_seed])
    drift = np.stack([_smooth_walk(rng, n_frames, 0.35, 12, 14), _smooth_walk(rng, n_frames, 0.15, 12, 5)], 1)
    drift += rng.normal(0, 0.35, drift.shape)  # hand-held jitter
    gain = _smooth_walk(rng, n_frames, 0.08, 30, 3.0)
    for t in rng.integers(0, max(n_frames, 1), size=max(1, n_frames // 1500)):  # an occasional gain change
        gain[t:] += rng.choice([-2.0, 2.0])
    phase = np.cumsum(rng.normal(0.015, 0.02, n_frames))
    return PhantomSequence(anatomy, finger_kinematics(n_frames, fps, rng), drift, gain, phase, subject_seed, fps)


class PhantomRenderer:
    """Renders frames of one :class:`PhantomSequence`; tissue maps are built once."""

    def __init__(self, seq: PhantomSequence, margin: int = MARGIN):
        """``margin``: tissue drawn beyond each side of the view, in px; views that move further than it
        (probe slips, sweeps) need a wider one."""
        self.seq, self.margin = seq, margin
        a = seq.anatomy
        rng = np.random.default_rng([seq.seed, 7])
        labels, fascia = rasterize(a, SIZE, margin)
        n = labels.shape[0]
        echo = np.full((n, n), a.background_echo, np.float32)
        yy = np.arange(n)[:, None] - margin
        echo[np.broadcast_to(yy < a.fat_thickness, echo.shape)] *= 0.55  # hypoechoic subcutaneous fat
        texture = ndimage.gaussian_filter(rng.normal(0, 1, (n, n)), 5).astype(np.float32)
        texture /= texture.std() + 1e-6
        scatter = ndimage.gaussian_filter((rng.random((n, n)) < 0.004).astype(np.float32), 1.2) * 9.0
        for s in a.structures:
            m = labels == s.label
            echo[m] = s.echo * (0.25 if s.is_bone else 0.8)
            if not s.is_bone:  # muscle: fascicle texture and sparse bright septa ("starry night")
                echo[m] *= np.clip(1.0 + 0.25 * texture[m] + scatter[m], 0.3, None)
        echo += a.fascia_gain * fascia
        psf = (1.0, 2.2)  # axial, lateral speckle size
        fields = [ndimage.gaussian_filter(rng.normal(0, 1, (n, n)), psf) for _ in range(4)]
        tissue = np.stack([*fields, echo]).astype(np.float32)
        tissue[:4] /= np.sqrt((tissue[:4] ** 2).mean()) + 1e-6
        self.tissue = torch.from_numpy(tissue)[None]
        self.tissue_labels = torch.from_numpy(labels.astype(np.float32))[None, None]
        # a structure leaving the plane: what fills its place (the surrounding tissue's echo) and where it lies
        self.vacated = np.float32(a.background_echo) * np.clip(1.0 + 0.25 * texture, 0.3, None)
        self.leaving = {}
        for s in a.structures:
            if seq.presence and s.name in seq.presence:  # its own fascia: the band around it that no other structure shares
                own, others = labels == s.label, (labels > 0) & (labels != s.label)
                band = ndimage.binary_dilation(own, iterations=5) & ~own & ~ndimage.binary_dilation(others, iterations=5)
                self.leaving[s.name] = (s.label, radial(s, SIZE, margin), np.where(band, a.fascia_gain * fascia, 0).astype(np.float32))
        self.bone_labels = [s.label for s in a.structures if s.is_bone]
        self.muscles = [s for s in a.structures if not s.is_bone]
        py, px = np.mgrid[0:SIZE, 0:SIZE].astype(np.float32)
        self.px, self.py = px, py
        self.weights = [np.exp(-0.5 * (((px - s.cx) / (1.3 * s.rx)) ** 2 + ((py - s.cy) / (1.3 * s.ry)) ** 2)) for s in self.muscles]
        self.compartments = self._compartments(np.random.default_rng([seq.seed, 11]))
        depth = np.arange(SIZE, dtype=np.float32)[:, None]
        self.depth_gain = (np.exp(-0.0022 * depth) * (1 + 0.0012 * depth)).astype(np.float32)

    def _compartments(self, rng: np.random.Generator) -> list[tuple[int, float, float, np.ndarray]]:
        """(finger, centre x, centre y, weight map) of each digit compartment of the finger flexors."""
        out = []
        for s in self.muscles:
            if s.name not in COMPARTMENT_MUSCLES:
                continue
            for f, offset in COMPARTMENTS.items():
                cx = s.cx + (offset + rng.normal(0, 0.06)) * s.rx
                w = np.exp(-0.5 * (((self.px - cx) / (0.35 * s.rx)) ** 2 + ((self.py - s.cy) / (0.8 * s.ry)) ** 2))
                out.append((f, cx, s.cy, w.astype(np.float32)))
        return out

    def _grid(self, t: int) -> torch.Tensor:
        """Tissue coordinates sampled by every image pixel of frame ``t``, normalised for grid_sample."""
        seq = self.seq
        flex = seq.kinematics[t] / PEAK
        ux = np.zeros((SIZE, SIZE), np.float32)
        uy = np.zeros((SIZE, SIZE), np.float32)
        for s, w in zip(self.muscles, self.weights):
            act = float(np.dot(s.fingers, flex))
            if act == 0.0:
                continue
            bulge = 0.10 * act
            slide = float(np.dot(s.lateral, flex))
            ux += w * (bulge * (self.px - s.cx) + slide)
            uy += w * (bulge * (self.py - s.cy) * 1.4 - 3.0 * act)
        for f, cx, cy, w in self.compartments:
            if flex[f] <= 0.0:
                continue
            ux += w * (0.12 * flex[f] * (self.px - cx))
            uy += w * (0.12 * flex[f] * (self.py - cy) - 4.0 * flex[f])
        for s, w in zip(self.muscles, self.weights):
            if seq.shifts and s.name in seq.shifts:
                ux += w * seq.shifts[s.name][t, 0]
                uy += w * seq.shifts[s.name][t, 1]
        px, py = self.px - ux, self.py - uy
        if seq.rotation is not None and seq.rotation[t]:
            a, c = np.deg2rad(seq.rotation[t]), (SIZE - 1) / 2
            px, py = c + np.cos(a) * (px - c) - np.sin(a) * (py - c), c + np.sin(a) * (px - c) + np.cos(a) * (py - c)
        tx = px + seq.drift[t, 0] + self.margin
        ty = py + seq.drift[t, 1] + self.margin
        n = SIZE + 2 * self.margin
        grid = np.stack([tx / (n - 1) * 2 - 1, ty / (n - 1) * 2 - 1], -1)
        return torch.from_numpy(grid.astype(np.float32))[None]

    def motion(self, t: int) -> np.ndarray:
        """(2, 480, 480) float32: how far the tissue seen at each pixel of frame ``t`` has moved in the image
        (rows, then columns, px), less the probe's translation: the true motion that optical flow from a
        frame at rest estimates (flexion bulges and slides, rocking, structure shifts)."""
        grid = self._grid(t)[0].numpy()
        n = SIZE + 2 * self.margin
        tx = (grid[..., 0] + 1) / 2 * (n - 1) - self.margin - self.seq.drift[t, 0]
        ty = (grid[..., 1] + 1) / 2 * (n - 1) - self.margin - self.seq.drift[t, 1]
        return np.stack([self.py - ty, self.px - tx]).astype(np.float32)

    def _canvas(self, t: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Tissue maps and labels at frame ``t``: a structure partly out of the plane (``presence`` < 1)
        keeps the core of its cross-section, scaled about its centre; the rest becomes surrounding
        tissue, the new outline gets its fascia and the old one fades."""
        present = {name: float(self.seq.presence[name][t]) for name in self.leaving}
        if all(p >= 1.0 for p in present.values()):
            return self.tissue, self.tissue_labels
        tissue, labels = self.tissue.clone(), self.tissue_labels.clone()
        echo, lab = tissue[0, 4].numpy(), labels[0, 0].numpy()
        for name, p in present.items():
            label, rho, band = self.leaving[name]
            echo -= (1.0 - p) * band
            own = lab == label
            gone = own & (rho >= p)
            echo[gone] = self.vacated[gone]
            lab[gone] = 0
            core = own & ~gone
            if core.any():
                ring = ndimage.binary_dilation(core, iterations=3) & gone
                echo[ring] += self.seq.anatomy.fascia_gain * ndimage.gaussian_filter(ring.astype(np.float32), 1.0)[ring]
        return tissue, labels

    def render(self, t: int) -> tuple[np.ndarray, np.ndarray]:
        """Frame ``t`` as a (480, 480) grey uint8 image and its (480, 480) uint8 labels."""
        grid = self._grid(t)
        tissue, tissue_labels = self._canvas(t) if self.leaving else (self.tissue, self.tissue_labels)
        with torch.no_grad():
            maps = F.grid_sample(tissue, grid, mode="bilinear", padding_mode="border", align_corners=True)[0].numpy()
            labels = F.grid_sample(tissue_labels, grid, mode="nearest", padding_mode="border", align_corners=True)[0, 0].numpy()
        labels = labels.astype(np.uint8)
        ph = self.seq.phase[t]
        re = np.cos(ph) * maps[0] + np.sin(ph) * maps[2]
        im = np.cos(ph) * maps[1] + np.sin(ph) * maps[3]
        envelope = np.sqrt(re * re + im * im)
        intensity = maps[4] * envelope
        bone = np.isin(labels, self.bone_labels)
        below = np.cumsum(bone, axis=0)
        cortex = bone & (below <= 5)
        intensity = np.where(cortex, self.seq.anatomy.cortex_gain * envelope, intensity)
        shadow = 1.0 - self.seq.anatomy.shadow_strength * np.clip((below - 5) / 10.0, 0, 1)
        intensity = intensity * shadow * self.depth_gain
        db = 20 * np.log10(intensity + 1e-3) + self.seq.gain_db[t]
        img = np.clip((db + 30.0) / 48.0 * 255.0, 0, 255).astype(np.uint8)
        return img, labels

    def __iter__(self) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        for t in range(self.seq.n_frames):
            yield self.render(t)


def screen_frame(img: np.ndarray, width: int = 640, height: int = 480) -> np.ndarray:
    """Place a 480x480 image in a 640x480 black screen, with a depth scale in the border."""
    out = np.zeros((height, width), np.uint8)
    x0 = (width - img.shape[1]) // 2
    out[: img.shape[0], x0 : x0 + img.shape[1]] = img
    for y in range(0, height, 48):  # depth ticks, as scanners draw them
        out[y : y + 2, x0 + img.shape[1] + 6 : x0 + img.shape[1] + 14] = 200
    return out


def phantom_box(width: int = 640, height: int = 480) -> tuple[int, int, int, int]:
    """The (x, y, w, h) of the image inside :func:`screen_frame`'s output."""
    return ((width - SIZE) // 2, 0, SIZE, SIZE)


__all__ = ["PhantomRenderer", "PhantomSequence", "make_sequence", "screen_frame", "phantom_box", "make_anatomy", "SIZE"]
