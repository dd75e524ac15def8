"""LRW: ``lipread_mp4/<WORD>/{train,val,test}/<WORD>_<nnnnn>.mp4`` (the ``lipread_mp4`` level is optional).
Speakers are not annotated; the word is kept as the group."""
from __future__ import annotations

from ._common import finish, item, require_dir, videos_under


def prepare_lrw(corpus_dir, output_dir=None):
    root = require_dir(corpus_dir)
    base = root / "lipread_mp4" if (root / "lipread_mp4").is_dir() else root
    items = []
    for p in videos_under(base):
        split = p.parent.name if p.parent.name in ("train", "val", "test") else None
        if split is None:
            continue  # not part of the standard layout
        items.append(item(p, root, split, None))
    return finish(items, output_dir, "lrw")
