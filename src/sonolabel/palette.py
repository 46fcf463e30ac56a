"""The classes of a project: names, index values and colours, in one place.

Index 0 is always background. The default palette is the forearm one, with the colours of the
reference pipeline's masks; ``davis`` is the preset XMem-style tools write. A project may carry
its own palette, read from a JSON file (see :func:`load_palette`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .errors import InputError


@dataclass(frozen=True)
class Palette:
    """Class names and RGB colours; ``names[i]`` has label value ``i`` and colour ``colors[i]``."""

    names: tuple[str, ...]
    colors: tuple[tuple[int, int, int], ...]
    name: str = "custom"

    def __post_init__(self) -> None:
        validate(self.names, self.colors, source=self.name)

    def __len__(self) -> int:
        return len(self.names)

    @property
    def rgb(self) -> np.ndarray:
        """Colours as a ``(n_classes, 3)`` uint8 array."""
        return np.asarray(self.colors, dtype=np.uint8).reshape(-1, 3)

    def index(self, name: str) -> int:
        """Label value of the class called ``name``."""
        try:
            return self.names.index(name)
        except ValueError:
            raise InputError(f"no class named {name!r}", hint=f"classes are {', '.join(self.names)}") from None

    def colorize(self, labels: np.ndarray) -> np.ndarray:
        """Index mask -> RGB image (values beyond the palette become black)."""
        lut = np.zeros((256, 3), np.uint8)
        lut[: len(self)] = self.rgb
        return lut[labels]

    def hex(self, i: int) -> str:
        r, g, b = self.colors[i]
        return f"#{r:02x}{g:02x}{b:02x}"

    def to_dict(self) -> dict:
        return {
            "name": self.name,
            "classes": [{"value": i, "name": n, "color": list(c)} for i, (n, c) in enumerate(zip(self.names, self.colors))],
        }

    @classmethod
    def from_dict(cls, d: dict, source: str = "palette") -> "Palette":
        try:
            classes = sorted(d["classes"], key=lambda c: int(c["value"]))
            values = [int(c["value"]) for c in classes]
            if values != list(range(len(classes))):
                raise InputError(f"class values must be 0..{len(classes) - 1} without gaps, got {values}", source)
            return cls(
                names=tuple(str(c["name"]) for c in classes),
                colors=tuple(tuple(int(v) for v in c["color"]) for c in classes),  # type: ignore[misc]
                name=str(d.get("name", "custom")),
            )
        except (KeyError, TypeError, ValueError) as e:
            raise InputError(
                f"not a palette ({type(e).__name__}: {e})",
                source,
                'expected {"classes": [{"value": 0, "name": "background", "color": [0, 0, 0]}, ...]}',
            ) from None


def validate(names, colors, source: str = "palette") -> None:
    """Check a palette: 2-255 classes, one colour each, distinct colours, background at 0."""
    n = len(names)
    if not 2 <= n <= 255:
        raise InputError(f"a palette needs 2 to 255 classes, got {n}", source)
    if len(colors) != n:
        raise InputError(f"{n} class names but {len(colors)} colours", source)
    for c in colors:
        if len(c) != 3 or not all(0 <= int(v) <= 255 for v in c):
            raise InputError(f"colour {list(c)} is not an RGB triple of 0-255", source)
    if len(set(map(tuple, colors))) != n:
        dup = [c for c in colors if list(map(tuple, colors)).count(tuple(c)) > 1][0]
        raise InputError(f"colour {list(dup)} is used by more than one class", source, "give every class its own colour")
    if len(set(names)) != n:
        raise InputError("class names must be distinct", source)
    if str(names[0]).lower() not in ("background", "bg", "_background_"):
        raise InputError(f"class 0 must be background, got {names[0]!r}", source)


FOREARM = Palette(
    names=("background", "FDS", "FDP", "FPL", "FCR", "FCU", "ulna", "radius"),
    colors=((0, 0, 0), (0, 255, 0), (0, 0, 255), (255, 0, 0), (0, 255, 255), (255, 0, 255), (255, 255, 0), (255, 255, 255)),
    name="forearm",
)

DAVIS = Palette(
    names=("background", "FDS", "FDP", "FPL", "FCR", "FCU", "ulna", "radius"),
    colors=((0, 0, 0), (128, 0, 0), (0, 128, 0), (128, 128, 0), (0, 0, 128), (128, 0, 128), (0, 128, 128), (128, 128, 128)),
    name="davis",
)

PRESETS: dict[str, Palette] = {"forearm": FOREARM, "default": FOREARM, "davis": DAVIS}


def load_palette(spec: str | Path | dict | Palette | None) -> Palette:
    """A palette from a preset name (``forearm``/``default``, ``davis``), a JSON file, a dict, or None (default)."""
    if spec is None:
        return FOREARM
    if isinstance(spec, Palette):
        return spec
    if isinstance(spec, dict):
        return Palette.from_dict(spec)
    if str(spec) in PRESETS:
        return PRESETS[str(spec)]
    path = Path(spec)
    if not path.is_file():
        raise InputError("no such palette", path, f"use a preset ({', '.join(sorted(PRESETS))}) or a JSON file")
    try:
        data = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise InputError(f"cannot read palette JSON ({e})", path) from None
    return Palette.from_dict(data, source=str(path))
