"""The one optimisation loop every trainer runs: the U-Net, SonoRank's two stages and propagation training.

A trainer hands it batches as ``(n_items, loss_fn)`` pairs; the loop owns what is easy to get subtly
wrong and should be identical everywhere: autocast, gradient scaling under float16, the optimiser and
scheduler steps, the weight average (EMA), the step cap or time budget, the progress bar and the
item-weighted mean loss.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Callable, Iterable

import torch
from tqdm import tqdm

Batch = tuple[int, Callable[[], torch.Tensor]]


@dataclass
class Optimisation:
    """What one step updates. ``amp_dtype`` is the autocast type (None: full precision); a float16
    autocast gets a gradient scaler, bfloat16 needs none."""

    optimizer: torch.optim.Optimizer
    device_type: str = "cpu"
    amp_dtype: torch.dtype | None = None
    scheduler: torch.optim.lr_scheduler.LRScheduler | None = None
    ema: torch.optim.swa_utils.AveragedModel | None = None
    model: torch.nn.Module | None = None  # the model the EMA follows

    def __post_init__(self) -> None:
        self.scaler = torch.amp.GradScaler(enabled=self.amp_dtype == torch.float16)

    def loss(self, loss_fn: Callable[[], torch.Tensor]) -> torch.Tensor:
        with torch.autocast(self.device_type, dtype=self.amp_dtype, enabled=self.amp_dtype is not None):
            return loss_fn()

    def step(self, loss: torch.Tensor) -> None:
        self.optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(loss).backward()
        self.scaler.step(self.optimizer)
        self.scaler.update()
        if self.scheduler is not None:
            self.scheduler.step()
        if self.ema is not None:
            self.ema.update_parameters(self.model)


@dataclass
class EpochStats:
    loss_sum: float = 0.0  # sum over batches of loss x items
    items: int = 0
    steps: int = 0
    recent_loss: float = float("nan")  # mean of the last ``log_every`` steps

    @property
    def mean_loss(self) -> float:
        return self.loss_sum / max(self.items, 1)


def run_epoch(
    batches: Iterable[Batch],
    opt: Optimisation,
    max_steps: int | None = None,
    deadline: float | None = None,
    desc: str = "",
    progress: bool = False,
    log: Callable[[str], None] | None = None,
    log_every: int = 25,
) -> EpochStats:
    """Train on ``batches`` until they run out, ``max_steps`` steps were taken, or ``time.monotonic()``
    passes ``deadline`` (at least one step is always taken). ``log`` gets the running mean every
    ``log_every`` steps, for loops that run without a bar."""
    stats = EpochStats()
    bar = tqdm(total=max_steps, desc=desc, unit="batch", leave=False, disable=not progress)
    recent: list[float] = []
    for n, loss_fn in batches:
        if (max_steps is not None and stats.steps >= max_steps) or (deadline is not None and stats.steps and time.monotonic() >= deadline):
            break
        loss = opt.loss(loss_fn)
        opt.step(loss)
        value = loss.item()
        stats.loss_sum, stats.items, stats.steps = stats.loss_sum + value * n, stats.items + n, stats.steps + 1
        recent.append(value)
        bar.update(1)
        bar.set_postfix(loss=f"{stats.mean_loss:.4f}")
        if log is not None and stats.steps % log_every == 0:
            log(f"{desc} step {stats.steps}: loss {sum(recent[-log_every:]) / len(recent[-log_every:]):.3f}")
    bar.close()
    if recent:
        stats.recent_loss = sum(recent[-log_every:]) / len(recent[-log_every:])
    return stats
