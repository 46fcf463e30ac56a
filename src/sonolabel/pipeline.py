"""The use cases the command line, the napari plugin and the benchmarks share.

* :func:`project_for_import` / :func:`discard_new_project`: a project opened for an import, created
  when missing, and removed again when its first import fails (no empty project left behind);
* :func:`import_source`: a recording, or a folder of image/mask pairs;
* :func:`run_propagation`: propagate a project's videos with settings from JSON or arguments;
* :func:`run_demo`: the whole pipeline on the bundled phantom sample;
* :func:`mean_iou`: the mIoU of two label maps over the classes present in either.
"""

from __future__ import annotations

import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterator

import numpy as np

from .errors import InputError
from .palette import load_palette
from .store import Project


def project_for_import(path: str | Path, palette: str | Path | None = None) -> tuple[Project, bool]:
    """The project at ``path`` open for writing, created (with ``palette``) when missing; returns it and whether
    it was created. A ``palette`` that differs from an existing project's is refused."""
    wanted = load_palette(palette) if palette else None
    project, created = Project.open_or_create(path, wanted)
    if wanted is not None and not created and project.palette != wanted:
        project.close()
        raise InputError("--palette differs from the project's palette", path, "drop --palette for an existing project")
    return project, created


def discard_new_project(project: Project) -> None:
    """Close and remove a project that :func:`project_for_import` created, after its first import failed."""
    path = project.path
    project.close()
    shutil.rmtree(path, ignore_errors=True)


@contextmanager
def importing(path: str | Path, palette: str | Path | None = None) -> Iterator[Project]:
    """A block that imports into the project at ``path``: created when missing, removed if the block fails then."""
    project, created = project_for_import(path, palette)
    try:
        with project:
            yield project
    except BaseException:
        if created:
            shutil.rmtree(path, ignore_errors=True)
        raise


def is_stills_folder(source: Path, masks: str | Path | None = None) -> bool:
    """A folder of image/mask pairs (``images/`` and ``masks/``, or ``masks`` given) rather than a frame folder."""
    return source.is_dir() and (masks is not None or ((source / "images").is_dir() and (source / "masks").is_dir()))


def import_source(
    project: Project, source: str | Path, subject: str, masks: str | Path | None = None, swap_rb: bool = False, progress: bool = False, **recording
) -> list[str]:
    """Import a recording (``recording``: trial, task, crop, fps, kinematics, h5_keys, mm_per_pixel, dedupe) or a
    folder of image/mask pairs (one video per still); returns the new video ids."""
    from .io import import_recording, import_stills

    source = Path(source)
    if not source.exists():
        raise InputError("no such file or folder", source)
    if is_stills_folder(source, masks):
        return import_stills(
            project, source, subject, masks_dir=masks, task=recording.get("task"), crop=recording.get("crop"), swap_rb=swap_rb, progress=progress
        )
    return [import_recording(project, source, subject, progress=progress, **recording)]


def run_propagation(
    project: Project,
    video_ids: list[str] | None = None,
    device: str = "auto",
    config_file: str | None = None,
    mode: str | None = None,
    weights: str | None = None,
    progress: bool = True,
    scheduler: str | None = None,
    workers: int | None = 1,
    fine: bool = False,
) -> list:
    """Propagate the given videos (default: every video with keyframes) of an open, writable project.
    ``fine``: at :data:`~.propagation.config.FINE_WORKING_SIZE`, the final pass (see docs/napari.md, *Finish*)."""
    from .propagation import PropagationConfig
    from .propagation.config import FINE_WORKING_SIZE
    from .propagation.project import propagate_project

    overrides = {"device": device, "mode": mode, "working_size": FINE_WORKING_SIZE if fine else None}
    config = (
        PropagationConfig.from_file(config_file, **overrides)
        if config_file
        else PropagationConfig.from_dict({k: v for k, v in overrides.items() if v is not None})
    )
    return propagate_project(project, video_ids, config, weights=weights, scheduler=scheduler, workers=workers, progress=progress)


def mean_iou(a: np.ndarray, b: np.ndarray, n_classes: int) -> float:
    """Mean IoU of two label maps over the classes present in either."""
    from .propagation.loko import class_ious

    return float(np.nanmean(class_ious(a, b, n_classes)))


def run_demo(out: str | Path | None = None, log: Callable[[str], None] = print) -> Path:
    """Import the bundled phantom clip, store ground-truth keyframes every 200 frames, propagate, check drift,
    export masks and a dataset; returns the project's path. ``log`` receives one line per step."""
    import zarr

    from .export import ExportConfig, export_dataset
    from .io import import_recording
    from .masks import export_masks, import_keyframe_masks
    from .phantom import read_manifest
    from .quantize import write_index_png
    from .review import ReviewLog, run_drift
    from .sample import sample_path

    sample = sample_path()
    out = Path(out) if out else Path(tempfile.mkdtemp(prefix="sonolabel-demo-"))
    project_dir = out / "project.zarr"
    if project_dir.exists():
        raise InputError("demo project exists already", project_dir, "pass a new --out folder")
    rec = read_manifest(sample)[0]
    log(f"[1/6] import {sample / rec.video}")
    with Project.create(project_dir) as project:
        vid = import_recording(project, sample / rec.video, rec.subject, trial=rec.trial, task="phantom", kinematics=sample / rec.kinematics, progress=True)
        video = project.video(vid)
        truth = zarr.open_array(str(sample / rec.labels), mode="r")
        keyframes = list(range(0, video.n_frames, 200))
        log(f"[2/6] keyframes {keyframes} from the phantom's ground truth (an annotator paints these in napari)")
        with tempfile.TemporaryDirectory() as tmp:
            for t in keyframes:
                write_index_png(Path(tmp) / f"{t:06d}.png", np.asarray(truth[t]), project.palette)
            import_keyframe_masks(video, tmp, who="demo")
        log("[3/6] propagate the keyframes to every frame")
        report = run_propagation(project, [vid])[0]
        k = len(project.palette)
        scores = [mean_iou(video.labels(t), np.asarray(truth[t]), k) for t in range(video.n_frames)]
        copy = [mean_iou(np.asarray(truth[min(keyframes, key=lambda key: abs(key - t))]), np.asarray(truth[t]), k) for t in range(video.n_frames)]
        log(
            f"      {report.frames_written} frames at {report.frames_written / report.seconds:.1f} frames/s; "
            f"mIoU against ground truth: mean {np.mean(scores):.3f}, worst frame {np.min(scores):.3f} "
            f"(copying the nearest keyframe: {np.mean(copy):.3f} / {np.min(copy):.3f})"
        )
        drift = run_drift(project, [vid])[0]
        pending = len(ReviewLog(project).queue("pending"))
        log(
            f"[4/6] drift check: {drift.flags} flags ({drift.trend} trend, {drift.outlier} outlier), {pending} pending review; "
            f"curves in {drift.report} (review with `sonolabel review list {project_dir}`)"
        )
        written = export_masks(video, out / "masks", source="final", fmt="colour")
        log(f"[5/6] exported {len(written)} masks to {out / 'masks'}")
        dataset = export_dataset(project, out / "dataset", ExportConfig(size=240))
        log(f"[6/6] exported a training dataset (240x240, OME-Zarr, splits, kinematics) to {dataset}")
    return project_dir
