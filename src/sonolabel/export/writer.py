"""Export a project's labelled frames as a training-ready zarr dataset (also an OME-Zarr 0.5 image).

Dataset layout (see docs/export.md)::

    OUT/                         attrs: ome (image t,y,x), sonolabel_dataset {classes, palette, provenance, ...}
      0                          uint8 (N, S, S) images, one frame per chunk
      labels/classes/0           uint8 (N, S, S) labels; attrs.ome image-label: colours and class names
      table/<column>             per-frame: subject, trial, task, video, frame, source_frame, time, source, review,
                                 drift, mm_per_px_y, mm_per_px_x (pixel size at the exported size; NaN unknown)
      kinematics                 float32 (N, K) (NaN for videos without kinematics)
      splits.json                subject-based train/val and leave-one-subject-out folds (editable)

The dataset is written under a hidden temporary name next to ``OUT`` and renamed when complete,
so an interrupted export never leaves a dataset under the final name.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F
import zarr
from zarr.codecs import ZstdCodec

from .. import __version__
from .._tensors import channel_argmax
from ..tasks import run_tasks
from ..errors import InputError
from ..store import LabelSource, Project, Video
from ..store.chunks import FrameReader, FrameWriter
from ..store.layout import FINGERS, NO_LABEL
from . import dataset, ome
from .splits import SPLITS_FILE, make_splits

BATCH = 64
TABLE_STR = ("subject", "trial", "task", "video", "source", "review")


@dataclass
class ExportConfig:
    size: int = 240
    videos: list[str] = field(default_factory=list)  # empty: every video
    include_unreviewed: bool = False  # include frames flagged for review and not yet reviewed
    label_resize: str = "majority"  # majority | nearest
    val_fraction: float = 0.1
    seed: int = 0


def resize_images(frames: np.ndarray, size: int) -> np.ndarray:
    """(B, H, W) uint8 -> (B, size, size) by area averaging."""
    if frames.shape[1:] == (size, size):
        return frames
    x = torch.from_numpy(np.ascontiguousarray(frames))[:, None].float()
    return F.interpolate(x, size=(size, size), mode="area")[:, 0].round().byte().numpy()


def resize_labels(labels: np.ndarray, size: int, n_classes: int, method: str = "majority") -> np.ndarray:
    """(B, H, W) labels -> (B, size, size) by majority vote over each output pixel's area, or nearest."""
    if labels.shape[1:] == (size, size):
        return labels
    h, w = labels.shape[1:]
    if method == "nearest":
        ys = (np.arange(size) * h / size + h / size / 2).astype(int)
        xs = (np.arange(size) * w / size + w / size / 2).astype(int)
        return labels[:, ys][:, :, xs]
    if h == 2 * size and w == 2 * size:  # the common 480 -> 240 case, without one-hot maps
        a, b, c, d = labels[:, 0::2, 0::2], labels[:, 0::2, 1::2], labels[:, 1::2, 0::2], labels[:, 1::2, 1::2]
        out = np.where((a == b) | (a == c) | (a == d), a, np.where((b == c) | (b == d), b, np.where(c == d, c, a)))
        return out.astype(np.uint8)
    # each class's share of every output pixel, one class at a time (a one-hot stack of 480x480 frames is
    # hundreds of MB a batch); the largest share wins, the first class on ties
    lab = torch.from_numpy(np.ascontiguousarray(labels))[:, None]
    shares = torch.cat([F.adaptive_avg_pool2d((lab == c).float(), (size, size)) for c in range(n_classes)], 1)
    return channel_argmax(shares).numpy()


def exportable_frames(video: Video, include_unreviewed: bool) -> np.ndarray:
    """Frames with labels, less those excluded in review (and, unless asked, those awaiting review)."""
    src = video.sources()
    keep = src != LabelSource.NONE
    review = video.column("review", "unreviewed")
    keep &= review != "excluded"
    if not include_unreviewed:
        keep &= review != "pending"
    return np.flatnonzero(keep)


def _convert_batch(
    readers: tuple[FrameReader, FrameReader, FrameReader],
    writers: tuple[FrameWriter, FrameWriter],
    sel: np.ndarray,
    pos: int,
    size: int,
    n_classes: int,
    label_resize: str,
) -> tuple[np.ndarray, np.ndarray]:
    """Read frames ``sel`` and their final labels (annotated where annotated, else propagated), resize
    them and write them at dataset rows ``pos...``; returns what was written."""
    frames, annotated, propagated = readers
    img = np.stack([frames[t] for t in sel])
    ann = np.stack([annotated[t] for t in sel])
    lab = np.where(ann != NO_LABEL, ann, np.stack([propagated[t] for t in sel]))
    img, lab = resize_images(img, size), resize_labels(lab, size, n_classes, label_resize)
    writers[0].write_many(pos, img)
    writers[1].write_many(pos, lab)
    return img, lab


