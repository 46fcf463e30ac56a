"""Where things live in a project store, and the schema version. See docs/store-layout.md.

::

    PROJECT/                       zarr v3 group; attrs["sonolabel"] = {schema, palette, created, ...}
      .lock                        write lock (flock) with the holder's pid, host, user, command
      videos/                      group
        <video-id>/                group; attrs: subject, trial, task, fps, source, sha256, crop, ...
          frames                   uint8 (T, H, W), one frame per chunk, zstd
          labels/annotated         uint8 (T, H, W), fill 255; a chunk exists exactly for annotated frames
          labels/propagated        uint8 (T, H, W)
          labels/predicted         uint8 (T, H, W), a trained U-Net's prediction (only after `sonolabel predict`)
          table/<column>           1-D per-frame columns (source, edited_by, edited_at, ...)
          kinematics               float32 (T, K), attrs: columns, unit (only when the source had them)
        .staging-<video-id>/       an import in progress; renamed into place when complete
"""

from __future__ import annotations

import enum

from ..kinematics import FINGERS  # noqa: F401 - re-exported: the store keeps total flexion per finger

SCHEMA_VERSION = 1
ROOT_KEY = "sonolabel"
VIDEOS = "videos"
STAGING_PREFIX = ".staging-"
LOCK_FILE = ".lock"
FRAMES = "frames"
ANNOTATED = "labels/annotated"
PROPAGATED = "labels/propagated"
PREDICTED = "labels/predicted"  # a U-Net's prediction (`sonolabel predict`), for drift checks
TABLE = "table"
KINEMATICS = "kinematics"
TABLE_CHUNK = 4096
NO_LABEL = 255  # fill value of labels/annotated: frames without an annotation


class LabelSource(enum.IntEnum):
    """Where a frame's label comes from, as stored in ``table/source``."""

    NONE = 0
    ANNOTATED = 1  # drawn by a person on a keyframe
    PROPAGATED = 2  # written by propagation
    CORRECTED = 3  # a propagated or imported frame a person corrected (it becomes a keyframe)
    IMPORTED = 4  # a whole label sequence brought in from another tool (`sonolabel labels import`)


TABLE_COLUMNS: dict[str, tuple[str, object]] = {
    # column: (dtype, fill value)
    "source": ("uint8", 0),
    "edited_by": ("str", ""),
    "edited_at": ("float64", float("nan")),
    "source_frame": ("int64", -1),  # the frame's index in the source recording (differs after --dedupe)
}
