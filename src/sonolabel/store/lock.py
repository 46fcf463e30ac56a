"""The single-writer lock of a project.

A project has many readers and at most one writer. The writer holds an exclusive ``flock`` on
``PROJECT/.lock`` and writes who it is into the file. The kernel drops the lock when the holder
dies (even by kill -9), so a lock left by a dead process is recovered simply by taking it; a
live holder is named in the error the second writer gets.
"""

from __future__ import annotations

import fcntl
import getpass
import json
import os
import secrets
import socket
import sys
import time
from pathlib import Path

from ..errors import LockError


def _holder_info() -> dict:
    return {
        "token": secrets.token_hex(16),  # shared with the holder's own worker processes (DelegatedLock)
        "pid": os.getpid(),
        "host": socket.gethostname(),
        "user": getpass.getuser(),
        "since": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "command": " ".join(os.path.basename(a) if i == 0 else a for i, a in enumerate(sys.argv))[:200],
    }


class WriteLock:
    """Exclusive write lock on a project directory; use as a context manager or acquire/release."""

    def __init__(self, project_dir: str | Path):
        self.path = Path(project_dir) / ".lock"
        self._fd: int | None = None
        self.recovered_from: dict | None = None

    @property
    def held(self) -> bool:
        return self._fd is not None

    def acquire(self) -> "WriteLock":
        if self._fd is not None:
            return self
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = self.read_holder()
            os.close(fd)
            who = (
                f"pid {holder.get('pid')} ({holder.get('user')}@{holder.get('host')}, since {holder.get('since')}, running {holder.get('command')!r})"
                if holder
                else "another process"
            )
            raise LockError(
                f"project is open for writing by {who}",
                self.path.parent,
                "close that session first, or open the project read-only",
            ) from None
        previous = self.read_holder()
        if previous:  # a lock file whose holder died without releasing it
            self.recovered_from = previous
        info = _holder_info()
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps(info).encode(), 0)
        os.fsync(fd)
        self._fd = fd
        self.token = info["token"]
        return self

    def release(self) -> None:
        if self._fd is None:
            return
        os.ftruncate(self._fd, 0)  # an empty file means nobody holds it
        fcntl.flock(self._fd, fcntl.LOCK_UN)
        os.close(self._fd)
        self._fd = None

    def read_holder(self) -> dict | None:
        try:
            text = self.path.read_text()
            return json.loads(text) if text.strip() else None
        except (OSError, ValueError):
            return None

    def __enter__(self) -> "WriteLock":
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()

    def __del__(self) -> None:  # pragma: no cover - best effort
        try:
            self.release()
        except Exception:
            pass


class DelegatedLock:
    """Write access lent by a live lock holder to its worker processes (dask tasks), one video each.

    The holder passes its token; a worker is let in only while the lock file names that token and
    the holder still holds the lock, so a task outliving its coordinator cannot write.
    """

    def __init__(self, project_dir: str | Path, token: str):
        self.path = Path(project_dir) / ".lock"
        self.token = token

    @property
    def held(self) -> bool:
        return True

    def acquire(self) -> "DelegatedLock":
        holder = WriteLock(self.path.parent).read_holder() or {}
        if holder.get("token") != self.token:
            raise LockError("the process that lent this worker write access no longer holds the project", self.path.parent, "rerun the batch command")
        fd = os.open(self.path, os.O_RDWR)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:  # held, as it must be
            return self
        else:
            fcntl.flock(fd, fcntl.LOCK_UN)
            raise LockError("the process that lent this worker write access has died", self.path.parent, "rerun the batch command")
        finally:
            os.close(fd)

    def release(self) -> None:
        pass
