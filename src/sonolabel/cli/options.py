"""Options shared by several subcommands."""

from __future__ import annotations

import argparse


def add_batch_options(s: argparse.ArgumentParser) -> None:
    s.add_argument("--workers", type=int, default=1, help="local dask worker processes, one video each (default 1: here)")
    s.add_argument("--scheduler", help="address of a dask.distributed scheduler (tcp://host:port); the project must be on a file system every worker sees")
