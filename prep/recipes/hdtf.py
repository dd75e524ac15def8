"""HDTF: a flat folder of long videos named ``{RD,WDA,WRA}_<Name>_<nnn>.mp4`` (one speaker each, no official
split: a stable hash split by speaker keeps identities out of both sides)."""
from __future__ import annotations

import re

from ._common import finish, hashed_split, item, require_dir, videos_under

_SPEAKER = re.compile(r"^(?:RD|WDA|WRA)_(.+?)(?:_\d+)?$")


def prepare_hdtf(corpus_dir, output_dir=None, test_fraction: float = 0.1):
    root = require_dir(corpus_dir)
    items = []
    for p in videos_under(root):
        m = _SPEAKER.match(p.stem)
        speaker = m.group(1) if m else p.stem
        items.append(item(p, root, hashed_split(speaker, test_fraction), speaker))
    return finish(items, output_dir, "hdtf")
