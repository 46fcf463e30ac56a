"""A project: one zarr v3 directory holding videos, their labels and per-frame tables."""

from __future__ import annotations

import json
import re
import shutil
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import numpy as np
import zarr
from zarr.storage import LocalStore

from .. import __version__
from ..errors import SchemaError, StoreError
from ..palette import Palette, load_palette
from . import layout
from .lock import DelegatedLock, WriteLock
from .video import Video, create_video_arrays


class Project:
    """Open with :meth:`open` (read-only unless ``mode="a"``) or :meth:`create`.

    A writable project holds the write lock until :meth:`close` (or the end of a ``with`` block).
    """

    def __init__(self, path: Path, root: zarr.Group, lock: WriteLock | None):
        self.path = path
        self._root = root
        self._lock = lock
        meta = root.attrs[layout.ROOT_KEY]
        self.palette: Palette = load_palette(meta["palette"])
        self.meta: dict = dict(meta)

    # -- opening -------------------------------------------------------------------------
    @classmethod
    def create(cls, path: str | Path, palette: Palette | str | None = None) -> "Project":
        """Create a new, empty project (writable) at ``path``; refuses an existing non-empty folder."""
        path = Path(path)
        if path.exists() and any(path.iterdir()):
            raise StoreError("folder exists and is not empty", path, "choose a new path for the project")
        pal = load_palette(palette)
        path.mkdir(parents=True, exist_ok=True)
        root = zarr.open_group(store=LocalStore(path), mode="w")  # clears the folder, so lock after
        lock = WriteLock(path).acquire()
        root.attrs[layout.ROOT_KEY] = {
            "schema": layout.SCHEMA_VERSION,
            "palette": pal.to_dict(),
            "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "tool_version": __version__,
        }
        root.create_group(layout.VIDEOS)
        return cls(path, root, lock)

    @classmethod
    def open(cls, path: str | Path, mode: str = "r", token: str | None = None) -> "Project":
        """Open an existing project; ``mode="a"`` takes the write lock (a second writer is refused).
        With the ``token`` of the live lock holder (:attr:`write_token`), a worker process of that
        holder writes under its lock instead (batch work: one video per task)."""
        path = Path(path)
        if not (path / "zarr.json").is_file():
            raise StoreError(
                "not a sonolabel project (no zarr.json)",
                path,
                "create one with `sonolabel import PROJECT SOURCE --subject ID`",
            )
        try:
            meta_doc = json.loads((path / "zarr.json").read_text())
        except (OSError, ValueError) as e:
            raise StoreError(f"cannot read project metadata ({e})", path / "zarr.json") from None
        meta = meta_doc.get("attributes", {}).get(layout.ROOT_KEY)
        if not isinstance(meta, dict) or "schema" not in meta:
            raise StoreError("a zarr group but not a sonolabel project", path)
        if int(meta["schema"]) > layout.SCHEMA_VERSION:
            raise SchemaError(
                f"written with store schema {meta['schema']} by sonolabel {meta.get('tool_version', '?')}; "
                f"this sonolabel ({__version__}) reads schema {layout.SCHEMA_VERSION} and older",
                path,
                "upgrade sonolabel (pip install -U sonolabel) to open it",
            )
        lock = None
        if mode == "a" and token is not None:
            lock = DelegatedLock(path, token).acquire()
        elif mode == "a":
            lock = WriteLock(path).acquire()
        elif mode != "r":
            raise ValueError(f"mode must be 'r' or 'a', not {mode!r}")
        root = zarr.open_group(store=LocalStore(path, read_only=(mode == "r")), mode="r" if mode == "r" else "r+")
        project = cls(path, root, lock)
        if isinstance(lock, WriteLock):
            project._remove_stale_staging()
        return project

    @classmethod
    def open_or_create(cls, path: str | Path, palette: Palette | str | None = None) -> tuple["Project", bool]:
        """A writable project at ``path``, created when missing; also says whether it was created."""
        path = Path(path)
        if (path / "zarr.json").exists():
            return cls.open(path, mode="a"), False
        return cls.create(path, palette), True

    @property
    def write_token(self) -> str:
        """The token that lets this holder's worker processes write (``Project.open(path, "a", token=...)``)."""
        self.require_writable()
        return self._lock.token

    @property
    def writable(self) -> bool:
        return self._lock is not None and self._lock.held

    def require_writable(self) -> None:
        if not self.writable:
            raise StoreError("project is open read-only", self.path, "open it with mode='a' to change it")

    def close(self) -> None:
        if self._lock is not None:
            self._lock.release()
            self._lock = None

    def __enter__(self) -> "Project":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Project({str(self.path)!r}, videos={len(self.video_ids())}, writable={self.writable})"

    # -- videos --------------------------------------------------------------------------
    def video_ids(self) -> list[str]:
        """Ids of complete videos, sorted (imports in progress are not listed)."""
        d = self.path / layout.VIDEOS
        if not d.is_dir():
            return []
        return sorted(p.name for p in d.iterdir() if p.is_dir() and not p.name.startswith(".") and (p / "zarr.json").exists())

    def video(self, video_id: str) -> Video:
        if video_id not in self.video_ids():
            known = ", ".join(self.video_ids()[:10]) or "none"
            raise StoreError(f"no video {video_id!r} in project (videos: {known})", self.path, "see `sonolabel info PROJECT`")
        return Video(self, self._root[f"{layout.VIDEOS}/{video_id}"], video_id)

    def videos(self) -> list[Video]:
        return [self.video(v) for v in self.video_ids()]

    def new_video_id(self, subject: str, trial: str | int | None = None, task: str | None = None) -> str:
        """A readable id from subject/trial/task, made unique in this project."""
        parts = [str(subject)] + ([f"T{trial}" if str(trial).isdigit() else str(trial)] if trial is not None else []) + ([task] if task else [])
        base = re.sub(r"[^A-Za-z0-9_.-]+", "_", "-".join(parts)).strip("._-") or "video"
        taken = set(self.video_ids())
        vid, n = base, 2
        while vid in taken:
            vid, n = f"{base}-{n}", n + 1
        return vid

    @contextmanager
    def staged_video(self, video_id: str, n_frames: int, height: int, width: int, attrs: dict) -> Iterator[Video]:
        """Write a new video under a staging name; it appears under ``video_id`` only if the block succeeds.

        The caller may shrink the frame count with ``video.resize(n)`` before leaving the block.
        """
        self.require_writable()
        if video_id in self.video_ids():
            raise StoreError(f"video {video_id!r} already exists", self.path)
        staging = f"{layout.STAGING_PREFIX}{video_id}"
        staging_dir = self.path / layout.VIDEOS / staging
        shutil.rmtree(staging_dir, ignore_errors=True)
        group = self._root.require_group(layout.VIDEOS).create_group(staging)
        group.attrs.update(attrs)
        create_video_arrays(group, n_frames, height, width)
        video = Video(self, group, video_id)
        try:
            yield video
        except BaseException:
            shutil.rmtree(staging_dir, ignore_errors=True)
            raise
        staging_dir.rename(self.path / layout.VIDEOS / video_id)

    def delete_video(self, video_id: str) -> None:
        self.require_writable()
        self.video(video_id)
        shutil.rmtree(self.path / layout.VIDEOS / video_id)

    def _remove_stale_staging(self) -> None:
        d = self.path / layout.VIDEOS
        for p in d.glob(f"{layout.STAGING_PREFIX}*") if d.is_dir() else []:
            shutil.rmtree(p, ignore_errors=True)

    def summary(self, videos: list[str] | None = None) -> list[dict]:
        """One row per video (of ``videos`` only, when given): id, subject, trial, task, frames, size, keyframes,
        share propagated and imported, the pixel spacing in mm (row, column) when known, and the quality
        ``sonolabel check`` estimated (mIoU at twice the keyframe spacing; None when unchecked or the keyframes
        changed since)."""
        rows = []
        for v in self.videos() if videos is None else [self.video(i) for i in videos]:
            a = v.attrs
            src = v.sources()
            rows.append(
                {
                    "video": v.id,
                    "subject": a.get("subject"),
                    "trial": a.get("trial"),
                    "task": a.get("task"),
                    "frames": v.n_frames,
                    "height": v.height,
                    "width": v.width,
                    "fps": a.get("fps"),
                    "keyframes": len(v.annotated_frames()),
                    "propagated": float(np.mean(src == layout.LabelSource.PROPAGATED)) if v.n_frames else 0.0,
                    "imported": float(np.mean(src == layout.LabelSource.IMPORTED)) if v.n_frames else 0.0,
                    "mm_per_px": a.get("spacing_mm"),
                    "kinematics": v.has_kinematics,
                    "check_miou": _checked_quality(v),
                    "mode": _propagation_mode(v),
                }
            )
        return rows


def _propagation_mode(video: Video) -> str | None:
    """free or learned: the keys the video was last propagated with (None: not propagated)."""
    model = video.state(layout.PROPAGATION_STATE, {}).get("model")
    return None if model is None else ("learned" if str(model).startswith("learned") else "free")


def _checked_quality(video: Video) -> float | None:
    """The estimate of the last check, while the video still has the keyframes it checked."""
    state = video.state(layout.CHECK_STATE, {})
    checked = state.get("keyframes", [])
    return state.get("estimate_miou") if checked and checked == video.annotated_frames() else None
