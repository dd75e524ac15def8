"""VoxCeleb2: ``{dev,test}/mp4/<speaker id>/<youtube id>/<utt>.mp4`` (the ``mp4`` level is optional)."""
from __future__ import annotations

from ._common import finish, item, require_dir, videos_under


def prepare_voxceleb2(corpus_dir, output_dir=None):
    root = require_dir(corpus_dir, "dev", "test")
    items = []
    for sub, split in (("dev", "train"), ("test", "test")):
        for p in videos_under(root / sub):
            speaker = p.parent.parent.name  # <speaker>/<youtube id>/<utt>.mp4
            items.append(item(p, root, split, speaker))
    return finish(items, output_dir, "voxceleb2")
