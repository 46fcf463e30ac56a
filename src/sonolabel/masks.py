"""Masks in and out of a project as one PNG per frame, named by six-digit frame index."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ._files import staged_folder
from .errors import InputError
from .quantize import write_index_png
from .store import LabelSource, Video

SOURCES = ("keyframes", "propagated", "final")
FORMATS = ("index", "colour")


def frames_with_labels(video: Video, source: str) -> list[int]:
    """Frames that hold labels of ``source``: keyframes, propagated frames, or either (final)."""
    if source not in SOURCES:
        raise InputError(f"--source must be one of {', '.join(SOURCES)}, not {source!r}")
    keys = video.annotated_frames()
    if source == "keyframes":
        return keys
    propagated = np.flatnonzero(video.sources() == LabelSource.PROPAGATED).tolist()
    if source == "propagated":
        return propagated
    return sorted(set(keys) | set(propagated))


def export_masks(video: Video, out_dir: str | Path, source: str = "final", fmt: str = "index") -> list[Path]:
    """Write ``out_dir/000042.png`` for every frame with labels; ``index`` PNGs carry the palette.

    Files are written to a staging folder first and moved in when all are done.
    """
    if fmt not in FORMATS:
        raise InputError(f"--format must be one of {', '.join(FORMATS)}, not {fmt!r}")
    frames = frames_with_labels(video, source)
    if not frames:
        raise InputError(f"video {video.id!r} has no {source} labels", video.project.path,
                         "annotate keyframes (or propagate) first")
    palette = video.project.palette
    keys = set(video.annotated_frames())
    written = []
    with staged_folder(out_dir) as staging:
        for t in frames:
            labels = video.annotated[t] if (source != "propagated" and t in keys) else video.propagated[t]
            name = f"{t:06d}.png"
            if fmt == "index":
                write_index_png(staging / name, labels, palette)
            else:
                from PIL import Image

                Image.fromarray(palette.colorize(labels)).save(staging / name)
            written.append(Path(out_dir) / name)
    return written


def import_keyframe_masks(video: Video, masks_dir: str | Path, who: str | None = None,
                          max_unknown_fraction: float = 0.005, swap_rb: bool = False) -> list[int]:
    """Store every mask in ``masks_dir`` (named by frame index: ``000200.png`` or ``200.png``) as a keyframe.

    Colour masks are quantized to the project palette. Every mask is read and checked (name,
    size, colours) before any is stored, so a bad file leaves the project unchanged.
    """
    from .quantize import MASK_SUFFIXES, Quantizer, read_mask

    masks_dir = Path(masks_dir)
    if not masks_dir.is_dir():
        raise InputError("no such folder", masks_dir)
    files = [p for p in masks_dir.iterdir() if p.suffix.lower() in MASK_SUFFIXES]
    if not files:
        raise InputError("no mask images in folder", masks_dir, "name masks by frame index, e.g. 000200.png")
    q = Quantizer(video.project.palette)
    checked = []
    for f in sorted(files):
        if not f.stem.isdigit():
            raise InputError("mask name is not a frame index", f, "name masks by frame index, e.g. 000200.png or 200.png")
        t = int(f.stem)
        if t >= video.n_frames:
            raise InputError(f"frame {t} is beyond the video's {video.n_frames} frames", f)
        labels, rep = read_mask(f, video.project.palette, q, swap_rb=swap_rb)
        if rep.unknown_fraction > max_unknown_fraction:
            raise InputError(
                f"{rep.unknown_fraction:.2%} of pixels match no palette colour (limit {max_unknown_fraction:.2%}); "
                f"first at (y,x) {rep.unknown_first[:3]}" + ("; they match with red and blue swapped (BGR)" if rep.probable_bgr else ""),
                f, "rerun with --bgr" if rep.probable_bgr else "check the mask uses the project's palette (see `sonolabel info PROJECT`)",
            )
        video.check_mask(labels, str(f))
        checked.append((t, labels, f))
    for t, labels, f in checked:
        video.save_annotation(t, labels, who=who, source_name=str(f))
    return [t for t, _, _ in checked]
