"""Which failures are the input's fault (committed) and which are the environment's (retried).

A *content* failure (undecodable file, no face, too short, an unsafe clip id ...) is a property of the
input: it is committed like a clip, and a rerun with the same config trusts it. An *environment* failure
(the disk filled up or went read-only while our own files were written, a permission problem, memory ran
out, a worker was killed) says nothing about the input: it is reported in this run's ``failures.parquet``
with ``transient = true`` but never committed, so the next run retries the clip. ``--retry-failed``
(``run_prep(retry_failed=True)``) re-runs committed content failures too.
"""
from __future__ import annotations

from .errors import NotAFile, TalkbenchError

_TRANSIENT_TYPES = ("MemoryError", "KilledWorker", "CancelledError", "CommClosedError", "TimeoutError",
                    "WorkerLost", "FutureCancelledError")
_TRANSIENT_PHRASES = ("no space left on device", "disk quota exceeded", "read-only file system",
                      "cannot allocate memory", "too many open files", "stale file handle")
TRANSIENT_STAGE = "environment"


def is_transient(exc: BaseException) -> bool:
    """True when ``exc`` is an environment failure (see the module docstring), never the input's fault."""
    if isinstance(exc, MemoryError):
        return True
    if isinstance(exc, NotAFile):  # the input is unreadable *to us*: fix the permissions and rerun
        return "permission" in exc.reason.lower()
    if isinstance(exc, TalkbenchError):  # decode / face / length problems: the input's own
        return False
    if type(exc).__name__ in _TRANSIENT_TYPES:
        return True
    if isinstance(exc, OSError):  # media errors are wrapped as MediaError: a bare OSError is about our own files
        return True
    cause = exc.__cause__  # raise ... from an environment failure
    return cause is not None and cause is not exc and is_transient(cause)


def _has_phrase(text: str) -> bool:
    t = text.lower()
    return any(p in t for p in _TRANSIENT_PHRASES)


def record_is_transient(record: dict) -> bool:
    """Whether a stored failure record describes an environment failure. Also recognises records that an
    older talkbench committed as ``[internal] OSError: [Errno 28] ...`` so that a rerun retries them."""
    if record.get("transient"):
        return True
    if record.get("status") != "failed":
        return False
    etype, msg = record.get("error_type") or "", record.get("message") or ""
    if etype in _TRANSIENT_TYPES or etype == "MemoryError":
        return True
    if etype in _OSERROR_NAMES and record.get("stage") in ("internal", "worker", TRANSIENT_STAGE):
        return True
    return etype == "NotAFile" and "permission" in msg.lower() or _has_phrase(msg) and record.get("stage") == "internal"


_OSERROR_NAMES = {c.__name__ for c in (OSError, PermissionError, FileNotFoundError, FileExistsError, IsADirectoryError,
                                       NotADirectoryError, InterruptedError, BlockingIOError, TimeoutError,
                                       ConnectionError, BrokenPipeError)}


__all__ = ["is_transient", "record_is_transient", "TRANSIENT_STAGE"]
