"""Import many recordings listed in a CSV manifest, as dask tasks (one recording each).

Manifest columns: ``source`` (a path, relative to the manifest's folder), ``subject``, and
optionally ``trial``, ``task``, ``kinematics``, ``fps``, ``crop``, ``mm_per_pixel``, ``dedupe``
(true/false). Video ids are assigned here,
before any task starts, so a parallel import names videos exactly as a serial one. Each
recording is imported whole or not at all; one that fails is reported and the others stay.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from ..tasks import run_tasks
from ..errors import InputError, SonolabelError
from ..store import Project

COLUMNS = ("source", "subject", "trial", "task", "kinematics", "fps", "crop", "mm_per_pixel", "dedupe")


@dataclass
class ImportResult:
    source: str
    video: str
    error: str | None = None


def read_import_manifest(path: str | Path) -> list[dict]:
    path = Path(path)
    try:
        df = pd.read_csv(path, dtype=str, keep_default_na=False)
    except (OSError, ValueError) as e:
        raise InputError(f"cannot read the import manifest ({e})", path) from None
    missing = {"source", "subject"} - set(df.columns)
    if missing:
        raise InputError(f"the import manifest lacks columns {sorted(missing)}", path, f"columns: {', '.join(COLUMNS)}")
    unknown = set(df.columns) - set(COLUMNS)
    if unknown:
        raise InputError(f"unknown manifest columns {sorted(unknown)}", path, f"columns: {', '.join(COLUMNS)}")
    rows = []
    for i, r in df.iterrows():
        row = {k: (v or None) for k, v in r.items()}
        for key in ("source", "kinematics"):
            if row.get(key):
                row[key] = str((path.parent / row[key]))
        if not row["source"] or not Path(row["source"]).exists():
            raise InputError(f"row {i + 2}: no such source {r['source']!r}", path)
        rows.append(row)
    return rows


def _import_one(job: tuple) -> ImportResult:
    path, token, video_id, row = job
    from .importer import import_recording

    try:
        with Project.open(path, "a", token=token) as project:
            import_recording(
                project,
                row["source"],
                row["subject"],
                trial=row.get("trial"),
                task=row.get("task"),
                crop=row.get("crop"),
                fps=float(row["fps"]) if row.get("fps") else None,
                kinematics=row.get("kinematics"),
                video_id=video_id,
                mm_per_pixel=float(row["mm_per_pixel"]) if row.get("mm_per_pixel") else None,
                dedupe=str(row.get("dedupe") or "").strip().lower() in ("1", "true", "yes"),
            )
        return ImportResult(row["source"], video_id)
    except SonolabelError as e:
        return ImportResult(row["source"], video_id, e.one_line())


def import_manifest(project: Project, manifest: str | Path, scheduler: str | None = None, workers: int | None = 1) -> list[ImportResult]:
    """Import every recording of ``manifest`` into ``project`` (writable); returns one result per row."""
    project.require_writable()
    rows = read_import_manifest(manifest)
    taken = set(project.video_ids())
    jobs = []
    for row in rows:
        vid = stem = project.new_video_id(row["subject"], row.get("trial"), row.get("task"))
        n = 2
        while vid in taken:  # two rows of the same subject, trial and task
            vid, n = f"{stem}-{n}", n + 1
        taken.add(vid)
        jobs.append((str(project.path), project.write_token, vid, row))
    return run_tasks(_import_one, jobs, scheduler=scheduler, workers=workers, label="import")
