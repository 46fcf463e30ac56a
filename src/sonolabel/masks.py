"""Masks in and out of a project: keyframes and whole label sequences in (from folders, CVAT exports and
mask videos, see :mod:`.mask_sequences`), one PNG per frame out, named by six-digit frame index."""

from __future__ import annotations

import getpass
import time
from pathlib import Path

import numpy as np

from ._files import staged_folder
from .errors import InputError
from .mask_sequences import open_masks
from .palette import Palette
from .quantize import check_unknown, write_index_png
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
    propagated = np.flatnonzero(np.isin(video.sources(), (LabelSource.PROPAGATED, LabelSource.IMPORTED))).tolist()
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
        raise InputError(f"video {video.id!r} has no {source} labels", video.project.path, "annotate keyframes (or propagate) first")
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


def _source_to_stored(video: Video) -> tuple[dict[int, int], int]:
    """Map a source frame index to the stored frame (they differ after ``--dedupe``), and the source's frame count."""
    src = video.column("source_frame", -1).astype(np.int64)
    if (src < 0).any():  # stores from before source_frame was recorded
        src = np.arange(video.n_frames)
    n_source = int(video.attrs.get("n_frames_decoded") or video.n_frames) if video.attrs.get("deduplicated") else video.n_frames
    return {int(s): i for i, s in enumerate(src)}, n_source


def _checked(video: Video, rep, labels: np.ndarray, where: str, max_unknown_fraction: float) -> np.ndarray:
    check_unknown(rep, max_unknown_fraction, where)
    return video.check_mask(labels, where)


def import_keyframe_masks(
    video: Video,
    masks: str | Path,
    who: str | None = None,
    max_unknown_fraction: float = 0.005,
    swap_rb: bool = False,
    frames: list[int] | None = None,
    palette: Palette | None = None,
) -> list[int]:
    """Store masks as keyframes: from a folder named by frame (``000200.png``, ``frame_000200.png``,
    ``200.png``), a CVAT export, or a mask video (then ``frames`` says which frames are keyframes).

    Colour masks are quantized to ``palette`` (default: the project's). Every mask is read and
    checked (name, size, colours) before any is stored, so a bad file leaves the project unchanged.
    """
    seq = open_masks(masks, palette or video.project.palette)
    if seq.kind == "video" and not frames:
        raise InputError(
            "a mask video holds every frame: say which are keyframes",
            masks,
            "add --frames 0,200,400 (or import the whole sequence with `sonolabel labels import`)",
        )
    to_stored, n_source = _source_to_stored(video)
    wanted = None if frames is None else set(int(t) for t in frames)
    if seq.kind != "video":
        have = set(seq.files)
        missing = sorted((wanted or have) - have)
        if missing:
            raise InputError(f"no mask for frames {missing[:8]}", masks, "check --frames against the mask names")
        beyond = sorted(t for t in (wanted or have) if t >= n_source)
        if beyond:
            raise InputError(f"frame {beyond[0]} is beyond the video's {n_source} frames", seq.files[beyond[0]])
    checked = []
    for t, labels, rep in seq.read(swap_rb=swap_rb, frames=wanted):
        where = str(seq.files.get(t, f"{masks}#frame {t}"))
        if t not in to_stored:
            raise InputError(f"frame {t} was dropped as a repeat on import (--dedupe) or is beyond the video", where)
        checked.append((to_stored[t], _checked(video, rep, labels, where, max_unknown_fraction), where))
    if wanted is not None and len(checked) < len(wanted):
        got = {t for t, _, _ in checked}
        raise InputError(f"the mask video has no frames {sorted(wanted - got)[:8]}", masks)
    for t, labels, where in checked:
        video.save_annotation(t, labels, who=who, source_name=where)
    return [t for t, _, _ in checked]


def import_label_sequence(
    video: Video,
    masks: str | Path,
    who: str | None = None,
    palette: Palette | None = None,
    swap_rb: bool = False,
    max_unknown_fraction: float = 0.01,
    progress: bool = False,
) -> int:
    """Store a whole label sequence (one mask per frame, from a folder, a CVAT export or a mask video) as the
    video's labels, with source ``imported``; returns the frames stored.

    Drift checks, review, correction and export treat imported labels like propagated ones.
    Keyframes (annotations) are never overwritten. Every mask is read and checked, and the count
    checked against the video, before anything in the project changes.
    """
    import tempfile

    import zarr
    from tqdm import tqdm

    from .io.importer import sha256_of

    video.project.require_writable()
    seq = open_masks(masks, palette or video.project.palette)
    to_stored, n_source = _source_to_stored(video)
    if seq.kind == "video" and seq.n_video_frames and seq.n_video_frames != n_source:
        raise InputError(
            f"the mask video has {seq.n_video_frames} frames but the video has {n_source}",
            masks,
            "check the masks belong to this recording (and were not cut or re-timed)",
        )
    if seq.kind != "video":
        have = seq.frame_indices() or []
        if have != list(range(n_source)):
            missing = sorted(set(range(n_source)) - set(have))
            extra = sorted(set(have) - set(range(n_source)))
            raise InputError(
                f"{len(have)} masks for a video of {n_source} frames"
                + (f"; missing frames {missing[:5]}" if missing else "")
                + (f"; beyond the video: {extra[:5]}" if extra else ""),
                masks,
                "give one mask per frame, named by frame index",
            )
    with tempfile.TemporaryDirectory(prefix="sonolabel-labels-") as tmp:
        staging = zarr.open_array(
            f"{tmp}/labels.zarr",
            mode="w",
            shape=(video.n_frames, video.height, video.width),
            chunks=(1, video.height, video.width),
            dtype="uint8",
            fill_value=0,
        )
        n = 0
        with tqdm(total=n_source, desc=f"check {Path(masks).name}", unit="mask", disable=not progress) as bar:
            for t, labels, rep in seq.read(swap_rb=swap_rb):
                where = str(seq.files.get(t, f"{masks}#frame {t}"))
                if t >= n_source:
                    raise InputError(f"the mask video has more frames than the video's {n_source}", masks, "check the masks belong to this recording")
                labels = _checked(video, rep, labels, where, max_unknown_fraction)
                if t in to_stored:
                    staging[to_stored[t]] = labels
                n += 1
                bar.update(1)
        if n != n_source:
            raise InputError(
                f"the mask video has {n} frames but the video has {n_source}", masks, "check the masks belong to this recording (and were not cut or re-timed)"
            )
        for start in tqdm(range(0, video.n_frames, 64), desc="store labels", unit="batch", disable=not progress):
            video.save_propagated(start, staging[start : start + 64], source=LabelSource.IMPORTED)
    video.update_attrs(
        labels_from="imported",
        labels_source=str(Path(masks).resolve()),
        labels_sha256=sha256_of(Path(masks)),
        labels_imported_by=who or getpass.getuser(),
        labels_imported_at=time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    )
    return video.n_frames
