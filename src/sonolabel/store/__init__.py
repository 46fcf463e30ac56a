"""The project store: a versioned zarr v3 directory of videos, labels and per-frame tables."""

from .layout import SCHEMA_VERSION, LabelSource
from .lock import WriteLock
from .project import Project
from .video import Video

__all__ = ["Project", "Video", "WriteLock", "LabelSource", "SCHEMA_VERSION"]
