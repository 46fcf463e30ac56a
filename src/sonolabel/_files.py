"""File-system helpers shared by the commands that write folders of files."""

from __future__ import annotations

import shutil
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator


@contextmanager
def staged_folder(out_dir: str | Path) -> Iterator[Path]:
    """Yield a hidden staging folder next to ``out_dir``; its files move into ``out_dir`` only if
    the block succeeds, so a failure halfway leaves ``out_dir`` as it was."""
    out_dir = Path(out_dir)
    staging = out_dir.with_name(f".{out_dir.name}.partial")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    try:
        yield staging
        out_dir.mkdir(parents=True, exist_ok=True)
        for f in staging.iterdir():
            f.replace(out_dir / f.name)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
