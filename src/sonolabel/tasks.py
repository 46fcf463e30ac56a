"""Batch work over many items (videos, folds) as dask tasks.

A local cluster of worker processes by default (one thread each, memory bounded per worker), or
an existing dask.distributed cluster given by its scheduler address. Each task is an ordinary
function call, so a serial run and a cluster run give the same results; results come back in
the order of the items.
"""

from __future__ import annotations

import os
from contextlib import contextmanager
from typing import Any, Callable, Iterator, Sequence

from .errors import InputError


@contextmanager
def environ_kept() -> Iterator[None]:
    """Restore this process's environment on leaving. Starting a dask LocalCluster sets
    OMP_NUM_THREADS, MKL_NUM_THREADS and OPENBLAS_NUM_THREADS to 1 in the *calling* process (meant for
    its workers, which have them from their start); left there, every process started afterwards
    (a CLI call, a training run) would run its linear algebra on one thread."""
    before = dict(os.environ)
    try:
        yield
    finally:
        for key in set(os.environ) - set(before):
            del os.environ[key]
        os.environ.update(before)


def _local_workers(n_items: int, workers: int | None) -> int:
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return max(1, min(n_items, workers or cpus))


def _check_reachable(scheduler: str) -> None:
    """Refuse at once a ``tcp://host:port`` scheduler address where nothing listens (a typo, a stopped
    scheduler), instead of letting the client retry until its timeout; other protocols are left to dask."""
    import socket
    from urllib.parse import urlsplit

    if not scheduler.startswith("tcp://"):
        return
    try:
        where = urlsplit(scheduler)
        host, port = where.hostname, where.port or 8786  # dask's default scheduler port
    except ValueError:
        host = port = None
    if not host:
        raise InputError("a dask scheduler address is tcp://host:port", scheduler, "check the address, or leave --scheduler out")
    try:
        socket.create_connection((host, port), timeout=5).close()
    except OSError as e:
        raise InputError(f"cannot reach the dask scheduler ({e})", scheduler, "check the address, or leave --scheduler out") from None


def run_tasks(
    fn: Callable[..., Any], items: Sequence[Any], scheduler: str | None = None, workers: int | None = None, memory_limit: str = "auto", label: str = "task"
) -> list[Any]:
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
            with environ_kept():
                cluster = LocalCluster(
                    n_workers=_local_workers(len(items), workers), threads_per_worker=1, processes=True, memory_limit=memory_limit, dashboard_address=None
                )
            client = Client(cluster)
        else:
            _check_reachable(scheduler)
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
            with environ_kept():
                cluster.close()


def _video_task(job: tuple) -> Any:
    path, token, video_id, fn, args, threads = job
    import torch

    from .store import Project

    if threads:
        torch.set_num_threads(threads)
    with Project.open(path, "a" if token else "r", token=token) as project:
        return fn(project.video(video_id), *args)


def map_videos(
    project, fn: Callable[..., Any], video_ids: Sequence[str], *args: Any, scheduler: str | None = None, workers: int | None = None, label: str = "video"
) -> list[Any]:
    """``[fn(project.video(v), *args) for v in video_ids]`` as dask tasks, one video each.

    Tasks write under ``project``'s write lock (when it is open for writing) through its token, each
    to its own video; ``fn`` must be a module-level function. With one worker or one video, runs here."""
    ids = list(video_ids)
    n_parallel = 1 if scheduler is None and (len(ids) <= 1 or _local_workers(len(ids), workers) == 1) else None
    if n_parallel == 1:
        return [fn(project.video(v), *args) for v in ids]
    import torch

    token = project.write_token if project.writable else None
    threads = max(1, torch.get_num_threads() // _local_workers(len(ids), workers)) if scheduler is None else 0
    jobs = [(str(project.path), token, v, fn, args, threads) for v in ids]
    return run_tasks(_video_task, jobs, scheduler=scheduler, workers=workers, label=label)
