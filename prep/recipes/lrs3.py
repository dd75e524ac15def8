"""LRS3-TED: ``{pretrain,trainval,test}/<talk_id>/<utt>.mp4``; the talk id stands for the speaker."""
from __future__ import annotations

from ._common import finish, item, require_dir, videos_under

SPLIT_OF = {"trainval": "train", "test": "test", "pretrain": "pretrain"}


def prepare_lrs3(corpus_dir, output_dir=None, include_pretrain: bool = False):
    root = require_dir(corpus_dir, "trainval", "test", "pretrain")
    items = []
    for sub, split in SPLIT_OF.items():
        if sub == "pretrain" and not include_pretrain:
            continue
        for p in videos_under(root / sub):
            items.append(item(p, root, split, p.parent.name))
    return finish(items, output_dir, "lrs3")
