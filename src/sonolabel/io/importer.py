"""Import recordings and labelled stills into a project.

Every import finds the ultrasound box inside the black borders (or takes ``crop``), stores grey
uint8 frames at the box's native resolution, records where the frames came from (path, SHA-256,
crop, subject/trial/task, fps, time, tool version) and checks the decoded frame count against
the header. Nothing appears in the project unless the whole import succeeds.
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .. import __version__
from ..errors import InputError
from ..store import Project
from ..store.layout import FINGERS
from .sources import FrameSource, open_source

BATCH = 32


@dataclass(frozen=True)
class Crop:
    """The ultrasound box: ``x, y`` of its top-left corner, ``w, h`` its size, in source pixels."""

    x: int
    y: int
    w: int
    h: int

    @classmethod
    def parse(cls, text: str) -> "Crop":
        try:
            x, y, w, h = (int(v) for v in text.split(","))
        except ValueError:
            raise InputError(f"--crop must be x,y,w,h in pixels, got {text!r}") from None
        if w <= 0 or h <= 0 or x < 0 or y < 0:
            raise InputError(f"--crop {text!r} needs x, y >= 0 and w, h > 0")
        return cls(x, y, w, h)

    def check(self, height: int, width: int, source: Path) -> None:
        if self.x + self.w > width or self.y + self.h > height:
            raise InputError(f"crop {self.as_list()} (x,y,w,h) falls outside the {width}x{height} frames", source)

    def apply(self, frame: np.ndarray) -> np.ndarray:
        return frame[self.y:self.y + self.h, self.x:self.x + self.w]

    def union_with_mask(self, mask: np.ndarray) -> "Crop":
        """The smallest box holding this one and every labelled pixel of ``mask``: a crop never cuts a label."""
        ys, xs = np.nonzero(mask)
        if ys.size == 0:
            return self
        x0, y0 = min(self.x, int(xs.min())), min(self.y, int(ys.min()))
        x1, y1 = max(self.x + self.w, int(xs.max()) + 1), max(self.y + self.h, int(ys.max()) + 1)
        return Crop(x0, y0, x1 - x0, y1 - y0)

    def as_list(self) -> list[int]:
        return [self.x, self.y, self.w, self.h]


def _main_run(profile: np.ndarray, min_fraction: float, max_gap: float = 0.25) -> tuple[int, int]:
    """The span of content along one axis: runs above ``min_fraction`` merged across gaps shorter
    than ``max_gap`` of the axis (dark bands inside the image), keeping the run with most content."""
    on = np.append(profile >= min_fraction, False)
    runs, start = [], None
    for i, v in enumerate(on):
        if v and start is None:
            start = i
        elif not v and start is not None:
            if runs and start - runs[-1][1] <= max_gap * len(profile):
                runs[-1] = (runs[-1][0], i)
            else:
                runs.append((start, i))
            start = None
    if not runs:
        return 0, len(profile)
    return max(runs, key=lambda r: profile[r[0]:r[1]].sum())


def detect_box(frames: np.ndarray, threshold: int = 10, min_fraction: float = 0.05) -> Crop:
    """The bounding box of the image content inside black borders, from a stack of grey frames.

    Rows and columns where at least ``min_fraction`` of the temporal maximum exceeds ``threshold``
    count as content; the box spans the main run of such columns, then of rows within it, so
    labels or icons drawn in the border do not widen it while dark bands inside the image
    (anechoic regions, acoustic shadows) do not split it.
    """
    frames = np.asarray(frames)
    if frames.ndim not in (2, 3):
        raise ValueError(f"expected grey (H, W) or (T, H, W) frames, got shape {frames.shape}")
    peak = frames.max(axis=0) if frames.ndim == 3 else frames
    bright = peak > threshold
    x0, x1 = _main_run(bright.mean(axis=0), min_fraction)
    y0, y1 = _main_run(bright[:, x0:x1].mean(axis=1), min_fraction)
    if x1 - x0 < 16 or y1 - y0 < 16:  # nothing found: keep the whole frame
        return Crop(0, 0, peak.shape[1], peak.shape[0])
    return Crop(x0, y0, x1 - x0, y1 - y0)


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
        raise InputError(f"kinematics have {len(df)} rows but the video has {n_frames} frames", path,
                         "give one row per frame")
    if not np.isfinite(df.to_numpy()).all():
        raise InputError("kinematics hold NaN or infinite values", path, "interpolate the gaps before importing")
    return df.to_numpy(np.float32), [str(c) for c in df.columns]


def with_total_flexion(values: np.ndarray, columns: list[str], path: str | Path) -> tuple[np.ndarray, list[str]]:
    """Kinematics plus the five fingers' total flexion when they can be derived from joint angles or
    markers (docs/sonorank.md), so every video with hand kinematics carries ``thumb``..``little``."""
    import pandas as pd

    from ..rank.kinematics import flexion_from_table

    table = pd.DataFrame(np.asarray(values, np.float64), columns=columns)
    theta = flexion_from_table(table)
    if theta is None or set(FINGERS) <= set(columns):
        return values, columns
    if not np.isfinite(theta.to_numpy()).all():
        raise InputError("total flexion is undefined on some frames (coincident markers?)", path,
                         "check the marker trajectories for gaps and duplicates")
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
) -> str:
    """Import one recording (video file, frame folder, HDF5 session, Clarius raw) as a new video; returns its id
    (``video_id`` when given: batch imports assign ids up front)."""
    from tqdm import tqdm

    project.require_writable()
    src = source if isinstance(source, FrameSource) else open_source(source, fps=fps, h5_keys=h5_keys)
    first = src.sample()
    height, width = first.shape[1:]
    if isinstance(crop, str):
        crop = Crop.parse(crop)
    box = crop or detect_box(first)
    box.check(height, width, src.path)
    if video_id is None:
        video_id = project.new_video_id(subject, trial, task)
    elif video_id in project.video_ids():
        raise InputError(f"video {video_id!r} exists already", project.path)
    attrs = {
        "subject": str(subject), "trial": None if trial is None else str(trial), "task": task,
        "fps": src.fps, "source": str(Path(src.path).resolve()), "sha256": sha256_of(Path(src.path)),
        "crop": box.as_list(), "crop_detected": crop is None, "source_size": [width, height],
        "imported": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "tool_version": __version__, "kind": "video",
        **{k: v for k, v in src.extra.items() if v is not None},
    }
    capacity = max(src.n_frames_header, 1)
    with project.staged_video(video_id, capacity, box.h, box.w, attrs) as video:
        n, batch = 0, []
        bar = tqdm(total=src.n_frames_header or None, desc=f"import {video_id}", unit="frame", disable=not progress)

        def flush() -> None:
            nonlocal n, capacity, batch
            if n + len(batch) > capacity:
                capacity = max(2 * capacity, n + len(batch))
                video.resize(capacity)
            video.frames[n:n + len(batch)] = np.stack(batch)
            n += len(batch)
            bar.update(len(batch))
            batch = []

        for frame in src.frames():
            if frame.shape != (height, width):
                raise InputError(f"frame {n + len(batch)} is {frame.shape[1]}x{frame.shape[0]}, earlier frames {width}x{height}", src.path)
            batch.append(box.apply(frame))
            if len(batch) == BATCH:
                flush()
        if batch:
            flush()
        bar.close()
        if n == 0:
            raise InputError("holds no frames", src.path, "check the recording is not empty")
        if src.n_frames_header and n < src.n_frames_header:
            raise InputError(f"header promises {src.n_frames_header} frames but only {n} decode", src.path,
                             "the file is truncated or damaged; copy or export it again")
        video.resize(n)
        video.group.attrs.update({"n_frames_header": src.n_frames_header, "n_frames_decoded": n})
        if kinematics is not None:
            values, cols = read_kinematics_table(kinematics, n)
            video.group.attrs["kinematics_source"] = str(Path(kinematics).resolve())
            video.set_kinematics(*with_total_flexion(values, cols, kinematics))
        elif src.kinematics is not None:
            if len(src.kinematics) != n:
                raise InputError(f"kinematics have {len(src.kinematics)} rows but {n} frames decode", src.path)
            video.set_kinematics(*with_total_flexion(src.kinematics, src.kinematics_columns, src.path))
    return video_id
