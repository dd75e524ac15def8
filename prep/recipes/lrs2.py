"""LRS2-BBC: ``main/<video_id>/<utt>.mp4`` and ``pretrain/...``; splits from ``train.txt`` / ``val.txt`` /
``test.txt`` in the corpus root (lines ``<video_id>/<utt>`` optionally followed by a mode tag)."""
from __future__ import annotations

from pathlib import Path

from ._common import finish, item, require_dir, videos_under


def _split_lists(root: Path) -> dict[str, str]:
    out = {}
    for split in ("train", "val", "test"):
        f = root / f"{split}.txt"
        if f.exists():
            for line in f.read_text().splitlines():
                if line.strip():
                    out[line.split()[0]] = split
    return out


def prepare_lrs2(corpus_dir, output_dir=None, include_pretrain: bool = False):
    root = require_dir(corpus_dir, "main", "pretrain")
    splits = _split_lists(root)
    items = []
    for sub in ("main", "pretrain") if include_pretrain else ("main",):
        for p in videos_under(root / sub):
            key = f"{p.parent.name}/{p.stem}"
            split = "pretrain" if sub == "pretrain" else splits.get(key, "train")
            items.append(item(p, root, split, p.parent.name))  # speaker unknown: group by source video
    return finish(items, output_dir, "lrs2")
