"""Import recordings and labelled stills into a project.

Every import finds the ultrasound box (:mod:`.region`; or takes ``crop``), stores grey
uint8 frames at the box's native resolution, records where the frames came from (path, SHA-256,
crop, subject/trial/task, fps, time, tool version) and checks the decoded frame count against
the header. Nothing appears in the project unless the whole import succeeds.
"""

from __future__ import annotations

import hashlib
import time
from pathlib import Path

import numpy as np

from .. import __version__
from ..errors import InputError
from ..store import Project
from ..store.layout import FINGERS
from .region import Crop, detect_box, frame_difference, repeated_frames
from .sources import FrameSource, open_source

BATCH = 32


def sha256_of(path: Path) -> str:
    """SHA-256 of a file, or of a folder's files (names and contents, in sorted order)."""
    h = hashlib.sha256()
    files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
    for f in files:
        if path.is_dir():
            h.update(str(f.relative_to(path)).encode() + b"\0")
        with open(f, "rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                h.update(block)
    return h.hexdigest()


def read_kinematics_table(path: str | Path, n_frames: int) -> tuple[np.ndarray, list[str]]:
    """A CSV of per-frame kinematics (one row per frame; ``frame``/``time`` columns are skipped)."""
    import pandas as pd

    path = Path(path)
    try:
        df = pd.read_csv(path)
    except (OSError, ValueError) as e:
        raise InputError(f"cannot read kinematics CSV ({e})", path) from None
    df = df.drop(columns=[c for c in df.columns if c.lower() in ("frame", "time", "timestamp")])
    df = df.select_dtypes("number")
    if df.empty:
        raise InputError("no numeric kinematics columns", path)
    if len(df) != n_frames:
        raise InputError(f"kinematics have {len(df)} rows but the video has {n_frames} frames", path, "give one row per frame")
    if not np.isfinite(df.to_numpy()).all():
        raise InputError("kinematics hold NaN or infinite values", path, "interpolate the gaps before importing")
    return df.to_numpy(np.float32), [str(c) for c in df.columns]


def with_total_flexion(values: np.ndarray, columns: list[str], path: str | Path) -> tuple[np.ndarray, list[str]]:
    """Kinematics plus the five fingers' total flexion when they can be derived from joint angles or
    markers (docs/sonorank.md), so every video with hand kinematics carries ``thumb``..``little``."""
    import pandas as pd

    from ..kinematics import flexion_from_table

    table = pd.DataFrame(np.asarray(values, np.float64), columns=columns)
    theta = flexion_from_table(table)
    if theta is None or set(FINGERS) <= set(columns):
        return values, columns
    if not np.isfinite(theta.to_numpy()).all():
        raise InputError("total flexion is undefined on some frames (coincident markers?)", path, "check the marker trajectories for gaps and duplicates")
    return np.concatenate([values, theta.to_numpy(np.float32)], 1), [*columns, *FINGERS]


def import_recording(
    project: Project,
    source: str | Path | FrameSource,
    subject: str,
    trial: str | int | None = None,
    task: str | None = None,
    crop: Crop | str | None = None,
    fps: float | None = None,
    kinematics: str | Path | None = None,
    h5_keys: dict[str, str] | None = None,
    progress: bool = False,
    video_id: str | None = None,
    mm_per_pixel: float | None = None,
    dedupe: bool = False,
) -> str:
    """Import one recording (video file, frame folder, HDF5 session, Clarius raw, DICOM, TIFF stack) as a
    new video; returns its id (``video_id`` when given: batch imports assign ids up front).

    The box is ``crop``, else the image region the file declares (DICOM ultrasound regions), else
    detected. The pixel spacing is ``mm_per_pixel``, else what the file says (DICOM, OME-TIFF,
    Clarius axial spacing). Frames that repeat their predecessor (screen captures recorded faster
    than the scanner) are counted; ``dedupe`` drops them, and ``table/source_frame`` keeps each
    stored frame's index in the source (kinematics are kept for the frames kept).
    """
    from tqdm import tqdm

    project.require_writable()
    src = source if isinstance(source, FrameSource) else open_source(source, fps=fps, h5_keys=h5_keys)
    first = src.sample()
    height, width = first.shape[1:]
    if isinstance(crop, str):
        crop = Crop.parse(crop)
    declared = Crop(*src.region) if src.region is not None else None
    box = crop or declared or detect_box(first)
    box.check(height, width, src.path)
    if mm_per_pixel is not None and not mm_per_pixel > 0:
        raise InputError(f"--mm-per-pixel must be positive, got {mm_per_pixel}")
    spacing = (mm_per_pixel, mm_per_pixel) if mm_per_pixel else src.spacing_mm
    if video_id is None:
        video_id = project.new_video_id(subject, trial, task)
    elif video_id in project.video_ids():
        raise InputError(f"video {video_id!r} exists already", project.path)
    attrs = {
        "subject": str(subject),
        "trial": None if trial is None else str(trial),
        "task": task,
        "fps": src.fps,
        "source": str(Path(src.path).resolve()),
        "sha256": sha256_of(Path(src.path)),
        "crop": box.as_list(),
        "crop_detected": crop is None and declared is None,
        "crop_from": "option" if crop else ("file" if declared else "detected"),
        "source_size": [width, height],
        "spacing_mm": None if spacing is None else [None if v is None else float(v) for v in spacing],
        "spacing_from": None if spacing is None else ("option" if mm_per_pixel else "file"),
        "imported": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "tool_version": __version__,
        "kind": "video",
        **{k: v for k, v in src.extra.items() if v is not None},
    }
    capacity = max(src.n_frames_header, 1)
    with project.staged_video(video_id, capacity, box.h, box.w, attrs) as video:
        n, batch, prev = 0, [], None
        differences: list[float] = []
        bar = tqdm(total=src.n_frames_header or None, desc=f"import {video_id}", unit="frame", disable=not progress)

        def flush() -> None:
            nonlocal n, capacity, batch
            if n + len(batch) > capacity:
                capacity = max(2 * capacity, n + len(batch))
                video.resize(capacity)
            video.frames[n : n + len(batch)] = np.stack(batch)
            n += len(batch)
            bar.update(len(batch))
            batch = []

        for frame in src.frames():
            if frame.shape != (height, width):
                raise InputError(f"frame {n + len(batch)} is {frame.shape[1]}x{frame.shape[0]}, earlier frames {width}x{height}", src.path)
            cropped = box.apply(frame)
            differences.append(np.inf if prev is None else frame_difference(cropped, prev))
            prev = cropped
            batch.append(cropped)
            if len(batch) == BATCH:
                flush()
        if batch:
            flush()
        bar.close()
        if n == 0:
            raise InputError("holds no frames", src.path, "check the recording is not empty")
        if src.n_frames_header and n < src.n_frames_header:
            raise InputError(
                f"header promises {src.n_frames_header} frames but only {n} decode", src.path, "the file is truncated or damaged; copy or export it again"
            )
        repeated = repeated_frames(np.asarray(differences))
        keep = np.flatnonzero(~repeated) if dedupe else np.arange(n)
        if dedupe:
            for i, t in enumerate(keep):  # compact in place: t >= i, so nothing is overwritten before it is read
                if t != i:
                    video.frames[i] = video.frames[int(t)]
        video.resize(len(keep))
        video.write_column("source_frame", 0, keep)
        video.update_attrs(n_frames_header=src.n_frames_header, n_frames_decoded=n, repeated_frames=int(repeated.sum()), deduplicated=bool(dedupe))
        if kinematics is not None:
            values, cols = read_kinematics_table(kinematics, n)
            video.update_attrs(kinematics_source=str(Path(kinematics).resolve()))
            video.set_kinematics(*with_total_flexion(values[keep], cols, kinematics))
        elif src.kinematics is not None:
            if len(src.kinematics) != n:
                raise InputError(f"kinematics have {len(src.kinematics)} rows but {n} frames decode", src.path)
            video.set_kinematics(*with_total_flexion(src.kinematics[keep], src.kinematics_columns, src.path))
    return video_id
