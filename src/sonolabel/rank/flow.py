"""What the flexion classifier reads from raw frames: where the tissue moved against the rest frame.

A flexing finger bulges its own compartment of the digit flexors and slides the muscles over each
other; the image moves there and not elsewhere. Dense optical flow (iterative Lucas-Kanade,
scikit-image) from the rest frame to a frame of the window, less its median (the probe's own shift
over the skin), averaged over a ``GRID`` x ``GRID`` grid, says where and which way. A window's
features are the mean of its frames' flows.

With labels too (``flex_input`` areas_flow), the same dense flow is read within each muscle's strips
of the rest frame's labels (:func:`strip_flow`): mean displacement and divergence where each
compartment lies, in the subject's own anatomy, rather than in fixed cells.

These are features of the image, not learnt. Over five held-out phantom subjects they find the flexed
finger better than embeddings of raw frames learnt within a CPU budget, though not as well as the
label maps (docs/sonorank.md). Without a rest reference (the MFT baseline) the flow is taken from
the window's first frame.

What the features are has changed once; a checkpoint records its ``flow_version`` (1 where it was
made before the version was recorded):

* 1: Lucas-Kanade radius 5 px at 112 wide, a window's middle and last frames;
* 2 (now): radius 12, every frame of the window. Chosen by agreement with the phantom's true tissue
  motion (``PhantomRenderer.motion``), not by flexion scores: over five subjects' frames the pooled
  flow at radius 12 explains R^2 0.91 of the true motion's variance (best scale 1.00-1.05); at 5,
  from 0.82 down to -3.5, since speckle-sized windows lock onto speckle that decorrelates.
  Each frame's flow is kept (:func:`frame_flow` remembers recent results by content), so reading
  every frame costs no more than two did: windows overlap, and epochs repeat them.
"""

from __future__ import annotations

import hashlib

import numpy as np
import torch
import torch.nn.functional as F

GRID = 8  # cells per side
VERSION = 2  # what new models read
RADIUS = {1: 5, 2: 12}  # per version: Lucas-Kanade window radius, px at 112 wide (scaled with the frame)
WARPS = 3  # iterations of warping: a flexion moves tissue by a few px at most
CACHE_SIZE = 200_000  # flows kept (0.5 kB each)
_cache: dict[bytes, np.ndarray] = {}


def feature_count() -> int:
    """Length of :func:`frame_flow`'s output: two flow components per grid cell."""
    return 2 * GRID * GRID


def frame_flow(reference: np.ndarray, frame: np.ndarray, version: int = VERSION) -> np.ndarray:
    """(2 * GRID * GRID,) float32: the flow (rows, then columns) from ``reference`` to ``frame`` (H, W
    grey: floats in [0, 1], as the model reads them, or 8-bit), less its median, averaged per grid
    cell, in px at 112 wide. The scale matters: Lucas-Kanade leaves out windows whose system is near
    singular by an absolute limit, so 8-bit frames are brought to [0, 1] first."""
    reference, frame = (np.ascontiguousarray(a, np.float32) / (255.0 if np.asarray(a).dtype == np.uint8 else 1.0) for a in (reference, frame))
    key = hashlib.blake2b(reference.tobytes() + frame.tobytes() + bytes([version]) + str(frame.shape).encode(), digest_size=16).digest()
    if key not in _cache:
        if len(_cache) >= CACHE_SIZE:
            _cache.clear()
        _cache[key] = _flow(reference, frame, version)
    return _cache[key].copy()


def dense_flow(reference: np.ndarray, frame: np.ndarray, version: int = VERSION) -> np.ndarray:
    """(2, H, W) the flow (rows, then columns) from ``reference`` to ``frame`` (H, W floats in [0, 1]) less its
    median, in px at 112 wide: what :func:`frame_flow` pools and :func:`strip_flow` reads within strips."""
    from skimage.registration import optical_flow_ilk

    scale = reference.shape[-1] / 112
    flow = np.stack(optical_flow_ilk(reference, frame, radius=max(2, round(RADIUS[version] * scale)), num_warp=WARPS))
    return (flow - np.median(flow.reshape(2, -1), 1)[:, None, None]) / scale


