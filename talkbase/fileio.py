"""Files that appear whole or not at all, and their sha256.

Every writer goes through a temp file in the same directory (fsynced, then renamed), so a reader, a
resumed job or a crash never leaves half a file under the final name. Files keep the permissions
``open()`` would give under the current umask (``mkstemp`` alone gives 0600).
"""
from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def sha256_file(path, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while b := f.read(chunk):
            h.update(b)
    return h.hexdigest()


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


FILE_MODE = 0o666 & ~_umask()


def temp_path(path) -> Path:
    """A fresh temp file beside ``path`` (closed, empty); the caller renames or removes it."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    return Path(tmp)


def commit_temp(tmp, path, mode: int | None = None) -> None:
    """fsync ``tmp``, give it ``mode`` (default: the umask's), and rename it to ``path``."""
    os.chmod(tmp, FILE_MODE if mode is None else mode)
    with open(tmp, "rb") as f:
        os.fsync(f.fileno())
    os.replace(tmp, path)


def atomic_write_bytes(path, data: bytes, mode: int | None = None) -> None:
    tmp = temp_path(path)
    try:
        with open(tmp, "wb") as f:
            f.write(data)
        commit_temp(tmp, path, mode)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def atomic_write_text(path, text: str, mode: int | None = None) -> None:
    atomic_write_bytes(path, text.encode("utf-8"), mode)


def atomic_write_json(path, obj) -> None:
    atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=True, default=str) + "\n")


__all__ = ["sha256_bytes", "sha256_file", "atomic_write_bytes", "atomic_write_text", "atomic_write_json",
           "temp_path", "commit_temp", "FILE_MODE"]
