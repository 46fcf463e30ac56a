"""Memory readout: top-k softmax attention from query keys to memory keys, values = soft label maps.

The values of every memory frame are its label map as class probabilities on the key grid, so
one attention serves every class at once: the cost is that of the key matching, nearly
independent of the class count. Attention is local: each query cell looks at memory cells
within a search radius. The grid is cut into blocks; each memory frame is gathered once, when
it enters memory, into the windows around every block, so a readout is a few batched matrix
products, a top-k and a gather. When the content moved (see :mod:`.motion`), a block's window
moves with it; a memory frame is gathered again only when its windows move by more than a cell.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F


@dataclass
class Readout:
    probs: torch.Tensor  # (K, H, W) class probabilities on the label grid (the key grid times the memory's scale)
    similarity: torch.Tensor  # (H, W) cosine similarity of the best memory match


def _radius_mask(block: int, radius: int, device) -> torch.Tensor:
    """(block², window²) True where a window cell lies within ``radius`` (square) of the query cell."""
    qi = torch.arange(block)
    wi = torch.arange(block + 2 * radius) - radius
    ok = (wi[None, :] - qi[:, None]).abs() <= radius  # (block, window)
    return (ok[:, None, :, None] & ok[None, :, None, :]).reshape(block * block, -1).to(device)


class SlotGroup:
    """Memory frames searched with one radius, held in fixed slots of pre-gathered windows.

    Each slot gathers, for every block of query cells, the window of memory cells around the block,
    moved by that block's offset: where the block's content lay in that memory frame (see
    :meth:`LocalMemory.align`). With no motion the windows sit on the blocks themselves."""

    def __init__(self, n_slots: int, radius: int, grid: tuple[int, int], block: int, key_dim: int, n_classes: int, device, scale: int = 1):
        self.n_slots, self.radius, self.block, self.grid, self.scale = n_slots, radius, block, grid, scale
        h, w = grid
        self.pad = (0, -(-w // block) * block - w, 0, -(-h // block) * block - h)
        self.hp, self.wp = h + self.pad[3], w + self.pad[1]
        self.blocks = (self.hp // block, self.wp // block)
        self.nb = self.blocks[0] * self.blocks[1]
        win = block + 2 * radius
        self.win2 = win * win
        by, bx = torch.meshgrid(torch.arange(self.blocks[0]), torch.arange(self.blocks[1]), indexing="ij")
        wy, wx = torch.meshgrid(torch.arange(win) - radius, torch.arange(win) - radius, indexing="ij")
        qy, qx = torch.meshgrid(torch.arange(block), torch.arange(block), indexing="ij")
        self._qys = (by.reshape(-1, 1) * block + qy.reshape(1, -1)).to(device)  # (nb, b²) query cells
        self._qxs = (bx.reshape(-1, 1) * block + qx.reshape(1, -1)).to(device)
        self._ys = (by.reshape(-1, 1) * block + wy.reshape(1, -1)).to(device)  # (nb, win²) window rows with no motion
        self._xs = (bx.reshape(-1, 1) * block + wx.reshape(1, -1)).to(device)
        self._radius_mask = _radius_mask(block, radius, device)[None]  # (1, b², win²)
        self.keys_t = torch.zeros(self.nb, key_dim, n_slots * self.win2, device=device)  # keys, transposed for bmm
        self.values = torch.zeros(self.nb, n_slots * self.win2, n_classes * scale * scale, device=device)
        self.active = torch.zeros(n_slots, dtype=torch.bool)
        self.frames: list[tuple[torch.Tensor, torch.Tensor, torch.Tensor | None] | None] = [None] * n_slots  # key, value, position
        self.offsets = torch.zeros(n_slots, 2, *self.blocks, dtype=torch.long, device=device)
        self._zero_bias: torch.Tensor | None = None
        self.position: torch.Tensor | None = None  # the query's, at the last align
        # added to the similarities: -inf outside the search radius and in empty slots (one baddbmm, no mask pass)
        self.bias = torch.full((self.nb, block * block, n_slots * self.win2), float("-inf"), device=device)
        self.sim = torch.empty(self.nb, block * block, n_slots * self.win2, device=device)  # reused by every read
        self.next = 0

    def _gather(self, key: torch.Tensor, value: torch.Tensor, offset: torch.Tensor | None):
        """Windows of one memory frame moved by ``offset`` (2, by, bx) cells (None: not moved):
        keys (nb, C, win²), values (nb, win², K), and which window cells lie on the grid (nb, win²)."""
        h, w = self.grid
        ys, xs = self._ys, self._xs
        if offset is not None:
            ys = ys - offset[0].reshape(-1, 1)
            xs = xs - offset[1].reshape(-1, 1)
        valid = (ys >= 0) & (ys < h) & (xs >= 0) & (xs < w)
        flat = (ys.clamp(0, h - 1) * w + xs.clamp(0, w - 1)).reshape(-1)
        k = key.reshape(key.shape[0], -1).float()[:, flat].reshape(key.shape[0], self.nb, self.win2).permute(1, 0, 2)
        v = value.reshape(value.shape[0], -1).float()[:, flat].reshape(value.shape[0], self.nb, self.win2).permute(1, 2, 0)
        return k, v, valid

    def put(self, key: torch.Tensor, value: torch.Tensor, slot: int | None = None, position: torch.Tensor | None = None) -> None:
        """Store a memory frame (key (C, h, w), value (K, scale·h, scale·w)) at ``position`` (2, by, bx):
        where each block's content has moved since the pass began, in cells (None: unknown, treated as
        not moved). Without ``slot``, replace the oldest."""
        if self.scale > 1:  # each key cell carries its scale x scale label cells as channels
            value = F.pixel_unshuffle(value[None].float(), self.scale)[0]
        if slot is None:
            slot, self.next = self.next, (self.next + 1) % self.n_slots
        self.frames[slot] = (key, value, position)
        off = self._offset(slot, self.position) if self.position is not None else None
        moved = off is not None and bool(off.any())
        self.offsets[slot] = off if moved else 0
        self._fill(slot, off if moved else None)
        self.active[slot] = True

    def _fill(self, slot: int, offset: torch.Tensor | None) -> None:
        key, value, _ = self.frames[slot]
        s = slice(slot * self.win2, (slot + 1) * self.win2)
        k, v, valid = self._gather(key, value, offset)
        self.keys_t[:, :, s] = k
        self.values[:, s] = v
        if offset is None and self._zero_bias is not None:
            self.bias[:, :, s] = self._zero_bias
            return
        reachable = self._radius_mask & valid[:, None]
        if offset is not None:  # a query cell whose content was outside this memory frame finds nothing in it
            h, w = self.grid
            qy, qx = self._qys - offset[0].reshape(-1, 1), self._qxs - offset[1].reshape(-1, 1)
            reachable = reachable & ((qy >= 0) & (qy < h) & (qx >= 0) & (qx < w))[..., None]
        bias = torch.zeros(self.nb, self.block * self.block, self.win2, device=self.bias.device)
        bias.masked_fill_(~reachable, float("-inf"))
        self.bias[:, :, s] = bias
        if offset is None:
            self._zero_bias = bias

    def align(self, position: torch.Tensor, tolerance: int = 1) -> None:
        """Move every slot's windows to where the query's blocks (at ``position``, as in :meth:`put`) lay
        in that memory frame. A slot is gathered again only when some block's offset changed by more
        than ``tolerance`` cells: the search radius absorbs the rest."""
        self.position = position
        for slot in range(self.n_slots):
            off = self._offset(slot, position)
            if off is not None and (off - self.offsets[slot]).abs().max() > tolerance:
                self.offsets[slot] = off
                self._fill(slot, off if off.any() else None)

    def _offset(self, slot: int, position: torch.Tensor) -> torch.Tensor | None:
        """Per block, how far the query's content moved since memory frame ``slot``, in whole cells;
        None when the slot has no position."""
        frame = self.frames[slot]
        if frame is None or frame[2] is None:
            return None
        return (position - frame[2]).round().long()

    def top(self, q: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Best ``k`` similarities of block queries ``q`` (nb, b², C) and their values (nb, b², k, K)."""
        torch.baddbmm(self.bias, q, self.keys_t, out=self.sim)
        top, idx = self.sim.topk(min(k, self.sim.shape[-1]), dim=-1)
        kk = self.values.shape[-1]
        vals = torch.gather(self.values, 1, idx.reshape(self.nb, -1, 1).expand(-1, -1, kk)).reshape(*idx.shape, kk)
        return top, vals


