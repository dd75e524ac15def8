"""Which submissions scored the whole benchmark: only complete ones are ranked (leaving out hard clips never
pays), and each incomplete row says what it is missing."""
from __future__ import annotations

from .registry import Submission

INCOMPLETE = ("incomplete: not every reference clip of the benchmark was scored. Only complete submissions are "
              "ranked, so leaving out hard clips never pays; what each row is missing is listed below")


def benchmark_clip_count(subs: list[Submission], mode: str | None = None) -> int | None:
    """How many reference clips the benchmark has: the ground truth's count, else the largest any file reports.
    Reference-free (the file set is the benchmark, and a broken file is broken for everyone): the most
    videos any submission of the set scored."""
    if mode == "reference-free":
        scored = [s.n_scored for s in subs if s.n_scored is not None]
        return max(scored) if scored else None
    gt = {s.n_expected for s in subs if s.kind == "ground-truth" and s.n_expected is not None}
    if len(gt) == 1:
        return gt.pop()
    counts = [s.n_expected for s in subs if s.n_expected is not None]
    return max(counts) if counts else None


def missing_clips(sub: Submission, expected: int | None) -> str | None:
    """None when ``sub`` scored every clip of the benchmark; else what it is missing, in words."""
    if sub.n_scored is None or sub.n_expected is None:
        return "the results file does not say how many clips were scored"
    want = expected if sub.mode == "reference-free" and expected is not None else max(expected or 0, sub.n_expected)
    if sub.n_scored >= want:
        return None
    parts = [f"{sub.n_scored} of {want} clips scored"]
    if sub.n_expected < want:
        parts.append(f"evaluated on {sub.n_expected} clips only (another split or subset)")
    skips = [x for x in sub.skipped if x.get("code") != "unknown_clip" and isinstance(x.get("clip_id"), str)]
    if skips:
        shown = ", ".join(f"{x['clip_id']} ({x.get('code') or 'skipped'})" for x in skips[:5])
        parts.append(f"not scored: {shown}" + (f" and {len(skips) - 5} more" if len(skips) > 5 else ""))
    return "; ".join(parts)


__all__ = ["INCOMPLETE", "benchmark_clip_count", "missing_clips"]
