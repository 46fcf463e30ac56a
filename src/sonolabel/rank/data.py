"""Windows of an exported dataset for SonoRank: which frames, what they show, what the hand did.

A window is ``length`` frames taken every ``subsample`` frames (T=16 at 20 fps subsampled by 2 is
1.6 s at 10 Hz) within one video. Its kinematics give the travel ``delta`` per finger (ranking)
and, by majority vote over its frames, whether each finger is flexed (flexion); flex thresholds
come from each finger's range of motion in that video. The rest reference of a video is its first
exported frame (the session starts at rest), repeated over the window as the real-time system does.
"""

from __future__ import annotations

import multiprocessing
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, Dataset

from ..errors import InputError
from ..training.augment import Augment
from ..export.dataset import ExportedDataset
from ..kinematics import flex_labels
from .objectives import window_labels, window_travel

INPUTS = ("raw", "labels", "both")


@dataclass
class Windows:
    """Every window of the chosen subjects: dataset rows (W, T), video number, travel and flex labels."""

    rows: np.ndarray  # (W, T) dataset rows
    video: np.ndarray  # (W,) index into ``videos``
    travel: np.ndarray  # (W, 5) degrees
    flexed: np.ndarray  # (W, 5) 0/1 majority labels
    videos: list[str]
    subjects: list[str]  # per video
    rest_rows: np.ndarray  # (V,) dataset row of each video's rest frame
    seconds: np.ndarray  # (W,) time of the window's last frame from the start of its video (NaN: unknown)

    def __len__(self) -> int:
        return len(self.rows)

    def subset(self, keep: np.ndarray) -> "Windows":
        return Windows(self.rows[keep], self.video[keep], self.travel[keep], self.flexed[keep], self.videos, self.subjects, self.rest_rows, self.seconds[keep])


def build_windows(
    dataset: str | Path, subjects: list[str] | None, length: int, subsample: int, step: int = 1, flex_fraction: float = 0.5, min_range: float = 10.0
) -> Windows:
    """Windows starting every ``step`` frames in each video of ``subjects`` (all when None) that has kinematics."""
    data = ExportedDataset.open(dataset)
    table, kin = data.table, data.kinematics()
    rows, video, travel, flexed, videos, video_subjects, rest_rows, seconds = [], [], [], [], [], [], [], []
    for vid, part in table.groupby("video", sort=False):
        if subjects is not None and part["subject"].iloc[0] not in subjects:
            continue
        part = part.sort_values("frame")
        theta = kin[part.index.to_numpy()]
        if np.isnan(theta).any():
            continue  # no (or incomplete) kinematics: nothing to learn from here
        frames = part["frame"].to_numpy()
        clock = part["time"].to_numpy(float) - float(part["time"].iloc[0]) if "time" in part else np.full(len(part), np.nan)
        lookup = dict(zip(frames.tolist(), range(len(frames))))
        labels = flex_labels(theta, flex_fraction, min_range)
        offsets = np.arange(length) * subsample
        k = len(videos)
        for f in frames[::step]:
            pos = [lookup.get(int(f + o)) for o in offsets]
            if None in pos:
                continue
            rows.append(part.index.to_numpy()[pos])
            travel.append(window_travel(theta[pos]))
            flexed.append(window_labels(labels[pos]))
            seconds.append(clock[pos[-1]])
            video.append(k)
        videos.append(str(vid))
        video_subjects.append(str(part["subject"].iloc[0]))
        rest_rows.append(int(part.index[0]))
    if not rows:
        raise InputError(
            f"no window of {length} frames (every {subsample}) with kinematics" + (f" for subjects {subjects}" if subjects else ""),
            dataset,
            "export videos imported with kinematics (sonolabel import --kinematics), or shorten the window",
        )
    return Windows(
        np.asarray(rows, np.int64),
        np.asarray(video, np.int64),
        np.asarray(travel, np.float32),
        np.asarray(flexed, np.int8),
        videos,
        video_subjects,
        np.asarray(rest_rows, np.int64),
        np.asarray(seconds, np.float64),
    )


