"""Per-frame curves with flagged spans shaded and thresholds drawn: the PNG report and the napari dock share it."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from .drift import OUTLIER_SIGNALS, DriftConfig

PANELS = (
    ("consistency_px", "boundary off both reads (px)"),
    ("model_ce", "U-Net cross-entropy"),
    ("model_shift", "U-Net confidently elsewhere (px)"),
    ("keyframe_deviation", "area change from keyframe"),
    ("entropy", "propagation entropy"),
    ("area_change", "area change per frame"),
)


def panels_for(signals: pd.DataFrame) -> list[tuple[str, str]]:
    return [(name, title) for name, title in PANELS if name in signals and np.isfinite(signals[name]).any()]


def outlier_limit(values: np.ndarray, name: str, cfg: DriftConfig) -> float | None:
    if name not in OUTLIER_SIGNALS:
        return None
    direction, floor = OUTLIER_SIGNALS[name]
    v = direction * values[np.isfinite(values)]
    if len(v) < 10:
        return None
    med = np.median(v)
    return float(direction * (med + cfg.mad_k * max(1.4826 * np.median(np.abs(v - med)), floor)))


def draw_signals(
    fig, signals: pd.DataFrame, flags: list[dict], keyframes: list[int], cfg: DriftConfig | None = None, current: int | None = None, width: int = 480
) -> list:
    """Draw one panel per available signal on ``fig``; returns the axes (x is the frame index). ``width``:
    the store's, which the consistency limit scales with."""
    cfg = cfg or DriftConfig()
    fig.clear()
    panels = panels_for(signals)
    axes = fig.subplots(len(panels), 1, sharex=True, squeeze=False)[:, 0] if panels else []
    x = signals["frame"].to_numpy()
    for ax, (name, title) in zip(axes, panels):
        y = signals[name].to_numpy(float)
        ax.plot(x, y, lw=0.8, color="C0")
        limit = outlier_limit(y, name, cfg) if name != "consistency_px" else cfg.consistency_px * width / 480
        if limit is not None:
            ax.axhline(limit, color="C1", lw=0.8, ls="--")
        for f in flags:
            colour = {"trend": "C3", "outlier": "C1", "consistency": "C2"}.get(f["kind"], "C4")
            ax.axvspan(f["start"] - 0.5, f["stop"] - 0.5, color=colour, alpha=0.15 if f["signal"] != name else 0.35, lw=0)
        for k in keyframes:
            ax.axvline(k, color="0.6", lw=0.5)
        if current is not None:
            ax.axvline(current, color="k", lw=1)
        ax.set_ylabel(title, fontsize=7)
        ax.tick_params(labelsize=7)
    if len(axes):
        axes[-1].set_xlabel("frame (grey: keyframes; shaded: flags, green consistency, red trend, orange outlier, purple project)", fontsize=7)
    return list(axes)


def write_report(
    path: str | Path, video: str, signals: pd.DataFrame, flags: list[dict], keyframes: list[int], cfg: DriftConfig | None = None, width: int = 480
) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    path = Path(path)
    fig = Figure(figsize=(10, 1.8 * max(1, len(panels_for(signals))) + 0.6))
    draw_signals(fig, signals, flags, keyframes, cfg, width=width)
    fig.suptitle(f"{video}: {len(flags)} flags", fontsize=9)
    fig.tight_layout()
    tmp = path.with_name(f".{path.name}.tmp.png")
    fig.savefig(tmp, dpi=90)
    tmp.replace(path)
    return path
