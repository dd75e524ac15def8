"""Shared bits of the corpus recipes."""
from __future__ import annotations

import hashlib
from pathlib import Path

from ..inputs import VIDEO_EXTENSIONS, InputItem, clip_id_for, write_inputs_csv


def videos_under(folder: Path) -> list[Path]:
    return sorted(p for p in Path(folder).rglob("*") if p.suffix.lower() in VIDEO_EXTENSIONS and p.is_file())


def require_dir(corpus_dir, *expected: str) -> Path:
    root = Path(corpus_dir)
    if not root.is_dir():
        raise FileNotFoundError(f"{root}: corpus directory does not exist")
    if expected and not any((root / e).exists() for e in expected):
        raise FileNotFoundError(f"{root}: none of the expected sub-folders {list(expected)} exist")
    return root


def hashed_split(key: str, test_fraction: float = 0.1) -> str:
    """A stable split for corpora without an official one (same key → same split everywhere)."""
    h = int(hashlib.sha256(key.encode()).hexdigest()[:8], 16) / 0xFFFFFFFF
    return "test" if h < test_fraction else "train"


def item(path: Path, root: Path, split, speaker) -> InputItem:
    return InputItem(str(path), clip_id_for(path, root), split, speaker)


def finish(items: list[InputItem], output_dir, corpus: str) -> list[InputItem]:
    items = sorted(items, key=lambda i: i.clip_id)
    if output_dir is not None:
        write_inputs_csv(items, Path(output_dir) / f"{corpus}_inputs.csv")
    return items
