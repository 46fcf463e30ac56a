"""Sliding-window flexion detection over a recorded session, as the real-time system runs it.

Every frame is encoded once; the window ending at frame *t* (T frames, every ``subsample``-th)
reuses the cached frame features, so each new frame costs one frame encoding and the small
temporal model. The rest reference is the session's first frame. A model whose class-area or
flow features are standardised per session (``feature_norm`` session) takes the statistics over
the whole recorded session: that step is not causal. Per-finger thresholds come
from the rest period at the start (the highest probability seen there plus a margin, between 0.5
and 0.99); at each frame the finger furthest above its threshold is reported, or ``rest``.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F

from ..errors import InputError
from ..kinematics import flex_labels
from ..store.layout import FINGERS
from ..training.reports import save_plot, write_csv_atomic
from . import flow
from .evaluate import REST_SECONDS, rest_thresholds
from .model import SonoRank
from .shapes import column_profile, strip_masks
from .train import load_rank_model


@dataclass
class Session:
    """Frames (N, S, S) uint8 at the model's size, labels (or None), frame rate, and kinematics if known."""

    name: str
    images: np.ndarray
    labels: np.ndarray | None
    fps: float
    theta: np.ndarray | None = None  # (N, 5) total flexion, degrees


def _resize(frames: np.ndarray, size: int, mode: str) -> np.ndarray:
    t = torch.from_numpy(np.ascontiguousarray(frames)).float()[:, None]
    out = F.interpolate(t, size=(size, size), mode=mode)
    return out[:, 0].round().clamp(0, 255).to(torch.uint8).numpy()


def load_session(source: str | Path, size: int, video: str | None = None, need_labels: bool = False) -> Session:
    """A project video (``source`` a project, ``video`` its id when it holds several) or a recording file."""
    from ..store import Project

    source = Path(source)
    if not source.exists():
        raise InputError("no such project or recording", source)
    if (source / "zarr.json").is_file():
        with Project.open(source) as project:
            ids = project.video_ids()
            if video is None:
                if len(ids) != 1:
                    raise InputError(f"the project holds {len(ids)} videos", source, f"choose one with --video ({', '.join(ids[:5])}...)")
                video = ids[0]
            if video not in ids:
                raise InputError(f"no video {video!r} in the project", source)
            v = project.video(video)
            images = np.concatenate([_resize(v.frames[i : i + 256], size, "area") for i in range(0, v.n_frames, 256)])
            final = v.lazy_labels()
            labels = np.concatenate([_resize(np.asarray(final[i : i + 256]), size, "nearest") for i in range(0, v.n_frames, 256)]) if need_labels else None
            kin = v.kinematics()
            theta = kin[list(FINGERS)].to_numpy() if kin is not None and set(FINGERS) <= set(kin.columns) else None
            return Session(f"{source.name}/{video}", images, labels, float(v.attrs.get("fps") or 20.0), theta)
    if need_labels:
        raise InputError(
            "this model reads segmentation labels, which only a project holds",
            source,
            "import the recording, propagate its labels, and give the project with --video",
        )
    from ..io.importer import detect_box
    from ..io.sources import open_source

    src = open_source(source)
    crop = detect_box(src.sample())
    frames = [crop.apply(f) for f in src.frames()]
    if not frames:
        raise InputError("holds no frames", source)
    return Session(source.name, _resize(np.stack(frames), size, "area"), None, float(src.fps or 20.0))