class WindowReader:
    """Reads windows as model input (T, C, size, size): raw frames, one-hot labels, or both."""

    def __init__(self, dataset: str | Path, input: str, size: int, augment: Augment | None = None):
        if input not in INPUTS:
            raise InputError(f"input {input!r} is not one of {', '.join(INPUTS)}")
        data = ExportedDataset.open(dataset)
        info = data.info
        self.store = data.readers()
        self.input, self.size, self.augment = input, size, augment
        self.n_classes = len(info["classes"])
        self.classes = list(info["classes"])

    @property
    def channels(self) -> int:
        return {"raw": 1, "labels": self.n_classes, "both": 1 + self.n_classes}[self.input]

    def read(self, rows: np.ndarray, augment: bool = True) -> torch.Tensor:
        img = torch.from_numpy(self.store.images().read_many(rows)).float().div_(255.0)[:, None]
        lab = torch.from_numpy(self.store.labels().read_many(rows).astype(np.int64))
        if img.shape[-1] != self.size:
            img = F.interpolate(img, size=(self.size, self.size), mode="area")
            lab = F.interpolate(lab[:, None].float(), size=(self.size, self.size), mode="nearest")[:, 0].long()
        if augment and self.augment is not None:
            img, lab = self.augment(img, lab)
        parts = []
        if self.input in ("raw", "both"):
            parts.append(img)
        if self.input in ("labels", "both"):
            parts.append(F.one_hot(lab.clamp(0, self.n_classes - 1), self.n_classes).permute(0, 3, 1, 2).float())
        return torch.cat(parts, 1)


class RankGroups(Dataset):
    """``n_groups`` random groups of ``size`` windows from one video each; every pair within a group is ranked.

    A group of 2 is one pair, as in the paper. A group of K ranks K(K-1)/2 pairs for the cost of
    encoding K windows: the encoder dominates the cost, so on a CPU larger groups see many more
    pairs per second. The same (seed, epoch, i) gives the same group.
    """

    def __init__(self, windows: Windows, reader: WindowReader, n_groups: int, size: int = 2, seed: int = 0):
        if size < 2:
            raise InputError(f"a group needs at least 2 windows to form a pair, not {size}")
        self.windows, self.reader, self.n_groups, self.size, self.seed, self.epoch = windows, reader, n_groups, size, seed, 0
        self.by_video = [np.flatnonzero(windows.video == v) for v in range(len(windows.videos))]
        counts = np.array([len(b) for b in self.by_video], float)
        self.video_p = counts / counts.sum()

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def group(self, i: int) -> np.ndarray:
        rng = np.random.default_rng([self.seed, self.epoch, i])
        members = self.by_video[rng.choice(len(self.by_video), p=self.video_p)]
        return rng.choice(members, self.size, replace=len(members) < self.size)

    def __len__(self) -> int:
        return self.n_groups

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Windows (K, T, C, S, S) and their travel (K, 5)."""
        idx = self.group(i)
        w = self.windows
        return torch.stack([self.reader.read(w.rows[j]) for j in idx]), torch.from_numpy(w.travel[idx])


def group_pairs(size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Indices (a, b) of every unordered pair of a group of ``size`` windows (a < b)."""
    return tuple(torch.triu_indices(size, size, 1))


class FlexWindows(Dataset):
    """(window, rest frame (1, C, S, S), flex labels (5,), window index) for flexion training. With
    ``frames`` False the window and rest frame are empty: a classifier that reads precomputed features
    only (class areas, flow) needs no pixels."""

    def __init__(self, windows: Windows, reader: WindowReader, augment: bool = True, frames: bool = True):
        self.windows, self.reader, self.augment, self.frames = windows, reader, augment, frames

    def __len__(self) -> int:
        return len(self.windows)

    def __getitem__(self, i: int):
        w = self.windows
        label = torch.from_numpy(w.flexed[i].astype(np.float32))
        if not self.frames:
            return torch.zeros(0), torch.zeros(0), label, i
        rest = self.reader.read(w.rest_rows[w.video[i] : w.video[i] + 1], augment=False)
        return self.reader.read(w.rows[i], self.augment), rest, label, i


def sample_eval_pairs(windows: Windows, n_pairs: int, seed: int = 12345) -> np.ndarray:
    """A fixed set of (a, b) window pairs within videos, for comparable ranking AUCs across runs."""
    rng = np.random.default_rng(seed)
    out = []
    by_video = [np.flatnonzero(windows.video == v) for v in range(len(windows.videos))]
    by_video = [b for b in by_video if len(b) >= 2]
    if not by_video:
        return np.zeros((0, 2), np.int64)
    counts = np.array([len(b) for b in by_video], float)
    for v in rng.choice(len(by_video), n_pairs, p=counts / counts.sum()):
        out.append(rng.choice(by_video[v], 2, replace=False))
    return np.asarray(out, np.int64)


def batch_loader(ds: Dataset, cfg, batch_size: int, shuffle: bool, device: torch.device, seed: int) -> DataLoader:
    """Batches of ``ds`` with the run's worker count (``cfg.workers``; none inside dask workers, which cannot fork)."""
    workers = 0 if multiprocessing.current_process().daemon else cfg.workers  # no children inside dask workers
    return DataLoader(
        ds,
        batch_size=batch_size,
        shuffle=shuffle,
        num_workers=workers,
        drop_last=shuffle,
        generator=torch.Generator().manual_seed(seed),
        pin_memory=device.type == "cuda",
    )
