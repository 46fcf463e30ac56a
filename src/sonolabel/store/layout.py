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
          labels/margin            uint8 (T, h, w) on propagation's key grid: the fused class probability's
                                   margin (top minus runner-up) x 250; 255 where not propagated
          table/<column>           1-D per-frame columns (source, edited_by, edited_at, ...)
          kinematics               float32 (T, K), attrs: columns, unit (only when the source had them)
        .staging-<video-id>/       an import in progress; renamed into place when complete
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

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
MARGIN = "labels/margin"  # propagation's per-pixel confidence on its label grid (`sonolabel propagate`)
MARGIN_SCALE = 250  # a stored margin m means m / MARGIN_SCALE; NO_MARGIN marks frames not propagated
NO_MARGIN = 255
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


@dataclass(frozen=True)
class Column:
    """A per-frame column ``table/<name>``: its dtype, fill value, whether it holds one value per class
    (shape (T, K)), and whether every video has it from import on (else it is created on first write)."""

    dtype: str
    fill: object
    per_class: bool = False
    on_import: bool = False


NAN = float("nan")
COLUMNS: dict[str, Column] = {
    # written on import and by annotation
    "source": Column("uint8", 0, on_import=True),  # LabelSource
    "edited_by": Column("str", "", on_import=True),  # who last changed the frame's labels
    "edited_at": Column("float64", NAN, on_import=True),  # when (Unix seconds)
    "source_frame": Column("int64", -1, on_import=True),  # the frame's index in the source (differs after --dedupe)
    # propagation's confidence (`sonolabel propagate`)
    "similarity": Column("float32", NAN),
    "entropy": Column("float32", NAN),
    "agreement": Column("float32", NAN, per_class=True),  # forward/backward IoU per class
    "margin": Column("float32", NAN),  # mean per-pixel margin of the fused class probabilities (labels/margin)
    # a U-Net against the labels (`sonolabel predict`)
    "model_ce": Column("float32", NAN),
    "model_dice": Column("float32", NAN),
    "model_dice_class": Column("float32", NAN, per_class=True),
    "model_shift": Column("float32", NAN, per_class=True),  # px between the labelled boundary and the model's confident one
    "model_uncertainty": Column("float32", NAN),  # mean per-pixel entropy of the model over log K
    # review (`sonolabel drift`, review actions)
    "review": Column("str", "unreviewed"),
    "drift": Column("float32", NAN),  # severity of the worst flag covering the frame
}
TABLE_COLUMNS: dict[str, tuple[str, object]] = {name: (c.dtype, c.fill) for name, c in COLUMNS.items() if c.on_import}

# per-video state kept in the video's attributes by the jobs that resume or check it
PROPAGATION_STATE = "propagation"  # segments done (signature, working size, label scale), model, config, complete
PREDICTION_STATE = "prediction"  # the model that predicted labels/predicted
MODE_STATE = "mode_choice"  # propagate --mode auto with trained weights: the mode chosen and both modes' scores
LOKO_STATE = "loko"  # leave-one-keyframe-out results by signature, reused while the keyframes around them are unchanged
CHECK_STATE = "check"  # leave-one-keyframe-out (`sonolabel check`): estimated quality, per-keyframe scores, flagged keyframes
