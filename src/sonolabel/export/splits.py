"""Subject-based splits: one place for the rules.

* **train/val**: whole subjects go to validation until it holds about ``val_fraction`` of the
  frames (seeded); a subject is never split, so no frame of a validation subject is trained on.
* **leave-one-subject-out folds** (SonoRank protocol): fold *k* tests subject *k*, validates on
  the preceding subject (in sorted order, wrapping around) and trains on the rest.

Splits are stored in the dataset as ``splits.json``, a plain file a person may edit, as
nnU-Net's ``splits_final.json`` is.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from ..errors import InputError

SPLITS_FILE = "splits.json"


def train_val_split(frames_per_subject: dict[str, int], val_fraction: float = 0.1, seed: int = 0) -> dict[str, list[str]]:
    """Subjects for training and validation, with about ``val_fraction`` of the frames in validation."""
    subjects = sorted(frames_per_subject)
    if len(subjects) < 2:
        return {"train": subjects, "val": []}
    order = list(np.random.default_rng(seed).permutation(subjects))
    total = sum(frames_per_subject.values())
    val, count = [], 0
    for s in order:
        if count >= val_fraction * total or len(val) == len(subjects) - 1:
            break
        # add the subject if it brings the validation share closer to the target
        if abs(count + frames_per_subject[s] - val_fraction * total) < abs(count - val_fraction * total) or not val:
            val.append(s)
            count += frames_per_subject[s]
    return {"train": sorted(set(subjects) - set(val)), "val": sorted(val)}


def loso_folds(subjects: list[str]) -> list[dict]:
    """One fold per subject: test it, validate on the preceding subject, train on the others."""
    subjects = sorted(subjects)
    if len(subjects) < 3:
        return []
    return [{"test": [s], "val": [subjects[k - 1]], "train": [x for x in subjects if x not in (s, subjects[k - 1])]} for k, s in enumerate(subjects)]


def make_splits(frames_per_subject: dict[str, int], val_fraction: float = 0.1, seed: int = 0) -> dict:
    return {
        "seed": seed,
        "val_fraction": val_fraction,
        **train_val_split(frames_per_subject, val_fraction, seed),
        "folds": loso_folds(list(frames_per_subject)),
    }


def read_splits(dataset: str | Path) -> dict:
    """The dataset's splits, as edited by a person if they did; checked against its subjects."""
    path = Path(dataset) / SPLITS_FILE
    if path.exists() and not path.resolve().is_relative_to(Path(dataset).resolve()):
        raise InputError("links to a file outside the dataset", path, "replace the link by the dataset's own splits.json")
    try:
        splits = json.loads(path.read_text())
    except (OSError, ValueError) as e:
        raise InputError(f"cannot read splits ({e})", path, "restore it, or export the dataset again") from None
    for key in ("train", "val"):
        if not isinstance(splits.get(key), list):
            raise InputError(f"splits need a {key!r} list of subjects", path)
    overlap = set(splits["train"]) & set(splits["val"])
    if overlap:
        raise InputError(f"subjects {sorted(overlap)} are in both train and val", path, "a subject belongs to one side")
    return splits
