"""A labelled project from phantom recordings: the ground truth stored as if annotated and propagated.

Trainers, benchmarks and tests need a dataset whose labels are right by construction; this
imports each recording (video and kinematics) through the normal importer and stores its
ground truth as keyframes every ``keyframe_every`` frames and propagated labels in between.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import zarr

from ..store import Project
from .writer import read_manifest


def phantom_project(phantom_dir: str | Path, project_path: str | Path, keyframe_every: int = 200, who: str = "phantom") -> Project:
    """Import every recording of ``phantom_dir`` into a new project at ``project_path``, labelled with its ground truth.
    Returns the project, open for writing (close it, or use it as a context manager)."""
    from ..io import import_recording

    phantom_dir = Path(phantom_dir)
    recordings = read_manifest(phantom_dir)  # checked before anything is created
    project = Project.create(project_path)
    for rec in recordings:
        vid = import_recording(project, phantom_dir / rec.video, rec.subject, trial=rec.trial, task="phantom", kinematics=phantom_dir / rec.kinematics)
        video = project.video(vid)
        truth = zarr.open_array(str(phantom_dir / rec.labels), mode="r")
        for start in range(0, video.n_frames, 256):
            video.save_propagated(start, np.asarray(truth[start : start + 256]))
        for t in range(0, video.n_frames, keyframe_every):
            video.save_annotation(t, np.asarray(truth[t]), who=who, corrected=False)
    return project