@torch.no_grad()
def flexion_curves(model: SonoRank, session: Session, input: str, n_classes: int, subsample: int, device: torch.device, batch: int = 64) -> np.ndarray:
    """P(flexed) (N, 5) for the window ending at every frame (NaN before the first full window)."""
    model.eval().to(device)
    n = len(session.images)

    def frames(rows: np.ndarray) -> torch.Tensor:
        parts = []
        if input in ("raw", "both"):
            parts.append(torch.from_numpy(session.images[rows]).float().div(255)[:, None])
        if input in ("labels", "both"):
            lab = torch.from_numpy(session.labels[rows].astype(np.int64)).clamp(0, n_classes - 1)
            parts.append(F.one_hot(lab, n_classes).permute(0, 3, 1, 2).float())
        return torch.cat(parts, 1).to(device)

    feats, profiles, strips = [], [], []
    version = model.cfg.flow_version
    moved = model.cfg.flex_input == "flow" and model.cfg.rest  # per-frame flow against the rest frame (the first)
    inside = model.cfg.flex_input == "areas_flow" and model.cfg.rest  # ... read within the rest frame's class strips
    masks = strip_masks(frames(np.array([0]))[0, -n_classes:].cpu(), max(model.cfg.strips, 1)).numpy() if inside else None
    for i in range(0, n, batch):
        rows = np.arange(i, min(n, i + batch))
        x = frames(rows)
        if moved:
            profiles.append(torch.from_numpy(np.stack([flow.frame_flow(session.images[0], session.images[r], version) for r in rows])))
        elif model.area_norm is not None and model.cfg.flex_input != "flow":
            profiles.append(column_profile(x[:, -n_classes:]))
        if inside:
            strips.append(torch.from_numpy(np.stack([flow.strip_flow(session.images[0], session.images[r], masks, version) for r in rows])))
        if model.uses_embeddings:  # with motion, each frame's predecessor is the frame one window step back
            previous = frames(np.maximum(rows - subsample, 0))[None] if model.cfg.motion else None
            feats.append(model.embed_frames(x[None], previous)[0])
    profile = torch.cat(profiles) if profiles else None  # (N, C, W, 2)
    strip = torch.cat(strips).to(device) if strips else None  # (N, strip features)
    t = model.cfg.length
    rest = model.embed_sequence(torch.cat(feats)[:1, None].expand(1, model.tokens, -1)) if model.cfg.rest and model.uses_embeddings else None
    feats = torch.cat(feats) if feats else None
    span = (t - 1) * subsample
    probs = np.full((n, len(FINGERS)), np.nan, np.float32)
    ends = np.arange(span, n)
    offsets = torch.arange(t, device=device)[None] * subsample
    windows = [torch.from_numpy(ends[i : i + batch]).to(device)[:, None] - span + offsets for i in range(0, len(ends), batch)]
    areas = []  # every window's features first: with feature_norm session they are standardised over the whole session
    for idx in windows if model.area_norm is not None else []:
        if moved:
            areas.append(profile[idx[:, list(flow.window_frames(t, version))]].mean(1).to(device))
        elif model.cfg.flex_input in ("flow", "areas_flow") and not model.cfg.rest:  # no rest reference: from each window's first frame
            areas.append(model.area_change(frames(idx.flatten().cpu().numpy()).view(len(idx), t, -1, *session.images.shape[1:]), None))
        else:
            change = model.profile_change(profile[idx], profile[:1].expand(len(idx), *profile.shape[1:]))
            if inside:
                change = torch.cat([change, strip[idx[:, list(flow.window_frames(t, version))]].mean(1).to(change)], 1)
            areas.append(change)
    areas = model.standardise(torch.cat(areas), torch.zeros(len(ends), dtype=torch.long)).split(batch) if areas else [None] * len(windows)
    for i, (idx, a) in enumerate(zip(windows, areas)):
        z = model.embed_sequence(feats[idx[:, t - model.tokens :]]) if feats is not None else None
        zr = rest.expand(len(idx), -1) if rest is not None else None
        probs[ends[i * batch : (i + 1) * batch]] = torch.sigmoid(model.classify(z, zr, a).float()).cpu().numpy()
    return probs


def detect(probs: np.ndarray, thresholds: np.ndarray) -> list[str]:
    """Per frame, the finger furthest above its threshold, ``rest`` when none is, ``""`` before the first window."""
    margin = probs - thresholds
    out = []
    for row in margin:
        if np.isnan(row).any():
            out.append("")
        else:
            out.append(FINGERS[int(np.argmax(row))] if row.max() > 0 else "rest")
    return out


def _finger_codes(names) -> np.ndarray:
    """0 for rest (or no window yet), 1-5 for the fingers in FINGERS order: a band's colours."""
    index = {f: i + 1 for i, f in enumerate(FINGERS)}
    return np.array([index.get(n, 0) for n in names])


