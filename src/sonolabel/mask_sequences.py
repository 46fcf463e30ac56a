"""Label sequences from other tools, read as class-index masks per frame.

What users bring (see docs/bringing-data.md):

* a **folder of mask images** named by frame: XMem++'s ``frame_000040.png``, DAVIS's ``00040.png``,
  plain ``40.png`` (the trailing digits of the name are the frame index); palette PNGs are read
  by index, colour images are quantized to the palette;
* a **CVAT "Segmentation mask 1.1" export**: ``labelmap.txt`` plus ``SegmentationClass/*.png``;
  the labelmap's class names are matched to the project's by name, so CVAT's colours need not
  be the project's;
* a **mask video** (mp4/avi..., e.g. XMem++ output encoded as h264 with 4:2:0 chroma): frame i of
  the video is frame i of the recording; colours blended at boundaries are settled from the flat
  regions beside them, never into a third class.

:func:`open_masks` gives a :class:`MaskSequence` for any of them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

import numpy as np

from .errors import InputError
from .palette import Palette
from .quantize import MASK_SUFFIXES, Quantizer, QuantizeReport, check_unknown, read_mask

_TRAILING_DIGITS = re.compile(r"(\d+)$")
# Lossy video: a pixel is sure where its colour is flat over 3x3, and a blend takes the nearest-coloured
# class among the sure pixels within 2 px. Of the settings tried on h264 at CRF 23, 30 and 35 (both
# palettes, 5 phantom seeds; docs/bringing-data.md), the only one that never put a class more than
# 3 px from where it truly is.
VIDEO_EDGE_RADIUS = 1
VIDEO_WINDOW = 2


def video_quantizer(palette: Palette, tolerance: float = 40.0) -> Quantizer:
    """The quantizer for lossy mask video (4:2:0 h264): boundary blends are settled, never a third class."""
    return Quantizer(palette, tolerance, window=VIDEO_WINDOW, edge_radius=VIDEO_EDGE_RADIUS)


IGNORED = (".DS_Store", "Thumbs.db", "desktop.ini")
CVAT_LABELMAP = "labelmap.txt"
CVAT_CLASSES = "SegmentationClass"


def frame_index(path: Path) -> int | None:
    """The frame a mask file is for: the trailing digits of its name (``frame_000040`` -> 40)."""
    m = _TRAILING_DIGITS.search(Path(path).stem)
    return int(m.group(1)) if m else None


def read_cvat_labelmap(path: Path, palette: Palette) -> Palette:
    """The project's classes with the colours a CVAT ``labelmap.txt`` gives them (matched by name).

    A labelmap class the project does not have is refused by name; project classes the labelmap
    lacks keep colours no mask uses.
    """
    colours: dict[str, tuple[int, int, int]] = {}
    for lineno, line in enumerate(path.read_text(errors="replace").splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        parts = line.split(":")
        try:
            rgb = tuple(int(v) for v in parts[1].split(","))
            if len(parts) < 2 or len(rgb) != 3:
                raise ValueError
        except (ValueError, IndexError):
            raise InputError(f"line {lineno} is not 'name:r,g,b::' ({line!r})", path) from None
        colours[parts[0].strip()] = rgb  # type: ignore[assignment]
    by_name = {n.lower(): i for i, n in enumerate(palette.names)}
    by_name.update({"_background_": 0, "bg": 0, "background": 0})
    unknown = [n for n in colours if n.lower() not in by_name]
    if unknown:
        raise InputError(
            f"CVAT class {unknown[0]!r} is not a project class" + (f" (also {unknown[1:]})" if unknown[1:] else ""),
            path,
            f"rename it in CVAT to one of {', '.join(palette.names)}, or give the project a palette with it",
        )
    mapped: list[tuple[int, int, int] | None] = [None] * len(palette)
    for name, rgb in colours.items():
        mapped[by_name[name.lower()]] = rgb
    if mapped[0] is None:
        mapped[0] = (0, 0, 0)
    used = {c for c in mapped if c is not None}
    spare = iter(c for c in ((255 - i, 7 * i % 256, 13 * i % 256) for i in range(1, 256)) if c not in used)
    colors = tuple(c if c is not None else next(spare) for c in mapped)
    return Palette(names=palette.names, colors=colors, name=f"cvat:{path}")


@dataclass
class MaskSequence:
    """Masks of one recording from a folder, a CVAT export or a mask video; frame indices sorted."""

    path: Path
    kind: str  # folder | cvat | video
    palette: Palette  # the colours to quantize against (the project's, or CVAT's by name)
    files: dict[int, Path] = field(default_factory=dict)  # folder, cvat
    n_video_frames: int = 0  # video: frames its header promises (0 when it does not say)

    def frame_indices(self) -> list[int] | None:
        """The frames that have a mask; None for a video (every frame, counted as decoded)."""
        return sorted(self.files) if self.kind != "video" else None

    def read(
        self, quantizer: Quantizer | None = None, swap_rb: bool = False, frames: set[int] | None = None
    ) -> Iterator[tuple[int, np.ndarray, QuantizeReport]]:
        """Yield ``(frame, labels, report)`` in frame order (only ``frames`` when given)."""
        if self.kind == "video":
            yield from self._read_video(quantizer, swap_rb, frames)
            return
        q = quantizer or Quantizer(self.palette)
        for t in sorted(self.files):
            if frames is None or t in frames:
                labels, rep = read_mask(self.files[t], self.palette, q, swap_rb=swap_rb, by_colour=self.kind == "cvat")
                yield t, labels, rep

    def _read_video(self, quantizer, swap_rb, frames) -> Iterator[tuple[int, np.ndarray, QuantizeReport]]:
        import av

        q = quantizer or video_quantizer(self.palette)
        try:
            with av.open(str(self.path)) as c:
                for t, frame in enumerate(c.decode(video=0)):
                    if frames is None or t in frames:
                        labels, rep = q(frame.to_ndarray(format="rgb24"), swap_rb=swap_rb, source=f"{self.path}#{t}")
                        yield t, labels, rep
        except av.FFmpegError as e:
            raise InputError(f"mask video cannot be decoded ({e})", self.path, "re-export it as H.264 mp4") from None


def _folder_files(folder: Path) -> dict[int, Path]:
    files: dict[int, Path] = {}
    for p in folder.iterdir():
        if p.suffix.lower() not in MASK_SUFFIXES or p.name in IGNORED or p.name.startswith("._"):
            continue
        t = frame_index(p)
        if t is None:
            raise InputError("mask name does not end in a frame number", p, "name masks by frame: frame_000040.png (XMem++), 00040.png (DAVIS) or 40.png")
        if t in files:
            raise InputError(f"two masks for frame {t}: {files[t].name} and {p.name}", folder, "keep one mask per frame")
        files[t] = p
    if not files:
        raise InputError("no mask images (png/jpg/tif/bmp) in folder", folder, "name masks by frame: frame_000040.png, 00040.png or 40.png")
    return files


def open_masks(path: str | Path, palette: Palette) -> MaskSequence:
    """The mask sequence at ``path``: a CVAT export, a folder of masks named by frame, or a mask video."""
    from .io.sources import VIDEO_SUFFIXES

    path = Path(path)
    if not path.exists():
        raise InputError("no such file or folder", path, "give a mask folder, a CVAT export folder or a mask video")
    if path.is_dir():
        if (path / CVAT_LABELMAP).is_file():
            cvat = read_cvat_labelmap(path / CVAT_LABELMAP, palette)
            classes = path / CVAT_CLASSES
            if not classes.is_dir():
                raise InputError(f"CVAT export without {CVAT_CLASSES}/", path, "export as 'Segmentation mask 1.1' again")
            return MaskSequence(path, "cvat", cvat, files=_folder_files(classes))
        return MaskSequence(path, "folder", palette, files=_folder_files(path))
    if path.suffix.lower() in VIDEO_SUFFIXES:
        import av

        try:
            with av.open(str(path)) as c:
                if not c.streams.video:
                    raise InputError("has no video stream", path)
                n = int(c.streams.video[0].frames or 0)
        except (av.FFmpegError, OSError) as e:
            raise InputError(f"cannot open mask video ({e})", path, "check the file is a complete mp4/avi video") from None
        return MaskSequence(path, "video", palette, n_video_frames=n)
    raise InputError(
        f"unsupported mask source {path.suffix!r}", path, f"give a folder of mask images, a CVAT export folder or a mask video ({', '.join(VIDEO_SUFFIXES)})"
    )


def quantize_video(
    video: str | Path,
    out_dir: str | Path,
    palette: Palette,
    tolerance: float = 40.0,
    max_unknown_fraction: float | None = None,
    swap_rb: bool = False,
    progress: bool = False,
) -> list[QuantizeReport]:
    """Quantize every frame of a mask video into ``out_dir/000000.png, 000001.png, ...`` (index PNGs).

    Written to a staging folder and moved in when every frame passed; boundary blends of lossy
    video are settled from their neighbours (``edge_radius``), never into a third class.
    """
    from tqdm import tqdm

    from ._files import staged_folder
    from .quantize import write_index_png

    seq = open_masks(video, palette)
    if seq.kind != "video":
        raise InputError("not a video file", video)
    q = video_quantizer(palette, tolerance)
    reports = []
    with staged_folder(out_dir) as staging, tqdm(total=seq.n_video_frames or None, desc="quantize", unit="frame", disable=not progress) as bar:
        for t, labels, rep in seq.read(q, swap_rb=swap_rb):
            check_unknown(rep, max_unknown_fraction, f"{video}#frame {t}")
            write_index_png(Path(staging) / f"{t:06d}.png", labels, palette)
            reports.append(rep)
            bar.update(1)
        if not reports:
            raise InputError("mask video holds no frames", video)
    return reports
