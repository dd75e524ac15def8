"""Cross-mode pairs lists: which reference clip's audio drives which reference clip's video.

Two formats:

- Wav2Lip's ``evaluation/test_filelists/*.txt``: one pair per line, ``AUDIO_CLIP VIDEO_CLIP`` separated by
  whitespace, audio first, as Wav2Lip's ``gen_videos_from_filelist.py`` reads it
  (``audio_src, video = line.strip().split()``); ``#`` starts a comment.
- CSV with a header naming ``video`` and ``audio`` columns (any order, other columns ignored).

Clip ids are reference clip ids. An id that is not one is matched to the one reference clip whose id ends
with ``/<id>`` (Wav2Lip's lists name LRS2 clips ``<video>/<utterance>``; the LRS2 recipe's ids start with
``main/``). The submission for a pair is ``<video clip id>.mp4``: one pair per video clip.
"""
from __future__ import annotations

import csv
from pathlib import Path


class PairsError(ValueError):
    """A pairs list that cannot be used; the message names the file and the line."""


def _match(cid: str, ref_ids: set[str], by_suffix: dict[str, list[str]], where: str) -> str:
    if cid in ref_ids:
        return cid
    hits = by_suffix.get(cid, [])
    if len(hits) == 1:
        return hits[0]
    if hits:
        raise PairsError(f"{where}: {cid!r} matches several reference clips ({', '.join(sorted(hits)[:3])})")
    raise PairsError(f"{where}: {cid!r} is not a reference clip id")


def read_pairs(path, ref_ids) -> dict[str, str]:
    """``{video clip id: audio clip id}`` from a pairs list (see the module docstring)."""
    path = Path(path)
    ref_ids = set(ref_ids)
    by_suffix: dict[str, list[str]] = {}
    for r in ref_ids:
        parts = r.split("/")
        for k in range(1, len(parts)):
            by_suffix.setdefault("/".join(parts[k:]), []).append(r)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise PairsError(f"--pairs {path}: cannot read it ({e})") from None
    rows: list[tuple[int, str, str]] = []
    if path.suffix.lower() == ".csv":
        reader = csv.DictReader(text.splitlines())
        if not {"video", "audio"} <= set(reader.fieldnames or []):
            raise PairsError(f"--pairs {path}: a CSV needs 'video' and 'audio' columns (got {reader.fieldnames})")
        rows = [(i + 2, (r["video"] or "").strip(), (r["audio"] or "").strip()) for i, r in enumerate(reader)
                if (r["video"] or "").strip()]
    else:
        for i, line in enumerate(text.splitlines(), 1):
            line = line.split("#", 1)[0].strip()
            if not line:
                continue
            parts = line.split()
            if len(parts) != 2:
                raise PairsError(f"--pairs {path}: line {i}: expected 'AUDIO_CLIP VIDEO_CLIP', got {line!r}")
            rows.append((i, parts[1], parts[0]))
    if not rows:
        raise PairsError(f"--pairs {path}: no pairs")
    out: dict[str, str] = {}
    for line, video, audio in rows:
        where = f"--pairs {path}: line {line}"
        v = _match(video.removesuffix(".mp4"), ref_ids, by_suffix, where)
        a = _match(audio.removesuffix(".mp4"), ref_ids, by_suffix, where)
        if v in out:
            raise PairsError(f"{where}: video clip {v!r} is paired twice (one submission file per video clip)")
        out[v] = a
    return out


__all__ = ["read_pairs", "PairsError"]