def _measured_finger(theta: np.ndarray) -> list[str]:
    """Per frame, the flexed finger the kinematics show (the most flexed of those above half their range), or ``rest``."""
    flexed = flex_labels(theta)
    above = np.where(flexed > 0, theta / np.maximum(theta.max(0), 1e-6), -1)
    return [FINGERS[int(np.argmax(row))] if row.max() >= 0 else "rest" for row in above]


def infer_session(
    source: str | Path, model_path: str | Path, out: str | Path, video: str | None = None, rest_seconds: float | None = None, device: str = "cpu"
) -> pd.DataFrame:
    """Write ``flexion.csv`` (per frame: probabilities, detected finger), ``thresholds.json`` and ``flexion.png``."""
    model, ckpt = load_rank_model(model_path)
    cfg = ckpt["config"]
    if cfg.get("stage") == "rank":
        raise InputError("this model was trained for ranking only; inference needs a flexion classifier", model_path, "train with --stage both (or flex)")
    session = load_session(source, int(cfg["size"]), video, need_labels=cfg["input"] != "raw")
    probs = flexion_curves(model, session, cfg["input"], len(ckpt["classes"]), int(cfg["subsample"]), torch.device(device))
    rest_seconds = REST_SECONDS if rest_seconds is None else rest_seconds
    thresholds = rest_thresholds(probs[: int(round(rest_seconds * session.fps))])
    table = pd.DataFrame(
        {
            "frame": np.arange(len(probs)),
            "time": np.arange(len(probs)) / session.fps,
            **{f"p_{f}": probs[:, i] for i, f in enumerate(FINGERS)},
            "finger": detect(probs, thresholds),
        }
    )
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    write_csv_atomic(table, out / "flexion.csv", index=False, float_format="%.4f")
    tmp = out / ".thresholds.json.tmp"
    tmp.write_text(
        json.dumps(
            {"session": session.name, "model": str(model_path), "rest_seconds": rest_seconds, "thresholds": dict(zip(FINGERS, thresholds.round(4).tolist()))},
            indent=1,
        )
    )
    os.replace(tmp, out / "thresholds.json")

    def draw(plt):
        bands = [("detected", _finger_codes(table["finger"]))]
        if session.theta is not None:
            bands.append(("measured", _finger_codes(_measured_finger(session.theta))))
        heights = [0.35] * len(bands) + [1.0] * len(FINGERS)
        fig, axes = plt.subplots(len(heights), 1, figsize=(10, 1.4 * sum(heights) + 0.6), sharex=True, gridspec_kw={"height_ratios": heights})
        from matplotlib.colors import ListedColormap

        colours = ListedColormap(["white"] + [f"C{i}" for i in range(len(FINGERS))])
        extent = (0, len(table) / session.fps, 0, 1)
        for ax, (name, codes) in zip(axes, bands):  # one colour per finger (as in the curves below), white for rest
            ax.imshow(codes[None], aspect="auto", cmap=colours, vmin=-0.5, vmax=len(FINGERS) + 0.5, extent=extent, interpolation="nearest")
            ax.set_yticks([]), ax.set_ylabel(name, rotation=0, ha="right", va="center")
        for i, (ax, f) in enumerate(zip(axes[len(bands) :], FINGERS)):
            ax.plot(table["time"], probs[:, i], lw=1, color=f"C{i}")
            ax.axhline(thresholds[i], color="k", lw=0.8, ls="--")
            ax.axvspan(0, rest_seconds, color="0.9", zorder=0)
            if session.theta is not None:
                ax.plot(table["time"], session.theta[:, i] / max(1.0, session.theta[:, i].max()), color="0.5", lw=0.8)
            ax.set_ylim(0, 1), ax.set_ylabel(f, rotation=0, ha="right")
        axes[-1].set_xlabel(
            "time (s); grey: rest period; dashed: threshold\ntop band: the finger detected per window (white: rest)"
            + ("; grey line and second band: measured flexion" if session.theta is not None else "")
        )
        fig.tight_layout()
        return fig

    save_plot(out / "flexion.png", draw)
    return table
