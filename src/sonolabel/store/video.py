"""One video in a project: frames, label arrays and the per-frame table.

Each frame is its own chunk, and zarr's local store writes every chunk to a temporary file and
renames it into place, so a frame is either written whole or not at all. Whether a frame is a
keyframe is not a separate flag that could disagree with the labels: it is the presence of the
frame's chunk in ``labels/annotated``, whose fill value (255, no label) no real mask can equal.
"""

from __future__ import annotations

import getpass
import os
import shutil
import time
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
import zarr

from ..errors import InputError, StoreError
from . import layout
from .layout import LabelSource

if TYPE_CHECKING:
    from .project import Project

LABEL_SOURCES = ("annotated", "propagated", "final")


def create_video_arrays(group: zarr.Group, n_frames: int, height: int, width: int) -> None:
    """Create the frame, label and table arrays of a new video group."""
    frame = dict(shape=(n_frames, height, width), chunks=(1, height, width), dtype="uint8", fill_value=0)
    group.create_array(layout.FRAMES, **frame)
    group.create_array(layout.ANNOTATED, **{**frame, "fill_value": layout.NO_LABEL})
    group.create_array(layout.PROPAGATED, **frame)
    for name, (dtype, fill) in layout.TABLE_COLUMNS.items():
        group.create_array(
            f"{layout.TABLE}/{name}",
            shape=(n_frames,),
            chunks=(layout.TABLE_CHUNK,),
            dtype=str if dtype == "str" else dtype,
            fill_value=fill,
        )