def _convert_video(job: tuple, progress: Callable[[int], None] | None = None) -> str:
    """Write one video's frames and labels at dataset rows ``pos...`` of the staging dataset; returns
    the digest of what it wrote. Runs here or as a dask task (it opens everything by path)."""
    project_path, video_id, idx, staging, pos, size, n_classes, label_resize = job
    digest = hashlib.sha256()
    with Project.open(project_path) as project:
        v = project.video(video_id)
        readers = (FrameReader(v.frames), FrameReader(v.annotated), FrameReader(v.propagated))
        g = zarr.open_group(str(staging), mode="r+")
        writers = (FrameWriter(g[dataset.IMAGES]), FrameWriter(g[dataset.LABELS]))
        batches = [(idx[i : i + BATCH], pos + i) for i in range(0, len(idx), BATCH)]
        with ThreadPoolExecutor(max_workers=2) as pool:
            jobs = pool.map(lambda b: _convert_batch(readers, writers, b[0], b[1], size, n_classes, label_resize), batches)
            for (sel, _), (img, lab) in zip(batches, jobs):
                digest.update(img.tobytes())
                digest.update(lab.tobytes())
                if progress is not None:
                    progress(len(sel))
    return digest.hexdigest()


def common_spacing(ys: list[float], xs: list[float]) -> tuple[float, float] | None:
    """The pixel size every exported frame shares (within 0.1 %), or None when unknown for some or they differ."""
    ys_, xs_ = np.asarray(ys, np.float64), np.asarray(xs, np.float64)
    if not len(ys_) or not (np.isfinite(ys_).all() and np.isfinite(xs_).all()):
        return None
    if np.ptp(ys_) > 1e-3 * ys_.mean() or np.ptp(xs_) > 1e-3 * xs_.mean():
        return None
    return float(ys_.mean()), float(xs_.mean())


def _remove_dead_staging(out: Path) -> None:
    """Remove temporary folders left by exports to ``out`` whose process died."""
    for d in out.parent.glob(f".{out.name}.partial-*"):
        pid = d.name.rsplit("-", 1)[-1]
        try:
            os.kill(int(pid), 0)
        except (ValueError, ProcessLookupError):
            shutil.rmtree(d, ignore_errors=True)
        except PermissionError:  # alive, someone else's
            pass