class LocalMemory:
    """Permanent slots (keyframes, wide radius) and working slots (recent predictions, narrow radius)."""

    def __init__(
        self,
        grid: tuple[int, int],
        key_dim: int,
        n_classes: int,
        n_permanent: int,
        n_working: int,
        key_radius: int,
        work_radius: int,
        block: int = 6,
        device="cpu",
        scale: int = 1,
    ):
        """``scale``: label cells per key cell along each axis. Values (label maps) are held at ``scale`` times
        the key grid: a matched key cell brings its label cells' layout, so a structure thinner than a key
        cell keeps its shape."""
        self.grid, self.block, self.scale = grid, block, scale
        self.groups = [SlotGroup(n_permanent, key_radius, grid, block, key_dim, n_classes, device, scale)]
        if n_working:
            self.groups.append(SlotGroup(n_working, work_radius, grid, block, key_dim, n_classes, device, scale))

    @property
    def permanent(self) -> SlotGroup:
        return self.groups[0]

    @property
    def working(self) -> SlotGroup:
        return self.groups[-1]

    @property
    def blocks(self) -> tuple[int, int]:
        return self.groups[0].blocks

    def align(self, position: torch.Tensor) -> None:
        """Re-centre every memory frame's search windows on where the query's blocks (at ``position``,
        (2, by, bx) cells moved since the pass began) lay in it."""
        for g in self.groups:
            g.align(position)

    def read(self, query: torch.Tensor, top_k: int = 16, temperature: float = 0.05) -> Readout:
        """Class probabilities (K, scale·h, scale·w) for ``query`` keys (C, h, w)."""
        g0 = self.groups[0]
        b = self.block
        c = query.shape[0]
        q = F.pad(query[None].float(), g0.pad)[0]
        q = q.reshape(c, g0.hp // b, b, g0.wp // b, b).permute(1, 3, 2, 4, 0).reshape(g0.nb, b * b, c)
        parts = [g.top(q, top_k) for g in self.groups if g.active.any()]
        top = torch.cat([p[0] for p in parts], -1) if len(parts) > 1 else parts[0][0]
        vals = torch.cat([p[1] for p in parts], 2) if len(parts) > 1 else parts[0][1]
        if top.shape[-1] > top_k:  # merge the groups' candidates
            top, pick = top.topk(top_k, dim=-1)
            vals = torch.gather(vals, 2, pick[..., None].expand(-1, -1, -1, vals.shape[-1]))
        weights = torch.softmax(top / temperature, dim=-1)
        probs = (weights[..., None] * vals).sum(2)  # (nb, b², K)
        unseen = torch.isinf(top[..., 0])  # content that moved in from outside every memory frame
        if unseen.any():
            probs[unseen] = 1.0 / probs.shape[-1]
            top = top.clone()
            top[..., 0][unseen] = 0.0
        h, w = self.grid

        def unblock(x: torch.Tensor) -> torch.Tensor:  # (nb, b², D) -> (D, h, w)
            d = x.shape[-1]
            x = x.reshape(g0.hp // b, g0.wp // b, b, b, d).permute(4, 0, 2, 1, 3).reshape(d, g0.hp, g0.wp)
            return x[:, :h, :w]

        probs = unblock(probs)
        if self.scale > 1:
            probs = F.pixel_shuffle(probs[None], self.scale)[0]
        return Readout(probs=probs, similarity=unblock(top[..., :1])[0])
