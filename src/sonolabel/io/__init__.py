"""Importers: video files, frame folders, HDF5 sessions, Clarius raw, and labelled stills."""

from .importer import Crop, detect_box, import_recording, read_kinematics_table, sha256_of
from .sources import ClariusRaw, FrameSource, ImageFolder, VideoFile, open_source
from .stills import find_pairs, import_stills

__all__ = [
    "Crop",
    "detect_box",
    "import_recording",
    "import_stills",
    "find_pairs",
    "open_source",
    "read_kinematics_table",
    "sha256_of",
    "FrameSource",
    "VideoFile",
    "ImageFolder",
    "ClariusRaw",
]
