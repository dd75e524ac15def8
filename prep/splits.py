"""Train / val / test splits for inputs that do not bring their own.

Precedence: ``--splits FILE`` (``clip_id,split`` per line) > the split a list file or recipe gives > the
default rule. The default rule is deterministic and stable: a clip's *group* is its speaker when known
(list-file ``speaker`` column, recipes), else its clip id; the group goes to the bucket of
``sha256(group)`` read as a number in [0, 1): ``train`` below 0.8, ``val`` below 0.9, ``test`` above
(:data:`DEFAULT_RATIOS`). So a speaker never straddles two splits and adding clips never moves an existing
one. In a set too small for a bucket to be hit (fewer than ~30 groups), the group whose hash lies nearest
to an empty bucket moves into it: with 2 groups one is ``test``, with 3 or more every split has one.
"""
from __future__ import annotations

import csv
import hashlib
from dataclasses import replace
from pathlib import Path

DEFAULT_RATIOS = (("train", 0.8), ("val", 0.1), ("test", 0.1))
SPLIT_RULE = ("default split: sha256 of the speaker (else the clip id) -> train 80% / val 10% / test 10%; "
              "in small sets the nearest group fills an empty split (test first)")


def _position(group: str) -> float:
    return int(hashlib.sha256(group.encode("utf-8")).hexdigest()[:15], 16) / float(16 ** 15)


def _bucket(x: float) -> str:
    edge = 0.0
    for name, ratio in DEFAULT_RATIOS:
        edge += ratio
        if x < edge:
            return name
    return DEFAULT_RATIOS[-1][0]


def default_splits(groups) -> dict[str, str]:
    """``{group: split}`` by the default rule (see the module docstring)."""
    groups = sorted(set(groups))
    pos = {g: _position(g) for g in groups}
    out = {g: _bucket(pos[g]) for g in groups}
    # small sets: fill empty buckets from the groups nearest to them, test first, never emptying train
    lo_edges, edge = {}, 0.0
    for name, ratio in DEFAULT_RATIOS:
        lo_edges[name] = (edge, edge + ratio)
        edge += ratio
    for name in ("test", "val"):
        if len(groups) < (2 if name == "test" else 3) or name in out.values():
            continue
        lo, hi = lo_edges[name]
        donors = [g for g in groups if out[g] == "train" and sum(v == "train" for v in out.values()) > 1]
        if not donors:
            continue
        g = min(donors, key=lambda g: (min(abs(pos[g] - lo), abs(pos[g] - hi)), g))
        out[g] = name
    return out


def read_splits_file(path) -> dict[str, str]:
    """``clip_id,split`` per line (CSV with or without a header, or whitespace separated; ``#`` comments)."""
    path = Path(path)
    out: dict[str, str] = {}
    with open(path, newline="", encoding="utf-8") as f:
        lines = [ln for ln in f.read().splitlines() if ln.strip() and not ln.lstrip().startswith("#")]
    rows = list(csv.reader(lines)) if any("," in ln for ln in lines) else [ln.split() for ln in lines]
    for i, row in enumerate(rows, 1):
        row = [c.strip() for c in row]
        if i == 1 and [c.lower() for c in row[:2]] == ["clip_id", "split"]:
            continue
        if len(row) != 2 or not row[0] or not row[1]:
            raise ValueError(f"{path}: line {i}: expected 'clip_id,split', got {row!r}")
        if row[0] in out and out[row[0]] != row[1]:
            raise ValueError(f"{path}: clip {row[0]!r} given two splits ({out[row[0]]}, {row[1]})")
        out[row[0]] = row[1]
    return out


def assign_splits(items: list, splits: dict[str, str] | None = None, default: bool = True) -> list:
    """``items`` (``InputItem``) with splits set: ``splits`` (``{clip_id: split}``) first, then the item's own,
    then (with ``default``) the default rule over the items still without one. Raises ValueError for clip ids
    in ``splits`` that are not inputs."""
    splits = dict(splits or {})
    ids = {it.clip_id for it in items}
    unknown = sorted(set(splits) - ids)
    if unknown:
        raise ValueError(f"--splits names {len(unknown)} clip id(s) that are not inputs (first: {unknown[0]!r})")
    missing = [it for it in items if it.clip_id not in splits and not it.split]
    rule = default_splits(it.speaker or it.clip_id for it in missing) if default else {}
    out = []
    for it in items:
        split = splits.get(it.clip_id) or it.split or rule.get(it.speaker or it.clip_id)
        out.append(it if split == it.split else replace(it, split=split))
    return out


__all__ = ["DEFAULT_RATIOS", "SPLIT_RULE", "default_splits", "read_splits_file", "assign_splits"]
