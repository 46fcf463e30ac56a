"""The exported dataset: its layout, and the one way to open and read it (see docs/export.md).

The writer (:mod:`.writer`) creates it through these names; the PyTorch datasets, the U-Net and
SonoRank read it through :class:`ExportedDataset`, never by its keys.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import zarr

from ..errors import InputError
from ..store.chunks import FrameReader
from .splits import SPLITS_FILE, read_splits

IMAGES = "0"  # uint8 (N, S, S)
LABELS_GROUP = "labels"
LABEL_IMAGE = "classes"
LABELS = f"{LABELS_GROUP}/{LABEL_IMAGE}/0"  # uint8 (N, S, S) class indices
TABLE = "table"  # per-frame columns
KINEMATICS = "kinematics"  # float32 (N, 5) total flexion per finger, NaN without
ATTRS = "sonolabel_dataset"  # the dataset's description in the root group's attributes
FORMAT = 1

__all__ = [
    "ExportedDataset",
    "DatasetReaders",
    "dataset_info",
    "read_table",
    "SPLITS_FILE",
    "IMAGES",
    "LABELS",
    "LABELS_GROUP",
    "LABEL_IMAGE",
    "TABLE",
    "KINEMATICS",
    "ATTRS",
    "FORMAT",
]


class DatasetReaders:
    """Readers for a dataset's images, labels and kinematics, opened once per process.

    zarr 3 runs an event loop on a background thread, and a process forked after a store was opened
    can deadlock on it; so the store is opened on first use in each process (a DataLoader worker
    opens its own) and never pickled open."""

    def __init__(self, path: str | Path):
        self.path = str(path)
        self._pid: int | None = None
        self._readers: dict = {}

    def _open(self) -> None:
        if self._pid != os.getpid():
            g = zarr.open_group(self.path, mode="r")
            self._readers = {"images": FrameReader(g[IMAGES]), "labels": FrameReader(g[LABELS]), "kinematics": g[KINEMATICS][:]}
            self._pid = os.getpid()

    def images(self) -> FrameReader:
        self._open()
        return self._readers["images"]

    def labels(self) -> FrameReader:
        self._open()
        return self._readers["labels"]

    def kinematics(self) -> np.ndarray:
        self._open()
        return self._readers["kinematics"]

    def __getstate__(self):
        return {"path": self.path, "_pid": None, "_readers": {}}


@dataclass
class ExportedDataset:
    """An exported dataset, opened (checked) once: its description, per-frame table, splits and readers."""

    path: Path
    info: dict
    _table: object = field(default=None, repr=False)

    @classmethod
    def open(cls, path: "str | Path | ExportedDataset") -> "ExportedDataset":
        """Open ``path`` (an ``ExportedDataset`` is returned as is); refuses a folder that is not a dataset,
        or whose arrays or files lead outside it through links or '..'."""
        if isinstance(path, ExportedDataset):
            return path
        path = Path(path)
        root = path.resolve()
        for entry in path.iterdir() if path.is_dir() else []:
            if not entry.resolve().is_relative_to(root):
                raise InputError(f"{entry.name} links outside the dataset", entry, "a dataset must hold its own files")
        try:
            info = dict(zarr.open_group(str(path), mode="r").attrs[ATTRS])
        except (FileNotFoundError, KeyError, ValueError) as e:
            raise InputError(f"not a sonolabel dataset ({type(e).__name__})", path, "export one with `sonolabel export`") from None
        return cls(path, info)

    @property
    def classes(self) -> list[str]:
        return list(self.info["classes"])

    @property
    def table(self):
        """The per-frame table (subject, video, frame, source, review, ...) as a pandas DataFrame, read once."""
        if self._table is None:
            import pandas as pd

            g = zarr.open_group(str(self.path), mode="r")
            self._table = pd.DataFrame({name: arr[:] for name, arr in g[TABLE].arrays()})
        return self._table

    @property
    def splits(self) -> dict:
        """``splits.json`` as a person may have edited it (read afresh, checked)."""
        return read_splits(self.path)

    def kinematics(self) -> np.ndarray:
        return zarr.open_group(str(self.path), mode="r")[KINEMATICS][:]

    def readers(self) -> DatasetReaders:
        return DatasetReaders(self.path)

    def fold(self, fold: int | None) -> dict[str, list[str]]:
        """Training, validation (and, for a leave-one-subject-out fold, test) subjects."""
        splits = self.splits
        if fold is None:
            return {"train": splits["train"], "val": splits["val"]}
        folds = splits.get("folds") or []
        if not 0 <= fold < len(folds):
            raise InputError(f"fold {fold} does not exist ({len(folds)} folds; they need 3 or more subjects)", self.path / SPLITS_FILE)
        return dict(folds[fold])

    def subjects(self, split: str | list | None) -> list[str] | None:
        """Subjects of ``split``: "train"/"val", "fold<k>/train|val|test", a list, or None / "all" (every subject: None)."""
        if split is None or split == "all":
            return None
        if isinstance(split, list):
            return split
        if split.startswith("fold"):
            k, _, part = split[4:].partition("/")
            return self.fold(int(k))[part or "test"]
        return self.splits[split]


def dataset_info(path: str | Path) -> dict:
    """The dataset's description (classes, size, subjects, provenance)."""
    return ExportedDataset.open(path).info


def read_table(path: str | Path):
    """The dataset's per-frame table as a pandas DataFrame."""
    return ExportedDataset.open(path).table
