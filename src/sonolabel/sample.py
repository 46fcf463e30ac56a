"""The bundled phantom sample: where it is, and how to rebuild it when it is not there."""

from __future__ import annotations

import os
from pathlib import Path

SAMPLE_NAME = "phantom-sample"
SAMPLE_ARGS = dict(subjects=1, frames=201, seed=0, crf=23)


def repo_datasets() -> Path:
    return Path(__file__).resolve().parents[2] / "datasets"


def sample_path() -> Path:
    """The phantom sample folder: the copy in ``datasets/`` when running from the repository, else a
    copy generated once (same seed, same content) under ``$SONOLABEL_CACHE`` or ``~/.cache/sonolabel``."""
    bundled = repo_datasets() / SAMPLE_NAME
    if (bundled / "manifest.json").is_file():
        return bundled
    cache = Path(os.environ.get("SONOLABEL_CACHE", Path.home() / ".cache" / "sonolabel")) / SAMPLE_NAME
    if not (cache / "manifest.json").is_file():
        from .phantom import generate_phantom

        cache.parent.mkdir(parents=True, exist_ok=True)
        generate_phantom(cache, **SAMPLE_ARGS)
    return cache