def _flow(reference: np.ndarray, frame: np.ndarray, version: int) -> np.ndarray:
    return F.adaptive_avg_pool2d(torch.from_numpy(dense_flow(reference, frame, version))[None], GRID)[0].flatten().numpy()


def strip_count(label_channels: int, strips: int) -> int:
    """Length of :func:`strip_flow`'s output: three numbers per strip of each class but the background."""
    return 3 * (label_channels - 1) * max(strips, 1)


def strip_flow(reference: np.ndarray, frame: np.ndarray, masks: np.ndarray, version: int = VERSION) -> np.ndarray:
    """(3 * S,) float32: the flow from ``reference`` to ``frame`` (as :func:`frame_flow`, before pooling) averaged
    within each of the ``masks`` (S, H, W) (:func:`.shapes.strip_masks` of the rest frame's labels): rows,
    columns (px at 112 wide) and divergence (x 100) per mask; zeros for an empty mask."""
    reference, frame = (np.ascontiguousarray(a, np.float32) / (255.0 if np.asarray(a).dtype == np.uint8 else 1.0) for a in (reference, frame))
    masks = np.ascontiguousarray(masks, np.float32)
    key = hashlib.blake2b(reference.tobytes() + frame.tobytes() + masks.tobytes() + bytes([version]) + str(masks.shape).encode(), digest_size=16).digest()
    if key not in _cache:
        if len(_cache) >= CACHE_SIZE:
            _cache.clear()
        field = dense_flow(reference, frame, version)
        div = np.gradient(field[0], axis=0) + np.gradient(field[1], axis=1)
        parts = np.stack([field[0], field[1], 100 * div]).reshape(3, -1)  # (3, HW)
        m = masks.reshape(len(masks), -1)
        area = m.sum(1)
        _cache[key] = np.where(area[:, None] > 0, (m @ parts.T) / np.maximum(area, 1)[:, None], 0.0).astype(np.float32).ravel()
    return _cache[key].copy()


def strip_change(
    x: torch.Tensor, labels: torch.Tensor, rest: torch.Tensor | None, rest_labels: torch.Tensor | None, strips: int, version: int = VERSION
) -> torch.Tensor:
    """(B, strip_count) from windows' image channel (B, T, H, W) and one-hot labels (B, T, C, H, W) against
    their rest frames' image (B, H, W) and labels (B, C, H, W), or the windows' first frames where ``rest``
    is None: the mean of :func:`strip_flow` over :func:`window_frames`, in the rest frame's strips."""
    from .shapes import strip_masks

    images = x.detach().float().cpu().numpy()
    refs = rest.detach().float().cpu().numpy() if rest is not None else images[:, 0]
    ref_labels = rest_labels if rest_labels is not None else labels[:, 0]
    picks = window_frames(images.shape[1], version)
    out = []
    for win, ref, lab in zip(images, refs, ref_labels.detach().cpu()):
        masks = strip_masks(lab, max(strips, 1)).numpy()
        out.append(np.mean([strip_flow(ref, win[t], masks, version) for t in picks], 0))
    return torch.from_numpy(np.stack(out)).to(x.device)


def window_frames(length: int, version: int = VERSION) -> tuple[int, ...]:
    """The frames of a window of ``length`` whose flows it reads: all (version 1: the middle and the last)."""
    return (length // 2, length - 1) if version == 1 else tuple(range(length))


def flow_change(x: torch.Tensor, rest: torch.Tensor | None, version: int = VERSION) -> torch.Tensor:
    """(B, feature_count()) from windows' image channel (B, T, H, W) and their rest frames (B, H, W), or
    the windows' first frames where ``rest`` is None: the mean of :func:`frame_flow` over
    :func:`window_frames`."""
    images = x.detach().float().cpu().numpy()
    refs = rest.detach().float().cpu().numpy() if rest is not None else images[:, 0]
    picks = window_frames(images.shape[1], version)
    out = [np.mean([frame_flow(ref, win[t], version) for t in picks], 0) for win, ref in zip(images, refs)]
    return torch.from_numpy(np.stack(out)).to(x.device)