class Video:
    """A video of a :class:`~sonolabel.store.Project`; arrays are zarr arrays read lazily."""

    def __init__(self, project: "Project", group: zarr.Group, video_id: str):
        self.project = project
        self.group = group
        self.id = video_id

    def __repr__(self) -> str:
        return f"Video({self.id!r}, frames={self.n_frames}, {self.height}x{self.width})"

    # -- arrays and metadata -------------------------------------------------------------
    def _reload(self) -> zarr.Group:
        """The group with its attributes as stored now. Another Video object for the same video (or another
        process) may have written some since this one was opened; writing from a stale copy would drop them."""
        store = self.group.store
        self.group = zarr.open_group(store=store, path=self.group.path, mode="r" if store.read_only else "r+")
        return self.group

    @property
    def attrs(self) -> dict:
        return dict(self._reload().attrs)

    @property
    def frames(self) -> zarr.Array:
        return self.group[layout.FRAMES]

    @property
    def annotated(self) -> zarr.Array:
        return self.group[layout.ANNOTATED]

    @property
    def propagated(self) -> zarr.Array:
        return self.group[layout.PROPAGATED]

    @property
    def predicted(self) -> zarr.Array:
        """A trained U-Net's labels (``sonolabel predict``), created empty on first use."""
        if layout.PREDICTED not in self.group:
            self.project.require_writable()
            h, w = self.height, self.width
            return self.group.require_array(layout.PREDICTED, shape=(self.n_frames, h, w), chunks=(1, h, w), dtype="uint8", fill_value=0)
        return self.group[layout.PREDICTED]

    @property
    def has_prediction(self) -> bool:
        """Whether a U-Net's labels are stored (``sonolabel predict``)."""
        return layout.PREDICTED in self.group

    @property
    def margin(self) -> zarr.Array | None:
        """Propagation's per-pixel confidence, (T, h, w) uint8 on its label grid (see :data:`layout.MARGIN`);
        None until a propagation has written it."""
        return self.group[layout.MARGIN] if layout.MARGIN in self.group else None

    def save_margin(self, start: int, margin: np.ndarray) -> None:
        """Store propagation's per-pixel margin ((B, h, w) floats in [0, 1]) for frames ``start..start+B``. The
        array keeps the grid of its first write; margins from another label grid (another mode or working size
        for some segments) are resampled to it."""
        from scipy.ndimage import zoom

        self.project.require_writable()
        margin = np.asarray(margin, np.float32)
        b, h, w = margin.shape
        arr = self.margin
        if arr is None:
            arr = self.group.require_array(layout.MARGIN, shape=(self.n_frames, h, w), chunks=(1, h, w), dtype="uint8", fill_value=layout.NO_MARGIN)
        elif arr.shape[1:] != (h, w):
            margin = zoom(margin, (1, arr.shape[1] / h, arr.shape[2] / w), order=1, grid_mode=True, mode="nearest")
        arr[start : start + b] = np.round(np.clip(margin, 0, 1) * layout.MARGIN_SCALE).astype(np.uint8)

    def lazy_uncertainty(self):
        """Per-pixel uncertainty, 1 - margin in [0, 1], as a lazy float32 dask array on the key grid; 0 where a
        frame was not propagated (keyframes included). None before propagation stored margins."""
        import dask.array as da

        if self.margin is None:
            return None
        m = da.from_zarr(self.margin)
        u = (layout.MARGIN_SCALE - m.astype(np.float32)) / layout.MARGIN_SCALE
        return da.where(m == layout.NO_MARGIN, np.float32(0), u)

    @property
    def n_frames(self) -> int:
        return int(self.frames.shape[0])

    @property
    def height(self) -> int:
        return int(self.frames.shape[1])

    @property
    def width(self) -> int:
        return int(self.frames.shape[2])

    @property
    def spacing_mm(self) -> tuple[float, float] | None:
        """(row, column) millimetres per stored pixel, or None when either is unknown."""
        s = self.attrs.get("spacing_mm")
        if not s or s[0] is None or s[1] is None:
            return None
        return float(s[0]), float(s[1])

    @property
    def _dir(self) -> str:
        return os.path.join(self.project.path, self.group.path)

    def resize(self, n_frames: int) -> None:
        """Change the frame count (only while importing)."""
        h, w = self.height, self.width
        for name in (layout.FRAMES, layout.ANNOTATED, layout.PROPAGATED):
            self.group[name].resize((n_frames, h, w))
        if self.margin is not None:
            self.margin.resize((n_frames, *self.margin.shape[1:]))
        for name in layout.TABLE_COLUMNS:
            if f"{layout.TABLE}/{name}" in self.group:  # stores from before a column was added lack it
                self.group[f"{layout.TABLE}/{name}"].resize((n_frames,))

    # -- keyframes and labels ------------------------------------------------------------
    def annotated_frames(self) -> list[int]:
        """Frame indices that hold an annotation (keyframes), sorted; read from the chunk listing."""
        chunk_dir = os.path.join(self._dir, *layout.ANNOTATED.split("/"), "c")
        try:
            names = os.listdir(chunk_dir)
        except FileNotFoundError:
            return []
        n_frames = self.n_frames  # read once: each read opens the frames array's metadata
        return sorted(int(n) for n in names if n.isdigit() and int(n) < n_frames)

    def _check_frame(self, t: int) -> int:
        t = int(t)
        if not 0 <= t < self.n_frames:
            raise StoreError(f"frame {t} is outside video {self.id!r} (0-{self.n_frames - 1})", self.project.path)
        return t

    def check_mask(self, mask: np.ndarray, source_name: str) -> np.ndarray:
        mask = np.asarray(mask)
        if mask.shape != (self.height, self.width):
            raise InputError(
                f"mask is {mask.shape[1] if mask.ndim > 1 else '?'}x{mask.shape[0]} but video {self.id!r} frames are {self.width}x{self.height}",
                source_name,
                "resize or crop the mask to the video's (cropped) frame size",
            )
        if mask.size and (mask.min() < 0 or mask.max() >= len(self.project.palette)):
            raise InputError(
                f"mask holds label {int(mask.max())} but the project has {len(self.project.palette)} classes",
                source_name,
            )
        return mask.astype(np.uint8)

    def save_annotation(self, t: int, mask: np.ndarray, who: str | None = None, corrected: bool | None = None, source_name: str = "<mask>") -> None:
        """Store a person's labels for frame ``t`` (making it a keyframe), atomically.

        ``corrected`` records that a propagated frame was fixed; by default it is inferred from
        the frame's previous source.
        """
        self.project.require_writable()
        t = self._check_frame(t)
        mask = self.check_mask(mask, source_name)
        src = self.group[f"{layout.TABLE}/source"]
        if corrected is None:
            corrected = int(src[t]) in (LabelSource.PROPAGATED, LabelSource.IMPORTED, LabelSource.CORRECTED)
        try:
            self.annotated[t] = mask  # the durable part: one chunk, written to a temp file and renamed
        except OSError as e:
            raise StoreError(
                f"could not write the labels of frame {t} of {self.id} ({e.strerror or e})",
                self.project.path,
                "free space or fix the disk, then save again; the frame's previous labels are unchanged",
            ) from None
        self._set_row(t, LabelSource.CORRECTED if corrected else LabelSource.ANNOTATED, who)
        if self.margin is not None:  # a person's labels are certain: no uncertainty shown on a keyframe
            self.margin[t] = layout.NO_MARGIN

    def remove_annotation(self, t: int, who: str | None = None) -> None:
        """Unmark keyframe ``t`` (its annotation is deleted; propagated labels stay)."""
        self.project.require_writable()
        t = self._check_frame(t)
        shutil.rmtree(os.path.join(self._dir, *layout.ANNOTATED.split("/"), "c", str(t)), ignore_errors=True)
        has_prop = os.path.isdir(os.path.join(self._dir, *layout.PROPAGATED.split("/"), "c", str(t)))
        kind = LabelSource.IMPORTED if self.attrs.get("labels_from") == "imported" else LabelSource.PROPAGATED
        self._set_row(t, kind if has_prop else LabelSource.NONE, who)

    def save_propagated(self, start: int, labels: np.ndarray, source: LabelSource = LabelSource.PROPAGATED) -> None:
        """Store propagated (or imported) labels for frames ``start..start+len(labels)``; keyframes stay as annotated."""
        self.project.require_writable()
        stop = start + len(labels)
        self.propagated[start:stop] = labels
        src = self.group[f"{layout.TABLE}/source"]
        cur = src[start:stop]
        keep = (cur == LabelSource.ANNOTATED) | (cur == LabelSource.CORRECTED)
        src[start:stop] = np.where(keep, cur, np.uint8(source))
        if source != LabelSource.PROPAGATED and self.margin is not None:  # labels from elsewhere: no propagation confidence
            self.margin[start:stop] = layout.NO_MARGIN

    def _set_row(self, t: int, source: LabelSource, who: str | None) -> None:
        self.group[f"{layout.TABLE}/source"][t] = np.uint8(source)
        self.group[f"{layout.TABLE}/edited_by"][t] = who or getpass.getuser()
        self.group[f"{layout.TABLE}/edited_at"][t] = time.time()

    def labels(self, t: int, source: str = "final") -> np.ndarray:
        """Labels of frame ``t``: ``annotated``, ``propagated``, or ``final`` (annotated where annotated)."""
        t = self._check_frame(t)
        if source not in LABEL_SOURCES:
            raise ValueError(f"source must be one of {LABEL_SOURCES}")
        if source == "annotated" or (source == "final" and t in set(self.annotated_frames())):
            return self.annotated[t]
        return self.propagated[t]

    def lazy_frames(self):
        """Frames as a dask array (read chunk by chunk, never loaded whole)."""
        import dask.array as da

        return da.from_zarr(self.frames)

    def lazy_labels(self):
        """Final labels as a dask array: annotated where annotated, else propagated."""
        import dask.array as da

        ann = da.from_zarr(self.annotated)
        return da.where(ann != layout.NO_LABEL, ann, da.from_zarr(self.propagated))

    def sources(self) -> np.ndarray:
        """Per-frame :class:`LabelSource` codes, with keyframes taken from the annotation chunks."""
        src = np.asarray(self.group[f"{layout.TABLE}/source"][:], dtype=np.uint8)
        key = np.zeros(self.n_frames, bool)
        key[self.annotated_frames()] = True
        # a kill between writing a keyframe's chunk and its table row leaves the row stale
        src[key & ~np.isin(src, (LabelSource.ANNOTATED, LabelSource.CORRECTED))] = LabelSource.ANNOTATED
        src[~key & np.isin(src, (LabelSource.ANNOTATED, LabelSource.CORRECTED))] = LabelSource.NONE
        return src

    # -- per-frame table, per-video state, kinematics ---------------------------------------
    def column_array(self, name: str, n_classes: int | None = None) -> zarr.Array:
        """The zarr array of the registered column ``name`` (:data:`layout.COLUMNS`), created when missing;
        a per-class column needs ``n_classes`` (the project's class count by default)."""
        spec = layout.COLUMNS.get(name)
        if spec is None:
            raise KeyError(f"{name!r} is not a registered per-frame column (store/layout.py COLUMNS)")
        key = f"{layout.TABLE}/{name}"
        if key in self.group:
            return self.group[key]
        self.project.require_writable()
        k = n_classes or len(self.project.palette)
        shape, chunks = ((self.n_frames, k), (layout.TABLE_CHUNK, k)) if spec.per_class else ((self.n_frames,), (layout.TABLE_CHUNK,))
        return self.group.create_array(key, shape=shape, chunks=chunks, dtype=str if spec.dtype == "str" else spec.dtype, fill_value=spec.fill)

    def write_column(self, name: str, start: int, values: np.ndarray) -> None:
        """Write ``values`` into column ``name`` at frames ``start..start+len(values)`` (creating the column)."""
        values = np.asarray(values)
        n_classes = values.shape[1] if values.ndim == 2 else None
        self.column_array(name, n_classes)[start : start + len(values)] = values

    def has_column(self, name: str) -> bool:
        return f"{layout.TABLE}/{name}" in self.group

    def state(self, key: str, default=None):
        """A job's per-video state (e.g. :data:`layout.PROPAGATION_STATE`), as last stored."""
        value = self._reload().attrs.get(key, default)
        return dict(value) if isinstance(value, dict) else value

    def set_state(self, key: str, value) -> None:
        """Store a job's per-video state (JSON-serializable) in the video's attributes."""
        self.project.require_writable()
        self._reload().attrs[key] = value

    def update_attrs(self, **values) -> None:
        """Add or change the video's descriptive attributes (provenance, imported labels' origin...)."""
        self.project.require_writable()
        self._reload().attrs.update(values)

    def column(self, name: str, default) -> np.ndarray:
        """A per-frame table column (``table/<name>``), or ``default`` for every frame when the video has none."""
        key = f"{layout.TABLE}/{name}"
        if key in self.group:
            return np.asarray(self.group[key][:])
        return np.full(self.n_frames, default, dtype=object if isinstance(default, str) else None)

    @property
    def has_kinematics(self) -> bool:
        return layout.KINEMATICS in self.group

    def set_kinematics(self, values: np.ndarray, columns: list[str], unit: str = "deg") -> None:
        """Store per-frame kinematics (one row per frame)."""
        self.project.require_writable()
        values = np.asarray(values, dtype=np.float32)
        if values.shape != (self.n_frames, len(columns)):
            raise InputError(f"kinematics have shape {values.shape}, expected ({self.n_frames}, {len(columns)}) (one row per frame)")
        arr = self.group.create_array(layout.KINEMATICS, shape=values.shape, chunks=values.shape, dtype="float32", fill_value=float("nan"), overwrite=True)
        arr[:] = values
        arr.attrs.update({"columns": list(columns), "unit": unit})

    def kinematics(self) -> pd.DataFrame | None:
        if not self.has_kinematics:
            return None
        arr = self.group[layout.KINEMATICS]
        return pd.DataFrame(arr[:], columns=arr.attrs["columns"])

    def table(self) -> pd.DataFrame:
        """The per-frame table: frame, time, keyframe, source, edited_by, edited_at, propagation
        confidence (similarity, entropy, per-class forward/backward agreement), a U-Net's disagreement
        (model_ce, model_dice, model_dice_<class>, model_shift_<class>, model_uncertainty) after
        ``sonolabel predict``, and kinematics."""
        n = self.n_frames
        fps = self.attrs.get("fps") or 0
        src = self.sources()
        df = pd.DataFrame(
            {
                "frame": np.arange(n),
                "time": np.arange(n) / fps if fps else np.full(n, np.nan),
                "keyframe": np.isin(src, (LabelSource.ANNOTATED, LabelSource.CORRECTED)),
                "source": pd.Categorical.from_codes(src, [s.name.lower() for s in LabelSource]),
                "edited_by": self.group[f"{layout.TABLE}/edited_by"][:],
                "edited_at": pd.to_datetime(self.group[f"{layout.TABLE}/edited_at"][:], unit="s"),
            }
        )
        for name in ("source_frame", "similarity", "entropy", "model_ce", "model_dice", "model_uncertainty"):
            if f"{layout.TABLE}/{name}" in self.group:
                df[name] = self.group[f"{layout.TABLE}/{name}"][:]
        for name, prefix in (("agreement", "agreement"), ("model_dice_class", "model_dice"), ("model_shift", "model_shift")):
            if f"{layout.TABLE}/{name}" in self.group:
                values = self.group[f"{layout.TABLE}/{name}"][:]
                for i, cls in enumerate(self.project.palette.names[: values.shape[1]]):
                    df[f"{prefix}_{cls}"] = values[:, i]
        kin = self.kinematics()
        if kin is not None:
            df = pd.concat([df, kin], axis=1)
        return df
