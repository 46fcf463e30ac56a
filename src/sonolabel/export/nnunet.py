"""Export a project as an nnU-Net v2 raw dataset that nnU-Net trains on unchanged.

Layout (nnU-Net v2 "dataset format", 2-D natural images)::

    DatasetNNN_Name/
      dataset.json          channel_names {"0": "US"}, labels {class name: value}, numTraining, file_ending ".png"
      imagesTr/<case>_0000.png   grey frame at its stored (native, cropped) resolution
      labelsTr/<case>.png        class indices (0 background .. K-1)
      splits_final.json     subject-grouped folds: [{"train": [cases], "val": [cases]}, ...]
      cases.csv             case -> subject, video, frame, source, mm per pixel

Cases are ``<video>_<frame:06d>``. The same frames as the zarr export are written: labelled, not
excluded in review, not pending review unless asked. ``splits_final.json`` belongs in
``nnUNet_preprocessed/DatasetNNN_Name/`` once nnU-Net has planned the dataset (see docs/export.md);
its folds keep every frame of a subject on one side. The folder is written under a temporary
name and renamed when complete.
"""

from __future__ import annotations

import csv
import json
import os
import re
import shutil
from pathlib import Path
from typing import Callable

import numpy as np

from ..errors import InputError
from ..store import LabelSource, Project
from ..store.chunks import FrameReader
from ..store.layout import NO_LABEL
from .splits import loso_folds, train_val_split
from .writer import ExportConfig, exportable_frames

NAME = re.compile(r"^Dataset\d{3}_[A-Za-z0-9_-]+$")


def _write_png(path: Path, arr: np.ndarray) -> None:
    from PIL import Image

    Image.fromarray(np.ascontiguousarray(arr, np.uint8), mode="L").save(path, format="PNG")


def subject_folds(cases_per_subject: dict[str, list[str]], val_fraction: float, seed: int) -> list[dict]:
    """nnU-Net folds by subject: leave-one-subject-out (validate on the left-out subject) with three or
    more subjects, else one train/val split by subject."""
    subjects = sorted(cases_per_subject)
    folds = loso_folds(subjects)
    if folds:
        return [
            {
                "train": sorted(c for s in subjects if s not in f["test"] for c in cases_per_subject[s]),
                "val": sorted(c for s in f["test"] for c in cases_per_subject[s]),
            }
            for f in folds
        ]
    split = train_val_split({s: len(c) for s, c in cases_per_subject.items()}, val_fraction, seed)
    return [{"train": sorted(c for s in split["train"] for c in cases_per_subject[s]), "val": sorted(c for s in split["val"] for c in cases_per_subject[s])}]


def export_nnunet(project: Project, out: str | Path, config: ExportConfig | None = None, progress: Callable[[int], None] | None = None) -> dict:
    """Write the nnU-Net v2 raw dataset ``out`` (named ``DatasetNNN_Name``, must not exist); returns dataset.json."""
    cfg = config or ExportConfig()
    out = Path(out)
    if not NAME.match(out.name):
        raise InputError("an nnU-Net dataset folder must be named DatasetNNN_Name (three digits)", out, "e.g. nnUNet_raw/Dataset501_Forearm")
    if out.exists():
        raise InputError("exists already", out, "choose a new dataset path or remove the old one")
    videos = [project.video(v) for v in (cfg.videos or project.video_ids())]
    plan = [(v, exportable_frames(v, cfg.include_unreviewed)) for v in videos]
    plan = [(v, idx) for v, idx in plan if len(idx)]
    if not plan:
        raise InputError("no labelled frames to export", project.path, "annotate keyframes and propagate first")
    progress = progress or (lambda n: None)
    staging = out.with_name(f".{out.name}.partial-{os.getpid()}")
    shutil.rmtree(staging, ignore_errors=True)
    try:
        (staging / "imagesTr").mkdir(parents=True)
        (staging / "labelsTr").mkdir()
        cases: dict[str, list[str]] = {}
        rows = []
        for v, idx in plan:
            frames, annotated, propagated = FrameReader(v.frames), FrameReader(v.annotated), FrameReader(v.propagated)
            names = [s.name.lower() for s in LabelSource]
            src = v.sources()
            subject = str(v.attrs.get("subject"))
            spacing = v.spacing_mm or (float("nan"), float("nan"))
            for t in idx:
                t = int(t)
                case = f"{v.id}_{t:06d}"
                ann = annotated[t]
                lab = np.where(ann != NO_LABEL, ann, propagated[t])  # final labels: annotated where annotated
                _write_png(staging / "imagesTr" / f"{case}_0000.png", frames[t])
                _write_png(staging / "labelsTr" / f"{case}.png", lab)
                cases.setdefault(subject, []).append(case)
                rows.append((case, subject, v.id, t, names[src[t]], *spacing))
            progress(len(idx))
        palette = project.palette
        dataset = {
            "channel_names": {"0": "US"},
            "labels": {name: i for i, name in enumerate(palette.names)},
            "numTraining": len(rows),
            "file_ending": ".png",
            "name": out.name.split("_", 1)[1],
            "description": "B-mode ultrasound frames with sonolabel labels (subject-grouped folds in splits_final.json)",
        }
        (staging / "dataset.json").write_text(json.dumps(dataset, indent=1))
        folds = subject_folds(cases, cfg.val_fraction, cfg.seed)
        (staging / "splits_final.json").write_text(json.dumps(folds, indent=1))
        with open(staging / "cases.csv", "w", newline="") as f:
            w = csv.writer(f)
            w.writerow(["case", "subject", "video", "frame", "source", "mm_per_px_y", "mm_per_px_x"])
            w.writerows(rows)
        staging.rename(out)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return {**dataset, "folds": len(folds)}
