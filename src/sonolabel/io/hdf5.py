"""HDF5 sessions: ultrasound frames with optional synchronized hand kinematics.

Expected layout (one row per frame along the first axis of every dataset)::

    session.h5
      image        (T, H, W) or (T, H, W, 3) uint8     also found as: images, frames, us, ultrasound
      time         (T,) float seconds                   optional; also: timestamp, timestamps
      kinematics   (T, K) float, attrs["columns"]=[...] optional: joint or total flexion angles (deg)
      or thumb, index, middle, ring, little   (T,) each optional: per-finger total flexion (deg)

Other names are mapped with ``keys={"image": "us/frames", "kinematics": "hand/angles", ...}``
(``--key image=us/frames`` on the CLI).
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterator

import numpy as np

from ..errors import InputError
from ..store.layout import FINGERS
from .sources import FrameSource, to_grey

DEFAULT_KEYS = {
    "image": ("image", "images", "frames", "us", "ultrasound"),
    "time": ("time", "timestamp", "timestamps"),
    "kinematics": ("kinematics",),
}
BATCH = 64


class HDF5Session(FrameSource):
    """Reads frames (and kinematics when present) from an HDF5 session file."""

    def __init__(self, path: Path, keys: dict[str, str] | None = None):
        import h5py

        super().__init__(path)
        keys = dict(keys or {})
        unknown = set(keys) - set(DEFAULT_KEYS) - set(FINGERS)
        if unknown:
            raise InputError(f"unknown key mapping {sorted(unknown)}", path, f"map one of {sorted(DEFAULT_KEYS) + list(FINGERS)}")
        try:
            f = h5py.File(path, "r")
        except OSError as e:
            raise InputError(f"cannot open HDF5 file ({e})", path, "check the file is a complete HDF5 file") from None
        with f:
            self.image_key = self._find(f, "image", keys)
            if self.image_key is None:
                raise InputError(
                    f"no image dataset (looked for {', '.join(DEFAULT_KEYS['image'])})",
                    path,
                    "name the frames dataset with --key image=PATH/IN/FILE",
                )
            ds = f[self.image_key]
            if ds.ndim not in (3, 4):
                raise InputError(f"dataset {self.image_key!r} has shape {ds.shape}; expected (T, H, W) or (T, H, W, 3)", path)
            self.n_frames_header = int(ds.shape[0])
            tkey = self._find(f, "time", keys)
            if tkey is not None:
                t = np.asarray(f[tkey][:], np.float64)
                if len(t) == self.n_frames_header and len(t) > 1 and np.all(np.diff(t) > 0):
                    self.fps = float(1.0 / np.median(np.diff(t)))
            if ds.attrs.get("fps") is not None:
                self.fps = float(ds.attrs["fps"])
            self._read_kinematics(f, keys)

    @staticmethod
    def _find(f, role: str, keys: dict) -> str | None:
        if role in keys:
            if keys[role] not in f or not hasattr(f[keys[role]], "shape"):
                raise InputError(f"mapped {role} key {keys[role]!r} is not a dataset in the file", f.filename)
            return keys[role]
        import h5py

        return next((k for k in DEFAULT_KEYS.get(role, (role,)) if isinstance(f.get(k), h5py.Dataset)), None)

    def _read_kinematics(self, f, keys: dict) -> None:
        kkey = self._find(f, "kinematics", keys)
        if kkey is not None:
            arr = np.asarray(f[kkey][:], np.float64)
            arr = arr[:, None] if arr.ndim == 1 else arr
            cols = [str(c.decode() if isinstance(c, bytes) else c) for c in f[kkey].attrs.get("columns", [])]
            cols = cols if len(cols) == arr.shape[1] else [f"k{i}" for i in range(arr.shape[1])]
        else:
            found = [(name, self._find(f, name, keys)) for name in FINGERS]
            found = [(n, k) for n, k in found if k is not None]
            if not found:
                return
            arr = np.stack([np.asarray(f[k][:], np.float64).reshape(-1) for _, k in found], 1)
            cols = [n for n, _ in found]
        if arr.shape[0] != self.n_frames_header:
            raise InputError(
                f"kinematics have {arr.shape[0]} rows but there are {self.n_frames_header} frames",
                self.path,
                "kinematics must hold one row per frame; resample them to the frame times",
            )
        if not np.isfinite(arr).all():
            bad = int((~np.isfinite(arr)).any(1).sum())
            raise InputError(
                f"kinematics hold NaN or infinite values in {bad} rows", self.path, "interpolate the gaps (e.g. pandas interpolate) before importing"
            )
        self.kinematics, self.kinematics_columns = arr.astype(np.float32), cols

    def frames(self) -> Iterator[np.ndarray]:
        import h5py

        with h5py.File(self.path, "r") as f:
            ds = f[self.image_key]
            for i in range(0, ds.shape[0], BATCH):
                for img in ds[i : i + BATCH]:
                    yield to_grey(img)
