"""One prep run per output directory at a time: an exclusive ``flock`` on ``OUT/.lock``.

A second run on the same OUT (same config, or ``--overwrite`` of another) would delete or rewrite the
first run's work folder under it. The lock is taken before anything in OUT is touched and held until the
shards and the manifest are written; the lock file names its holder (pid, host, start time, command), so
the second run can say who it is waiting for. The kernel releases the lock when the holder exits, however
it exits (``SIGKILL`` included), so a stale lock file never blocks a later run. (``flock`` on a network
filesystem is only as good as that filesystem's locking: run one job per OUT on a cluster.)
"""
from __future__ import annotations

import fcntl
import json
import os
import socket
import sys
import time
from pathlib import Path

from .errors import TalkbenchError

LOCK_FILE = ".lock"


class OutputLocked(TalkbenchError):
    """Another prep run holds the lock of this output directory."""


class OutputLock:
    """``with OutputLock(out):`` — exclusive, non-blocking; raises :class:`OutputLocked` naming the holder."""

    def __init__(self, out_dir):
        self.path = Path(out_dir) / LOCK_FILE
        self._fd: int | None = None

    def acquire(self) -> "OutputLock":
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            holder = _read_holder(fd)
            os.close(fd)
            raise OutputLocked(f"{self.path.parent} is being written by another talkbench prep ({holder}); wait for "
                               "it to finish, or use another output directory") from None
        info = {"pid": os.getpid(), "host": socket.gethostname(),
                "since": time.strftime("%Y-%m-%d %H:%M:%S", time.localtime()),
                "command": " ".join(sys.argv[:4])[:200]}
        os.ftruncate(fd, 0)
        os.pwrite(fd, (json.dumps(info) + "\n").encode(), 0)
        self._fd = fd
        return self

    def release(self) -> None:
        if self._fd is not None:
            try:
                os.ftruncate(self._fd, 0)
            except OSError:
                pass
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None

    def __enter__(self):
        return self.acquire()

    def __exit__(self, *exc):
        self.release()
        return False


def _read_holder(fd: int) -> str:
    try:
        info = json.loads(os.pread(fd, 4096, 0).decode() or "{}")
    except (OSError, ValueError):
        info = {}
    if not info:
        return "holder unknown"
    return f"pid {info.get('pid')} on {info.get('host')}, since {info.get('since')}: {info.get('command')}"


__all__ = ["OutputLock", "OutputLocked", "LOCK_FILE"]