def export_dataset(
    project: Project,
    out: str | Path,
    config: ExportConfig | None = None,
    progress: Callable[[int], None] | None = None,
    scheduler: str | None = None,
    workers: int | None = 1,
) -> Path:
    """Write the dataset to ``out`` (which must not exist); returns its path. ``workers`` > 1 or a
    ``scheduler`` address converts the videos as dask tasks (one video each; the same dataset)."""
    cfg = config or ExportConfig()
    out = Path(out)
    if out.exists():
        raise InputError("exists already", out, "choose a new dataset path or remove the old one")
    if cfg.label_resize not in ("majority", "nearest"):
        raise InputError(f"label resize must be majority or nearest, not {cfg.label_resize!r}")
    ids = cfg.videos or project.video_ids()
    videos = [project.video(v) for v in ids]
    plan = [(v, exportable_frames(v, cfg.include_unreviewed)) for v in videos]
    plan = [(v, idx) for v, idx in plan if len(idx)]
    n = sum(len(idx) for _, idx in plan)
    if n == 0:
        raise InputError("no labelled frames to export", project.path, "annotate keyframes and propagate first")
    palette, s, k = project.palette, cfg.size, len(project.palette)
    _remove_dead_staging(out)
    staging = out.with_name(f".{out.name}.partial-{os.getpid()}")
    progress = progress or (lambda i: None)
    try:
        root = zarr.open_group(str(staging), mode="w")
        frame = dict(shape=(n, s, s), chunks=(1, s, s), dtype="uint8", fill_value=0, compressors=ZstdCodec(level=1))
        root.create_array(dataset.IMAGES, **frame)
        labels_group = root.create_group(dataset.LABELS_GROUP)
        label_img = labels_group.create_group(dataset.LABEL_IMAGE)
        label_img.create_array("0", **frame)
        kin_cols = list(FINGERS)
        kin = root.create_array(
            dataset.KINEMATICS, shape=(n, len(kin_cols)), chunks=(max(1, min(n, 65536)), len(kin_cols)), dtype="float32", fill_value=float("nan")
        )
        table: dict[str, list] = {
            c: [] for c in ("subject", "trial", "task", "video", "frame", "source_frame", "time", "source", "review", "drift", "mm_per_px_y", "mm_per_px_x")
        }
        starts = np.cumsum([0] + [len(idx) for _, idx in plan])
        jobs = [(str(project.path), v.id, idx, str(staging), int(start), s, k, cfg.label_resize) for (v, idx), start in zip(plan, starts)]
        if scheduler is None and (workers or 1) <= 1:
            digests = [_convert_video(job, progress) for job in jobs]
        else:
            digests = run_tasks(_convert_video, jobs, scheduler=scheduler, workers=workers, label="export")
            progress(n)
        digest = hashlib.sha256("".join(digests).encode())
        for (v, idx), pos in zip(plan, starts):
            a = v.attrs
            fps = a.get("fps") or float("nan")
            names = np.array([s_.name.lower() for s_ in LabelSource])[v.sources()[idx]]
            vk = v.kinematics()
            if vk is not None:
                cols = [c for c in kin_cols if c in vk.columns]
                block = np.full((len(idx), len(kin_cols)), np.nan, np.float32)
                block[:, [kin_cols.index(c) for c in cols]] = vk[cols].to_numpy()[idx]
                kin[int(pos) : int(pos) + len(idx)] = block
            table["subject"] += [str(a.get("subject"))] * len(idx)
            table["trial"] += [str(a.get("trial") or "")] * len(idx)
            table["task"] += [str(a.get("task") or "")] * len(idx)
            table["video"] += [v.id] * len(idx)
            table["frame"] += idx.tolist()
            source_frame = v.column("source_frame", -1).astype(np.int64)
            table["source_frame"] += (source_frame[idx] if (source_frame >= 0).all() else idx).tolist()
            spacing = v.spacing_mm
            table["mm_per_px_y"] += [spacing[0] * v.height / s if spacing else float("nan")] * len(idx)
            table["mm_per_px_x"] += [spacing[1] * v.width / s if spacing else float("nan")] * len(idx)
            table["time"] += (idx / fps).tolist()
            table["source"] += names.tolist()
            table["review"] += list(map(str, v.column("review", "unreviewed")[idx]))
            table["drift"] += list(map(float, v.column("drift", np.nan)[idx]))
        tg = root.create_group(dataset.TABLE)
        for col, values in table.items():
            arr = np.asarray(values, dtype=object if col in TABLE_STR else (np.int64 if col in ("frame", "source_frame") else np.float64))
            z = tg.create_array(
                col, shape=(n,), chunks=(max(1, min(n, 65536)),), dtype=str if col in TABLE_STR else arr.dtype, fill_value="" if col in TABLE_STR else 0
            )
            z[:] = arr
        per_subject: dict[str, int] = {}
        for subj in table["subject"]:
            per_subject[subj] = per_subject.get(subj, 0) + 1
        splits = make_splits(per_subject, cfg.val_fraction, cfg.seed)
        (staging / SPLITS_FILE).write_text(json.dumps(splits, indent=1))
        kin.attrs.update({"columns": kin_cols, "unit": "deg", "videos_with_kinematics": [v.id for v, _ in plan if v.has_kinematics]})
        spacing = common_spacing(table["mm_per_px_y"], table["mm_per_px_x"])
        labels_group.attrs["ome"] = ome.labels_group_metadata([dataset.LABEL_IMAGE])
        label_img.attrs["ome"] = ome.label_image_metadata(dataset.LABEL_IMAGE, palette, spacing)
        root.attrs["ome"] = ome.image_metadata("images", spacing)
        root.attrs[dataset.ATTRS] = {
            "format": dataset.FORMAT,
            "frames": n,
            "size": s,
            "classes": list(palette.names),
            "palette": palette.to_dict(),
            "spacing_mm": None if spacing is None else list(spacing),
            "subjects": sorted(per_subject),
            "provenance": {
                "tool_version": __version__,
                "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
                "project": str(project.path),
                "parameters": asdict(cfg),
                "content_sha256": digest.hexdigest(),
                "sources": {v.id: {"sha256": v.attrs.get("sha256"), "source": v.attrs.get("source"), "frames": int(len(idx))} for v, idx in plan},
            },
        }
        staging.rename(out)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return out
