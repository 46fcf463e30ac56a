"""Drift flags and expert review: per-frame signals, trend and outlier tests, a queue with an audit trail."""

from .drift import DriftConfig, detect_drift, project_flags, stretches, trend
from .log import ReviewLog
from .run import run_drift
from .signals import label_signals, label_stats, signal_table

__all__ = ["DriftConfig", "detect_drift", "project_flags", "stretches", "trend", "ReviewLog", "run_drift", "label_signals", "label_stats", "signal_table"]
