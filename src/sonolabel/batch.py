"""Batch work over many items (videos, folds) as dask tasks.

A local cluster of worker processes by default (one thread each, memory bounded per worker), or
an existing dask.distributed cluster given by its scheduler address. Each task is an ordinary
function call, so a serial run and a cluster run give the same results; results come back in
the order of the items.
"""

from __future__ import annotations

import os
from typing import Any, Callable, Sequence

from .errors import InputError


def _local_workers(n_items: int, workers: int | None) -> int:
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return max(1, min(n_items, workers or cpus))


def run_tasks(fn: Callable[..., Any], items: Sequence[Any], scheduler: str | None = None, workers: int | None = None,
              memory_limit: str = "auto", label: str = "task") -> list[Any]:
    """``[fn(item) for item in items]`` on dask workers: a local cluster of ``workers`` processes
    (default: one per CPU, at most one per item; 1 runs in this process), or the cluster whose
    scheduler is at ``scheduler`` (``tcp://host:port``)."""
    items = list(items)
    if scheduler is None and (len(items) <= 1 or _local_workers(len(items), workers) == 1):
        return [fn(item) for item in items]
    from dask.distributed import Client, LocalCluster

    cluster = None
    try:
        if scheduler is None:
            cluster = LocalCluster(n_workers=_local_workers(len(items), workers), threads_per_worker=1, processes=True,
                                   memory_limit=memory_limit, dashboard_address=None)
            client = Client(cluster)
        else:
            client = Client(scheduler, timeout="10s")
    except OSError as e:
        if cluster is not None:
            cluster.close()
        raise InputError(f"cannot reach the dask scheduler ({e})", scheduler, "check the address, or leave --scheduler out") from None
    try:
        futures = [client.submit(fn, item, key=f"{label}-{i}", pure=False) for i, item in enumerate(items)]
        return client.gather(futures)
    finally:
        client.close()
        if cluster is not None:
            cluster.close()
