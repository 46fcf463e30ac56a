"""Per-subject forearm anatomy for the phantom: seven structures in a transverse volar section.

Coordinates are pixels of a 480x480 image (x right = radial to ulnar side, y down = depth).
Subjects differ in the sizes, positions, shapes and echogenicity of every structure.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

# name, label, centre (x, y), radii (rx, ry), echogenicity, fingers that move it (weights thumb..little)
_TEMPLATE = (
    ("FCR", 4, (95, 125), (55, 38), 0.75, (0.1, 0.15, 0.1, 0.05, 0.05)),
    ("FDS", 1, (240, 135), (95, 55), 0.85, (0.0, 1.0, 0.9, 0.8, 0.6)),
    ("FCU", 5, (395, 125), (58, 40), 0.70, (0.0, 0.05, 0.1, 0.15, 0.2)),
    ("FPL", 3, (135, 265), (68, 42), 0.80, (1.0, 0.1, 0.0, 0.0, 0.0)),
    ("FDP", 2, (320, 270), (100, 55), 0.90, (0.0, 0.8, 1.0, 0.9, 0.8)),
    ("radius", 7, (130, 425), (70, 45), 1.0, (0.0, 0.0, 0.0, 0.0, 0.0)),
    ("ulna", 6, (360, 430), (55, 42), 1.0, (0.0, 0.0, 0.0, 0.0, 0.0)),
)
BONES = ("radius", "ulna")


@dataclass
class Structure:
    name: str
    label: int
    cx: float
    cy: float
    rx: float
    ry: float
    echo: float
    fingers: np.ndarray  # (5,) how much each finger's flexion moves this structure
    harmonics: np.ndarray  # (4, 2) radial shape perturbation (amplitude, phase)
    lateral: np.ndarray  # (5,) lateral slide per finger (px at full flexion)

    @property
    def is_bone(self) -> bool:
        return self.name in BONES


@dataclass
class Anatomy:
    structures: list[Structure]
    fat_thickness: float
    background_echo: float
    fascia_gain: float
    cortex_gain: float
    shadow_strength: float


def make_anatomy(rng: np.random.Generator) -> Anatomy:
    """A random subject: template positions and sizes jittered, shapes made irregular."""
    scale = rng.uniform(0.88, 1.12)
    structures = []
    for name, label, (cx, cy), (rx, ry), echo, fingers in _TEMPLATE:
        bone = name in BONES
        structures.append(
            Structure(
                name=name,
                label=label,
                cx=cx + rng.normal(0, 12),
                cy=cy + rng.normal(0, 8 if bone else 10),
                rx=rx * scale * rng.uniform(0.85, 1.15),
                ry=ry * scale * rng.uniform(0.85, 1.15),
                echo=echo * rng.uniform(0.7, 1.2),
                fingers=np.asarray(fingers) * rng.uniform(0.7, 1.3, 5),
                harmonics=np.stack([rng.uniform(0, 0.02 if bone else 0.09, 4), rng.uniform(0, 2 * np.pi, 4)], 1),
                lateral=rng.normal(0, 6, 5) * (np.asarray(fingers) > 0),
            )
        )
    return Anatomy(
        structures=structures,
        fat_thickness=rng.uniform(28, 48),
        background_echo=rng.uniform(0.45, 0.7),
        fascia_gain=rng.uniform(1.8, 2.6),
        cortex_gain=rng.uniform(3.5, 5.0),
        shadow_strength=rng.uniform(0.75, 0.92),
    )


def radial(s: Structure, size: int, margin: int) -> np.ndarray:
    """Each canvas pixel's distance from the centre of ``s`` relative to its (irregular) outline in that
    direction: below 1 inside the structure; the structure scaled by ``f`` about its centre is ``< f``."""
    n = size + 2 * margin
    yy, xx = np.mgrid[0:n, 0:n].astype(np.float32) - margin
    dx, dy = (xx - s.cx) / s.rx, (yy - s.cy) / s.ry
    ang = np.arctan2(dy, dx)
    edge = 1.0 + sum(a * np.cos((k + 2) * ang + ph) for k, (a, ph) in enumerate(s.harmonics))
    return np.hypot(dx, dy) / edge


def rasterize(anatomy: Anatomy, size: int, margin: int, fascia: float = 3.0) -> tuple[np.ndarray, np.ndarray]:
    """Label map and fascia (boundary) map in tissue coordinates on a ``size + 2*margin`` canvas.

    Structures are drawn in order without overlap; a thin band around each stays background
    and becomes bright fascia, as between real muscles.
    """
    from scipy import ndimage

    n = size + 2 * margin
    yy = np.arange(n, dtype=np.float32)[:, None] - margin
    labels = np.zeros((n, n), np.uint8)
    taken = np.zeros((n, n), bool)
    for s in anatomy.structures:
        inside = (radial(s, size, margin) < 1.0) & ~taken
        grown = ndimage.binary_dilation(inside, iterations=int(fascia))
        labels[inside] = s.label
        taken |= grown
    boundary = ndimage.binary_dilation(labels > 0, iterations=int(fascia)) & (labels == 0)
    fascia_map = ndimage.gaussian_filter(boundary.astype(np.float32), 1.0)
    fat = (yy < anatomy.fat_thickness).astype(np.float32)
    skin = np.exp(-((yy - anatomy.fat_thickness) ** 2) / 8.0)
    fascia_map = np.maximum(fascia_map, skin.astype(np.float32)) * (1 - 0.5 * fat)
    return labels, fascia_map.astype(np.float32)
