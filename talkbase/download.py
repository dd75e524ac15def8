"""``talkbench models fetch NAME``: a weight file from its official URL, with a progress bar and its sha256.

Only ``http(s)`` URLs; the file is streamed into a temp file beside its destination (never more than
``MAX_BYTES``), hashed while it arrives, and renamed into place only when complete. A model with a pinned
official hash (``talkbase.weights.MODELS[...].official_sha256``) must match it or nothing is kept; without
one the file is kept and reported *unverified* (its sha256 is printed, so it can be compared and pinned).
"""
from __future__ import annotations

import hashlib
import logging
import urllib.parse
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from .fileio import commit_temp, temp_path
from .weights import WeightsMismatch, cache_dir, is_official, spec

log = logging.getLogger(__name__)

MAX_BYTES = 2 << 30
CHUNK = 1 << 16


@dataclass(frozen=True)
class Fetched:
    name: str
    path: str
    sha256: str
    official: bool
    url: str


def fetch(name: str, dest=None, url: str | None = None, progress: bool = True, timeout: float = 60.0,
          filename: str | None = None) -> list[Fetched]:
    """Download every file of model ``name`` that has an official URL (or ``url`` for its single file: a
    mirror) into ``dest`` (default: the cache dir for ``name``). Raises :class:`WeightsMismatch` for a file
    whose pinned hash differs, ``ValueError`` for a model without a URL, ``OSError`` for network errors."""
    s = spec(name)
    files = [filename] if filename else [f for f in s.files if f in s.urls or url]
    if not files:
        raise ValueError(f"{name}: no official download URL is known ({s.source})")
    if url and len(files) != 1:
        raise ValueError(f"{name}: --url names one file, the model has {len(files)}")
    dest = Path(dest) if dest is not None else cache_dir() / s.name
    dest.mkdir(parents=True, exist_ok=True)
    return [_fetch_one(name, f, url or s.urls[f], dest / f, progress, timeout) for f in files]


def _fetch_one(name: str, filename: str, url: str, target: Path, progress: bool, timeout: float) -> Fetched:
    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ValueError(f"{url}: only http(s) URLs are fetched")
    log.info("fetching %s from %s", filename, url)
    tmp = temp_path(target)
    h = hashlib.sha256()
    try:
        with urllib.request.urlopen(urllib.request.Request(url, headers={"User-Agent": "talkbench"}),
                                    timeout=timeout) as r, open(tmp, "wb") as out:
            total = int(r.headers.get("Content-Length") or 0) or None
            if total and total > MAX_BYTES:
                raise OSError(f"{url}: {total} bytes is more than the {MAX_BYTES} allowed")
            bar = None
            if progress:
                from tqdm.auto import tqdm

                bar = tqdm(total=total, unit="B", unit_scale=True, desc=filename)
            n = 0
            try:
                while chunk := r.read(CHUNK):
                    n += len(chunk)
                    if n > MAX_BYTES:
                        raise OSError(f"{url}: more than {MAX_BYTES} bytes")
                    h.update(chunk)
                    out.write(chunk)
                    if bar is not None:
                        bar.update(len(chunk))
            finally:
                if bar is not None:
                    bar.close()
            if total is not None and n != total:
                raise OSError(f"{url}: got {n} of {total} bytes (connection cut)")
        digest = h.hexdigest()
        want = spec(name).official_sha256.get(filename)
        if want and not digest.startswith(want.lower()):
            raise WeightsMismatch(f"{url}: sha256 {digest} is not the official {want}; nothing was kept")
        commit_temp(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return Fetched(name, str(target), digest, is_official(name, filename, digest), url)


__all__ = ["fetch", "Fetched", "MAX_BYTES"]
