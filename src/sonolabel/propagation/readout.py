"""Memory readout: top-k softmax attention from query keys to memory keys, values = soft label maps.

The values of every memory frame are its label map as class probabilities on the key grid, so
one attention serves every class at once: the cost is that of the key matching, nearly
independent of the class count. Attention is local: each query cell looks at memory cells
within a search radius. The grid is cut into blocks; each memory frame is unfolded once, when
it enters memory, into the windows around every block, so a readout is a few batched matrix
products, a top-k and a gather.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F


@dataclass
class Readout:
    probs: torch.Tensor  # (K, H, W) class probabilities on the key grid
    similarity: torch.Tensor  # (H, W) cosine similarity of the best memory match


def _radius_mask(block: int, radius: int, device) -> torch.Tensor:
    """(block², window²) True where a window cell lies within ``radius`` (square) of the query cell."""
    qi = torch.arange(block)
    wi = torch.arange(block + 2 * radius) - radius
    ok = (wi[None, :] - qi[:, None]).abs() <= radius  # (block, window)
    return (ok[:, None, :, None] & ok[None, :, None, :]).reshape(block * block, -1).to(device)


class SlotGroup:
    """Memory frames searched with one radius, held in fixed slots of pre-unfolded windows."""

    def __init__(self, n_slots: int, radius: int, grid: tuple[int, int], block: int, key_dim: int, n_classes: int, device):
        self.n_slots, self.radius, self.block = n_slots, radius, block
        h, w = grid
        self.pad = (0, -(-w // block) * block - w, 0, -(-h // block) * block - h)
        self.hp, self.wp = h + self.pad[3], w + self.pad[1]
        self.nb = (self.hp // block) * (self.wp // block)
        self.win2 = (block + 2 * radius) ** 2
        self.keys_t = torch.zeros(self.nb, key_dim, n_slots * self.win2, device=device)  # keys, transposed for bmm
        self.values = torch.zeros(self.nb, n_slots * self.win2, n_classes, device=device)
        valid = self._unfold(torch.ones(1, 1, h, w, device=device))[..., 0] > 0.5  # (nb, win²)
        reachable = _radius_mask(block, radius, device)[None] & valid[:, None]  # (nb, b², win²)
        self._slot_bias = torch.zeros(reachable.shape, device=device).masked_fill_(~reachable, float("-inf"))
        self.active = torch.zeros(n_slots, dtype=torch.bool)
        # added to the similarities: -inf outside the search radius and in empty slots (one baddbmm, no mask pass)
        self.bias = torch.full((self.nb, block * block, n_slots * self.win2), float("-inf"), device=device)
        self.sim = torch.empty(self.nb, block * block, n_slots * self.win2, device=device)  # reused by every read
        self.next = 0

    def _unfold(self, x: torch.Tensor) -> torch.Tensor:
        """(1, D, H, W) -> (nb, win², D)."""
        x = F.pad(F.pad(x, self.pad), (self.radius,) * 4)
        win = self.block + 2 * self.radius
        u = F.unfold(x, kernel_size=win, stride=self.block)  # (1, D*win², nb)
        return u.reshape(x.shape[1], self.win2, -1).permute(2, 1, 0)

    def put(self, key: torch.Tensor, value: torch.Tensor, slot: int | None = None) -> None:
        """Store a memory frame (key (C, h, w), value (K, h, w)); without ``slot``, replace the oldest."""
        if slot is None:
            slot, self.next = self.next, (self.next + 1) % self.n_slots
        s = slice(slot * self.win2, (slot + 1) * self.win2)
        self.keys_t[:, :, s] = self._unfold(key[None].float()).transpose(1, 2)
        self.values[:, s] = self._unfold(value[None].float())
        if not self.active[slot]:
            self.active[slot] = True
            self.bias[:, :, s] = self._slot_bias

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
    ):
        self.grid, self.block = grid, block
        self.groups = [SlotGroup(n_permanent, key_radius, grid, block, key_dim, n_classes, device)]
        if n_working:
            self.groups.append(SlotGroup(n_working, work_radius, grid, block, key_dim, n_classes, device))

    @property
    def permanent(self) -> SlotGroup:
        return self.groups[0]

    @property
    def working(self) -> SlotGroup:
        return self.groups[-1]

    def read(self, query: torch.Tensor, top_k: int = 16, temperature: float = 0.05) -> Readout:
        """Class probabilities for ``query`` keys (C, h, w)."""
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
        h, w = self.grid

        def unblock(x: torch.Tensor) -> torch.Tensor:  # (nb, b², D) -> (D, h, w)
            d = x.shape[-1]
            x = x.reshape(g0.hp // b, g0.wp // b, b, b, d).permute(4, 0, 2, 1, 3).reshape(d, g0.hp, g0.wp)
            return x[:, :h, :w]

        return Readout(probs=unblock(probs), similarity=unblock(top[..., :1])[0])
