"""PyTorch datasets over an exported dataset, read lazily.

zarr 3 runs an event loop on a background thread, and a process forked after a store was opened
can deadlock on it. These datasets therefore open the store lazily, once per process (the first
``__getitem__`` in each DataLoader worker), and never hold an open store across a fork.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Callable

import numpy as np
import torch
import zarr
from torch.utils.data import Dataset

from ..errors import InputError
from ..store.chunks import FrameReader
from .splits import read_splits


def read_table(path: str | Path):
    """The dataset's per-frame table as a pandas DataFrame."""
    import pandas as pd

    g = zarr.open_group(str(path), mode="r")
    return pd.DataFrame({name: arr[:] for name, arr in g["table"].arrays()})


def dataset_info(path: str | Path) -> dict:
    """The dataset's description (classes, size, subjects, provenance); refuses a dataset whose
    arrays or files lead outside its folder through links or '..'."""
    path = Path(path)
    root = path.resolve()
    for entry in path.iterdir() if path.is_dir() else []:
        if not entry.resolve().is_relative_to(root):
            raise InputError(f"{entry.name} links outside the dataset", entry, "a dataset must hold its own files")
    try:
        g = zarr.open_group(str(path), mode="r")
        return dict(g.attrs["sonolabel_dataset"])
    except (FileNotFoundError, KeyError, ValueError) as e:
        raise InputError(f"not a sonolabel dataset ({type(e).__name__})", path, "export one with `sonolabel export`") from None


def select_subjects(path: str | Path, split: str | dict | list | None) -> list[str] | None:
    """Subjects of ``split``: "train"/"val" from splits.json, "fold<k>/train|val|test", a list, or None (all)."""
    if split is None or split == "all":
        return None
    if isinstance(split, list):
        return split
    splits = read_splits(path)
    if isinstance(split, str) and split.startswith("fold"):
        k, _, part = split[4:].partition("/")
        return splits["folds"][int(k)][part or "test"]
    return splits[split]


class _LazyStore:
    """Frame readers for a dataset's images, labels and kinematics, opened once per process."""

    def __init__(self, path: str | Path):
        self.path = str(path)
        self._pid = None
        self._readers: dict = {}

    def _open(self) -> None:
        if self._pid != os.getpid():  # first use in this process (or a forked worker): open afresh
            g = zarr.open_group(self.path, mode="r")
            self._readers = {"images": FrameReader(g["0"]), "labels": FrameReader(g["labels/classes/0"]),
                             "kinematics": g["kinematics"][:]}
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


class SegmentationFrames(Dataset):
    """(image (1, S, S) float in 0-1, labels (S, S) int64) for every frame of the chosen subjects."""

    def __init__(self, path: str | Path, split: str | dict | list | None = "train",
                 transform: Callable[[torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor]] | None = None):
        self.info = dataset_info(path)
        self.store = _LazyStore(path)
        subjects = select_subjects(path, split)
        table = read_table(path)
        mask = np.ones(len(table), bool) if subjects is None else table["subject"].isin(subjects).to_numpy()
        self.indices = np.flatnonzero(mask)
        self.table = table.iloc[self.indices].reset_index(drop=True)
        self.transform = transform
        self.class_names = list(self.info["classes"])

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        j = int(self.indices[i])
        img = torch.from_numpy(self.store.images()[j]).float().div_(255.0)[None]
        lab = torch.from_numpy(self.store.labels()[j].astype(np.int64))
        if self.transform is not None:
            img, lab = self.transform(img[None], lab[None])
            img, lab = img[0], lab[0]
        return img, lab


class FrameSequences(Dataset):
    """Windows of ``length`` frames taken every ``stride`` frames within one video:
    (images (T, 1, S, S), labels (T, S, S), kinematics (T, K)); augmentations see the whole window."""

    def __init__(self, path: str | Path, length: int = 16, stride: int = 2, split: str | dict | list | None = "train",
                 step: int | None = None, transform: Callable | None = None, require_kinematics: bool = False):
        self.info = dataset_info(path)
        self.store = _LazyStore(path)
        self.length, self.stride, self.transform = length, stride, transform
        subjects = select_subjects(path, split)
        table = read_table(path)
        starts = []
        for _, rows in table.groupby("video", sort=False):
            if subjects is not None and rows["subject"].iloc[0] not in subjects:
                continue
            frames = rows["frame"].to_numpy()
            pos = rows.index.to_numpy()
            lookup = dict(zip(frames.tolist(), pos.tolist()))
            for f in frames[:: step or stride]:
                wanted = [f + i * stride for i in range(length)]
                if all(w in lookup for w in wanted):
                    starts.append([lookup[w] for w in wanted])
        self.windows = np.asarray(starts, dtype=np.int64).reshape(-1, length)
        if require_kinematics and len(self.windows):
            kin = zarr.open_group(str(path), mode="r")["kinematics"][:]
            bad = np.isnan(kin[self.windows]).any((1, 2))
            if bad.all():
                raise InputError("no window has kinematics", path, "export videos imported with kinematics")
            self.windows = self.windows[~bad]

    def __len__(self) -> int:
        return len(self.windows)

    def __getitem__(self, i: int):
        rows = self.windows[i]
        img = torch.from_numpy(self.store.images().read_many(rows)).float().div_(255.0)[:, None]
        lab = torch.from_numpy(self.store.labels().read_many(rows).astype(np.int64))
        kin = torch.from_numpy(self.store.kinematics()[rows])
        if self.transform is not None:
            img, lab = self.transform(img, lab)
        return img, lab, kin
