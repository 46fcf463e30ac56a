"""What the flexion classifier reads from raw frames: where the tissue moved against the rest frame.

A flexing finger bulges its own compartment of the digit flexors and slides the muscles over each
other; the image moves there and not elsewhere. Dense optical flow (iterative Lucas-Kanade,
scikit-image) from the rest frame to a frame of the window, less its median (the probe's own shift
over the skin), averaged over a ``GRID`` x ``GRID`` grid, says where and which way. A window's
features are the mean of its middle and last frames' (two flows per window keep the cost at about
50 ms on a CPU at 112 px; every frame's flow adds little, docs/sonorank.md).

These are features of the image, not learnt. Over five held-out phantom subjects they find the flexed
finger twice as well as embeddings of raw frames learnt within a CPU budget (macro F1 0.39 against
0.19), though not as well as the label maps (0.55; docs/sonorank.md). Without a rest reference (the
MFT baseline) the flow is taken from the window's first frame.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

GRID = 8  # cells per side
RADIUS = 5  # Lucas-Kanade window radius, px at 112 wide (scaled with the frame)
WARPS = 3  # iterations of warping: a flexion moves tissue by a few px at most


def feature_count() -> int:
    """Length of :func:`frame_flow`'s output: two flow components per grid cell."""
    return 2 * GRID * GRID


def frame_flow(reference: np.ndarray, frame: np.ndarray) -> np.ndarray:
    """(2 * GRID * GRID,) float32: the flow (rows, then columns) from ``reference`` to ``frame`` (H, W
    grey: floats in [0, 1], as the model reads them, or 8-bit), less its median, averaged per grid
    cell, in px at 112 wide. The scale matters: Lucas-Kanade leaves out windows whose system is near
    singular by an absolute limit, so 8-bit frames are brought to [0, 1] first."""
    from skimage.registration import optical_flow_ilk

    reference, frame = (np.asarray(a, np.float32) / (255.0 if np.asarray(a).dtype == np.uint8 else 1.0) for a in (reference, frame))
    scale = reference.shape[-1] / 112
    flow = np.stack(optical_flow_ilk(reference, frame, radius=max(2, round(RADIUS * scale)), num_warp=WARPS))
    flow -= np.median(flow.reshape(2, -1), 1)[:, None, None]
    pooled = F.adaptive_avg_pool2d(torch.from_numpy(flow)[None], GRID)[0] / scale
    return pooled.flatten().numpy()


def window_frames(length: int) -> tuple[int, int]:
    """The two frames of a window of ``length`` whose flow it reads: the middle and the last."""
    return length // 2, length - 1


def flow_change(x: torch.Tensor, rest: torch.Tensor | None) -> torch.Tensor:
    """(B, feature_count()) from windows' image channel (B, T, H, W) and their rest frames (B, H, W), or
    the windows' first frames where ``rest`` is None: the mean of :func:`frame_flow` over
    :func:`window_frames`."""
    images = x.detach().float().cpu().numpy()
    refs = rest.detach().float().cpu().numpy() if rest is not None else images[:, 0]
    picks = window_frames(images.shape[1])
    out = [np.mean([frame_flow(ref, win[t]) for t in picks], 0) for win, ref in zip(images, refs)]
    return torch.from_numpy(np.stack(out)).to(x.device)
