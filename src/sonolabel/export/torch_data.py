"""PyTorch datasets over an exported dataset, read lazily.

They read through :class:`~sonolabel.export.dataset.ExportedDataset`, whose readers open the store
lazily, once per process (the first ``__getitem__`` in each DataLoader worker), and never hold an
open store across a fork.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import numpy as np
import torch
from torch.utils.data import Dataset

from ..errors import InputError
from .dataset import ExportedDataset


class SegmentationFrames(Dataset):
    """(image (1, S, S) float in 0-1, labels (S, S) int64) for every frame of the chosen subjects."""

    def __init__(
        self,
        path: "str | Path | ExportedDataset",
        split: str | list | None = "train",
        transform: Callable[[torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor]] | None = None,
    ):
        dataset = ExportedDataset.open(path)
        self.info = dataset.info
        self.store = dataset.readers()
        subjects = dataset.subjects(split)
        table = dataset.table
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

    def __init__(
        self,
        path: "str | Path | ExportedDataset",
        length: int = 16,
        stride: int = 2,
        split: str | list | None = "train",
        step: int | None = None,
        transform: Callable | None = None,
        require_kinematics: bool = False,
    ):
        dataset = ExportedDataset.open(path)
        self.info = dataset.info
        self.store = dataset.readers()
        self.length, self.stride, self.transform = length, stride, transform
        subjects = dataset.subjects(split)
        table = dataset.table
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
            kin = dataset.kinematics()
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
