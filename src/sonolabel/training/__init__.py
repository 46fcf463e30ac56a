"""The training kit every trainer shares: the epoch loop, configuration from JSON and --set, distributed
runs, the device, leave-one-subject-out folds, and the logs and curves a run writes.

The trainers themselves live in :mod:`sonolabel.unet` (segmentation) and :mod:`sonolabel.rank` (SonoRank).
"""

from .config import config_dict, config_from
from .device import resolve_device
from .folds import run_folds

__all__ = ["config_dict", "config_from", "resolve_device", "run_folds"]
