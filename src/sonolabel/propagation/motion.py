"""Coarse motion between two frames, from their keys: where the memory's search windows should look.

The readout searches memory within a fixed radius of each query cell, so content that moved
further than that between a memory frame and the query (a probe slip, a sweep, a structure
darting across) is out of reach. This module estimates that motion by phase correlation of the
two key maps (projected to a few channels): once over the whole map (the probe's translation), then on overlapping tiles for
what the view's rotation and moving structures add. The readout re-centres its windows with it
(see :mod:`.readout`); the search radius then only has to cover what this coarse estimate misses.

Phase correlation sums the cross-power spectra of every key channel, so it uses exactly what the
attention matches, in either mode, and needs no image at another scale. Estimates whose peak is
weak (no shared texture: a tile in a bone's shadow, a frame that decorrelated) fall back to the
global estimate, or to no motion.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

MIN_PEAK = 0.08  # a correlation peak below this (of 1) is noise: the estimate falls back
CHANNELS = 8  # key channels are projected to this many before correlating (5x faster, within 0.02 cells)
_projections: dict[tuple[int, str], torch.Tensor] = {}


def _project(x: torch.Tensor) -> torch.Tensor:
    """(N, C, h, w) keys onto :data:`CHANNELS` fixed orthonormal directions (the same in every run)."""
    c = x.shape[1]
    if c <= CHANNELS:
        return x
    key = (c, str(x.device))
    if key not in _projections:
        g = torch.Generator().manual_seed(c)
        _projections[key] = torch.linalg.qr(torch.randn(c, CHANNELS, generator=g))[0].T.contiguous().to(x.device)
    return torch.einsum("dc,nchw->ndhw", _projections[key], x.float())


def _window(h: int, w: int, device) -> torch.Tensor:
    return torch.outer(torch.hann_window(h, periodic=False, device=device), torch.hann_window(w, periodic=False, device=device)) + 0.05


def phase_correlate(a: torch.Tensor, b: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Shift of ``b`` relative to ``a`` for batches of key maps (N, C, h, w): content at x in ``a`` lies
    at x + shift in ``b``. Returns shifts (N, 2) as (dy, dx) in cells, with sub-cell precision, and
    the peak height (N,) in [0, 1]."""
    n, c, h, w = a.shape
    win = _window(h, w, a.device)
    fa = torch.fft.rfft2((a - a.mean((-2, -1), keepdim=True)) * win)
    fb = torch.fft.rfft2((b - b.mean((-2, -1), keepdim=True)) * win)
    cross = (fb * fa.conj()).sum(1)
    r = torch.fft.irfft2(cross / (cross.abs() + 1e-6), s=(h, w))  # (N, h, w)
    flat = r.flatten(1)
    peak, idx = flat.max(1)
    iy, ix = idx // w, idx % w

    def refine(line: torch.Tensor, i: torch.Tensor, size: int) -> torch.Tensor:  # parabola through the peak
        m, p = line.gather(1, ((i - 1) % size)[:, None])[:, 0], line.gather(1, ((i + 1) % size)[:, None])[:, 0]
        c0 = line.gather(1, i[:, None])[:, 0]
        den = m - 2 * c0 + p
        return torch.where(den.abs() > 1e-9, 0.5 * (m - p) / den, torch.zeros_like(den)).clamp(-0.5, 0.5)

    rows = r[torch.arange(n), :, ix]  # (N, h) the column through the peak
    cols = r[torch.arange(n), iy, :]  # (N, w)
    dy = iy.float() + refine(rows, iy, h)
    dx = ix.float() + refine(cols, ix, w)
    dy = torch.where(dy > h / 2, dy - h, dy)
    dx = torch.where(dx > w / 2, dx - w, dx)
    return torch.stack([dy, dx], 1), peak


def _shifted(x: torch.Tensor, shift: torch.Tensor) -> torch.Tensor:
    """(N, C, h, w) maps each moved by integer (dy, dx) cells ``shift`` (N, 2), edges repeated."""
    n, c, h, w = x.shape
    ys = (torch.arange(h, device=x.device)[None] - shift[:, :1]).clamp(0, h - 1)  # (N, h)
    xs = (torch.arange(w, device=x.device)[None] - shift[:, 1:]).clamp(0, w - 1)  # (N, w)
    flat = (ys[:, :, None] * w + xs[:, None, :]).reshape(n, 1, -1).expand(n, c, -1)
    return x.reshape(n, c, -1).gather(2, flat).reshape(n, c, h, w)


def motion_field(a: torch.Tensor, b: torch.Tensor, tiles: int = 4) -> torch.Tensor:
    """Coarse motion from key maps ``a`` to ``b`` (each (N, C, h, w)): (N, 2, tiles, tiles) shifts
    (dy, dx) in cells. The global shift, plus per tile what a tile of ``b`` moved relative to ``a``
    already moved by the global shift, where the tile's peak is clear; a tile far from its
    neighbours (a wrong peak) takes their median."""
    n, _, h, w = a.shape
    a, b = _project(a), _project(b)
    g, gp = phase_correlate(a, b)
    g = torch.where((gp >= MIN_PEAK)[:, None], g, torch.zeros_like(g))
    field = g.view(n, 2, 1, 1).expand(n, 2, tiles, tiles).clone()
    size_y, size_x = 2 * h // (tiles + 1), 2 * w // (tiles + 1)
    if size_y < 8 or size_x < 8:
        return field
    moved = _shifted(a, g.round().long())
    ys = torch.linspace(0, h - size_y, tiles).round().long().tolist()
    xs = torch.linspace(0, w - size_x, tiles).round().long().tolist()
    pa = torch.stack([moved[:, :, y : y + size_y, x : x + size_x] for y in ys for x in xs], 1).flatten(0, 1)
    pb = torch.stack([b[:, :, y : y + size_y, x : x + size_x] for y in ys for x in xs], 1).flatten(0, 1)
    res, peak = phase_correlate(pa, pb)  # (N * tiles², 2)
    ok = (peak >= MIN_PEAK) & (res.abs().amax(1) <= min(size_y, size_x) / 4)
    res = torch.where(ok[:, None], res, torch.zeros_like(res)).reshape(n, tiles, tiles, 2).permute(0, 3, 1, 2)
    med = F.pad(res, (1, 1, 1, 1), mode="replicate").unfold(2, 3, 1).unfold(3, 3, 1).flatten(-2).median(-1).values
    res = torch.where((res - med).abs() > 1.5, med, res)
    return field + res


def at_blocks(field: torch.Tensor, blocks: tuple[int, int]) -> torch.Tensor:
    """(N, 2, t, t) tile fields sampled at the centres of (by, bx) blocks -> (N, 2, by, bx)."""
    return F.interpolate(field, size=blocks, mode="bilinear", align_corners=True)
