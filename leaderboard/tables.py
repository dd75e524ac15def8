"""Grouping accepted results into benchmark tables, deciding what is comparable, and ranking.

A benchmark is one set of reference shards (``reference_shards_sha256``) scored in one mode
(reconstruction / cross / ...). Its *benchmark protocol* is the registry's declaration, else the protocol
its ground truth was scored under, else the most common one (ties: the newest protocol version). Each
metric's weights (sha256 + calibrated flag) are fixed the same way. Rows that match are ranked together;
every other row goes to a separate, unranked table that says why (different protocol version / hash /
weights / calibration / direction).

The leaderboard keeps no table of metrics: the columns of a benchmark are the metrics its results files
report, in their ``metric_order``, with the heading (``label``), direction (``higher_is_better``),
precision (``decimals``) and placement (``headline``: a table column, else CSV only) each entry gives.
"""
from __future__ import annotations

import math
import re
from collections import Counter
from dataclasses import dataclass, field

from talkbase.results import MetricResult

from .completeness import INCOMPLETE, benchmark_clip_count, missing_clips
from .registry import BenchmarkDecl, Collection, Submission

KIND_ORDER = {"ground-truth": 0, "baseline": 1, "model": 2}
DEFAULT_DECIMALS = 3
MAX_DECIMALS = 8

PROTOCOL_SOURCE = {True: "declared in the submission registry",
                   False: "chosen from the results: ground truth, else the most common"}


@dataclass(frozen=True)
class Column:
    """One metric of a benchmark as the leaderboard shows it."""

    key: str  # metric name in results.json
    label: str  # heading (untrusted: escaped by every renderer)
    higher_is_better: bool
    decimals: int = DEFAULT_DECIMALS
    headline: bool = True  # a table column; False: CSV only


def arrow(col: Column) -> str:
    return "↑" if col.higher_is_better else "↓"


def _direction_word(higher: bool) -> str:
    return "higher is better" if higher else "lower is better"


@dataclass
class Row:
    sub: Submission
    ranks: dict[str, int] = field(default_factory=dict)
    best: set[str] = field(default_factory=set)
    mean_rank: float | None = None
    tied: dict[str, str] = field(default_factory=dict)  # column -> how it is tied with the row ranked above it
    missing: str | None = None  # what an incomplete submission did not score (None: complete)

    @property
    def ranked(self) -> bool:
        return self.sub.kind != "ground-truth"


@dataclass
class Table:
    ranked: bool
    reason: str | None  # why these rows are not ranked with the benchmark (None for the ranked table)
    rows: list[Row]
    protocol_version: str
    protocol_hash: str
    weights: dict[str, tuple[str | None, bool]]  # metric -> (sha256, calibrated) of the computed values
    uncalibrated: set[str]
    columns: tuple[Column, ...] = ()  # the benchmark's columns that these rows report

    @property
    def headline(self) -> tuple[Column, ...]:
        return tuple(c for c in self.columns if c.headline)


@dataclass
class Benchmark:
    name: str
    reference_shards_sha256: str
    mode: str
    declared: bool
    protocol_version: str
    protocol_hash: str
    weights: dict[str, tuple[str | None, bool]]
    ranked: Table
    unranked: list[Table]
    columns: tuple[Column, ...] = ()  # every metric any of its results files reports, in display order

    @property
    def slug(self) -> str:
        """File-name-safe id (the sha256 is validated, the mode is one of a fixed set, so this is safe)."""
        return f"{self.reference_shards_sha256[:12]}-{self.mode}"

    @property
    def title(self) -> str:
        return f"{self.name or self.reference_shards_sha256[:12]} · {self.mode}"


# ---------------------------------------------------------------- columns from the results files

def _decimals(m: MetricResult) -> int | None:
    d = m.extra.get("decimals")
    return d if isinstance(d, int) and not isinstance(d, bool) and 0 <= d <= MAX_DECIMALS else None


def _headline(m: MetricResult) -> bool | None:
    v = m.extra.get("headline")
    return v if isinstance(v, bool) else None


def _vote(values: list):
    """The most common value; ties go to the one seen first (None when there are no values)."""
    if not values:
        return None
    counts = Counter(values)
    top = max(counts.values())
    return next(v for v in values if counts[v] == top)


def metric_order(subs: list[Submission]) -> list[str]:
    """Every metric name of ``subs``: each file's ``metric_order`` merged in first-seen order (by path)."""
    order: dict[str, None] = {}
    for s in sorted(subs, key=lambda s: s.path):
        for k in [*s.metric_order, *sorted(s.metrics)]:
            if k in s.metrics:
                order.setdefault(k, None)
    return list(order)


def metric_columns(subs: list[Submission], preferred: list[Submission] | None = None) -> tuple[Column, ...]:
    """The columns of a group of results files, described by their own metric entries.

    Direction: the majority of the entries (ties: the ground truth's, else the first file's by path), counting
    only ``preferred`` files (those under the benchmark protocol) when any of them reports the metric. Label,
    decimals and headline: the most common value among the entries with that direction (fallbacks: the
    metric name, 3 decimals, headline).
    """
    subs = sorted(subs, key=lambda s: s.path)
    pref = {s.path for s in preferred or []}
    cols = []
    for key in metric_order(subs):
        having = [s for s in subs if key in s.metrics]
        voters = [s for s in having if s.path in pref] or having
        dirs = Counter(s.metrics[key].higher_is_better for s in voters)
        if dirs[True] != dirs[False]:
            higher = dirs[True] > dirs[False]
        else:
            gt = {s.metrics[key].higher_is_better for s in voters if s.kind == "ground-truth"}
            higher = gt.pop() if len(gt) == 1 else voters[0].metrics[key].higher_is_better
        agree = [s.metrics[key] for s in voters if s.metrics[key].higher_is_better == higher]
        label = _vote([m.label for m in agree if m.label.strip()]) or key
        decimals = _vote([d for d in map(_decimals, agree) if d is not None])
        headline = _vote([h for h in map(_headline, agree) if h is not None])
        cols.append(Column(key, label, higher, DEFAULT_DECIMALS if decimals is None else decimals,
                           True if headline is None else headline))
    return tuple(cols)


# ---------------------------------------------------------------- comparability

def _version_key(v: str):
    """Natural sort key: 'evalkit-1.10' > 'evalkit-1.9'."""
    return [(0, int(t), "") if t.isdigit() else (1, 0, t) for t in re.findall(r"\d+|\D+", v)]


def _is_finite(x) -> bool:
    return x is not None and not math.isnan(x) and not math.isinf(x)


def _canonical_protocol(subs: list[Submission], decl: BenchmarkDecl | None) -> tuple[str, str]:
    if decl is not None:
        return decl.protocol_version, decl.protocol_hash
    gt = {(s.protocol_version, s.protocol_hash) for s in subs if s.kind == "ground-truth"}
    if len(gt) == 1:
        return next(iter(gt))
    counts = Counter((s.protocol_version, s.protocol_hash) for s in subs)
    return max(counts, key=lambda k: (counts[k], _version_key(k[0]), k[1]))


def _canonical_weights(subs: list[Submission], decl: BenchmarkDecl | None) -> dict[str, tuple[str | None, bool]]:
    out = dict(decl.weights) if decl is not None else {}
    keys = sorted({k for s in subs for k, m in s.metrics.items() if m.computed})
    for key in keys:
        if key in out:
            continue
        gt = {s.metrics[key].signature for s in subs
              if s.kind == "ground-truth" and key in s.metrics and s.metrics[key].computed}
        if len(gt) == 1:
            out[key] = next(iter(gt))
            continue
        counts = Counter(s.metrics[key].signature for s in subs if key in s.metrics and s.metrics[key].computed)
        # most common; then calibrated before uncalibrated; then the smallest sha for determinism
        out[key] = max(counts, key=lambda sig: (counts[sig], sig[1], tuple(-ord(c) for c in (sig[0] or ""))))
    return out


def _short(sha: str | None) -> str:
    return "none" if sha is None else sha[:12] + "…"


def mismatch(sub: Submission, protocol: tuple[str, str], weights: dict,
             columns: dict[str, Column] | None = None) -> tuple[tuple, str]:
    """(grouping key, human reason) of how ``sub`` differs from the benchmark protocol; ((), '') if not.

    Differences: protocol version or hash; a computed metric's weights or calibration; a computed metric
    whose direction is not the benchmark column's (the minority of the files reporting it).
    """
    columns = columns or {}
    key, reasons = [], []
    if sub.protocol_version != protocol[0]:
        key.append(("protocol_version", sub.protocol_version))
        reasons.append(f"protocol version {sub.protocol_version} (benchmark: {protocol[0]})")
    if sub.protocol_hash != protocol[1]:
        key.append(("protocol_hash", sub.protocol_hash))
        reasons.append(f"protocol hash {_short(sub.protocol_hash)} (benchmark: {_short(protocol[1])})")
    for mkey in sorted(sub.metrics):
        m = sub.metrics[mkey]
        if not m.computed:
            continue
        col = columns.get(mkey)
        label = col.label if col is not None else mkey
        if col is not None and m.higher_is_better != col.higher_is_better:
            key.append(("direction", mkey, m.higher_is_better))
            reasons.append(f"{label} {_direction_word(m.higher_is_better)} "
                           f"(benchmark: {_direction_word(col.higher_is_better)})")
        want = weights.get(mkey)
        if want is None or m.signature == want:
            continue
        key.append(("weights", mkey, m.signature))
        if m.weights_sha256 != want[0]:
            reasons.append(f"{label} weights {_short(m.weights_sha256)} (benchmark: {_short(want[0])})")
        if m.calibrated != want[1]:
            cal = "uncalibrated" if not m.calibrated else "calibrated"
            reasons.append(f"{label} {cal} (benchmark: {'calibrated' if want[1] else 'uncalibrated'})")
    return tuple(key), "; ".join(reasons)


# ---------------------------------------------------------------- ranking

def rank_rows(rows: list[Row], columns: tuple[Column, ...] | None = None) -> None:
    """Competition ranks (1, 2, 2, 4) per headline column among ranked rows with a finite value; best = rank 1.

    ``columns``: default the rows' own (:func:`metric_columns`).
    """
    if columns is None:
        columns = metric_columns([r.sub for r in rows])
    for col in columns:
        if not col.headline:
            continue
        vals = [(r.sub.metrics[col.key].value, r) for r in rows
                if r.ranked and col.key in r.sub.metrics and _is_finite(r.sub.metrics[col.key].value)]
        vals.sort(key=lambda vr: -vr[0] if col.higher_is_better else vr[0])
        prev, prev_rank = None, 0
        for i, (v, r) in enumerate(vals):
            rank = prev_rank if v == prev else i + 1
            r.ranks[col.key] = rank
            if rank == 1:
                r.best.add(col.key)
            prev, prev_rank = v, rank
        mark_ties([r for _, r in vals], col)
    for r in rows:
        r.mean_rank = sum(r.ranks.values()) / len(r.ranks) if r.ranks else None


# ---------------------------------------------------------------- statistical ties

TIE_RESAMPLES, TIE_SEED = 2000, 0
TIE_RULE = ("a rank is statistically tied with the rank above it when the 95 % paired-bootstrap interval of the "
            "mean per-video difference over their common videos (per_video.parquet) contains 0, or, without "
            "per-video values for both, when their ci95 intervals overlap")


def _per_video_values(sub: Submission, key: str) -> dict[str, float] | None:
    if sub.per_video is None:
        return None
    try:
        import pyarrow.parquet as pq

        t = pq.read_table(sub.per_video, columns=["clip_id", key]).to_pydict()
    except Exception:  # noqa: BLE001 - no such column (set-level metric) or unreadable: no paired test
        return None
    return {c: float(v) for c, v in zip(t["clip_id"], t[key]) if v is not None and math.isfinite(v)}


def tie_with(a: Submission, b: Submission, key: str) -> str | None:
    """How ``b`` is statistically tied with ``a`` on metric ``key`` ('paired' / 'ci'), or None when it is not."""
    import numpy as np

    va, vb = _per_video_values(a, key), _per_video_values(b, key)
    if va is not None and vb is not None:
        common = sorted(set(va) & set(vb))
        if len(common) >= 2:
            d = np.array([va[c] - vb[c] for c in common])
            idx = np.random.default_rng(TIE_SEED).integers(0, len(d), size=(TIE_RESAMPLES, len(d)))
            lo, hi = np.percentile(d[idx].mean(axis=1), [2.5, 97.5])
            return "paired" if lo <= 0 <= hi else None
    ca, cb = a.metrics[key].ci95, b.metrics[key].ci95
    if ca is not None and cb is not None:
        return "ci" if ca[0] <= cb[1] and cb[0] <= ca[1] else None
    return None


def mark_ties(ordered: list[Row], col: Column) -> None:
    """``Row.tied[col]`` for each ranked row tied with the row ranked just above it (:data:`TIE_RULE`)."""
    for above, row in zip(ordered, ordered[1:]):
        if row.ranks.get(col.key) == above.ranks.get(col.key):
            continue  # equal values share the rank already
        how = tie_with(above.sub, row.sub, col.key)
        if how:
            row.tied[col.key] = how


def _sort_rows(rows: list[Row]) -> list[Row]:
    def key(r: Row):
        gt = 0 if r.sub.kind == "ground-truth" else 1
        mr = r.mean_rank if r.mean_rank is not None else math.inf
        return (gt, mr, KIND_ORDER.get(r.sub.kind, 9), r.sub.name.casefold(), r.sub.name, r.sub.path)
    return sorted(rows, key=key)


def _table(subs: list[Submission], ranked: bool, reason: str | None, protocol: tuple[str, str],
           columns: tuple[Column, ...], expected: int | None = None) -> Table:
    rows = [Row(s, missing=missing_clips(s, expected)) for s in subs]
    present = {k for s in subs for k in s.metrics}
    cols = tuple(c for c in columns if c.key in present)
    if ranked:
        rank_rows(rows, cols)
    weights = {}
    for s in subs:
        for k, m in s.metrics.items():
            if m.computed:
                weights.setdefault(k, m.signature)
    uncal = {k for k, (_, cal) in weights.items() if not cal}
    if not ranked and subs:
        protocol = (subs[0].protocol_version, subs[0].protocol_hash)
    return Table(ranked, reason, _sort_rows(rows), protocol[0], protocol[1], weights, uncal, cols)


def build_benchmarks(collection: Collection) -> list[Benchmark]:
    """Benchmarks sorted by (name, reference shards, mode), each with its ranked and unranked tables.

    The benchmark protocol is fixed per (reference shards, mode): the protocol hash covers the metrics a
    mode computes, so reconstruction and cross runs of the same shards have different hashes.
    """
    groups: dict[tuple[str, str], list[Submission]] = {}
    for s in collection.submissions:
        groups.setdefault((s.reference_shards_sha256, s.mode), []).append(s)
    out = []
    for (sha, mode), subs in groups.items():
        decl = collection.declaration(sha, mode)
        protocol = _canonical_protocol(subs, decl)
        in_protocol = [s for s in subs if (s.protocol_version, s.protocol_hash) == protocol]
        weights = _canonical_weights(in_protocol or subs, decl)
        columns = metric_columns(subs, in_protocol)
        by_key = {c.key: c for c in columns}
        if decl is not None and decl.name:
            name = decl.name
        else:
            all_names = Counter(s.benchmark_name for s in collection.submissions
                                if s.reference_shards_sha256 == sha and s.benchmark_name)
            name = min(all_names, key=lambda n: (-all_names[n], n)) if all_names else ""
        expected = benchmark_clip_count(in_protocol or subs, mode)
        ranked, mismatched = [], {}
        for s in sorted(subs, key=lambda s: s.path):
            key, reason = mismatch(s, protocol, weights, by_key)
            if not key and s.kind != "ground-truth" and missing_clips(s, expected):
                key, reason = ("incomplete",), INCOMPLETE
            if key:
                mismatched.setdefault(key, (reason, []))[1].append(s)
            else:
                ranked.append(s)
        unranked = [_table(members, False, reason, protocol, columns, expected)
                    for reason, members in mismatched.values()]
        unranked.sort(key=lambda t: (t.reason, t.rows[0].sub.path))
        out.append(Benchmark(name=name, reference_shards_sha256=sha, mode=mode, declared=decl is not None,
                             protocol_version=protocol[0], protocol_hash=protocol[1], weights=weights,
                             ranked=_table(ranked, True, None, protocol, columns, expected), unranked=unranked,
                             columns=columns))
    out.sort(key=lambda b: (b.name.casefold(), b.name, b.reference_shards_sha256, b.mode))
    return out


def csv_columns(benchmarks: list[Benchmark]) -> list[Column]:
    """Every column of every benchmark (first seen, in benchmark order), one per metric name."""
    seen: dict[str, Column] = {}
    for b in benchmarks:
        for c in b.columns:
            seen.setdefault(c.key, c)
    return list(seen.values())


# ---------------------------------------------------------------- number formatting (shared by renderers)

def fmt_value(v: float | None, decimals: int) -> str:
    if v is None or math.isnan(v):
        return "—"
    if math.isinf(v):
        return "∞" if v > 0 else "−∞"
    return f"{v:.{decimals}f}"


def fmt_metric(sub: Submission, col: Column) -> str:
    """'31.20 [30.61, 31.78]' with a 95 % interval, '31.20 ± 0.30' with only a stderr, '31.20', '—' when not
    computed."""
    m = sub.metrics.get(col.key)
    if m is None or not m.computed:
        return "—"
    s = fmt_value(m.value, col.decimals)
    if m.ci95 is not None and _is_finite(m.value) and all(_is_finite(x) for x in m.ci95):
        s += f" [{m.ci95[0]:.{col.decimals}f}, {m.ci95[1]:.{col.decimals}f}]"
    elif _is_finite(m.stderr) and _is_finite(m.value):
        s += f" ± {m.stderr:.{col.decimals}f}"
    return s


def fmt_rank(row: Row, col: Column) -> str:
    """'3' or '3≈' (statistically tied with the rank above)."""
    return f"{row.ranks[col.key]}{'≈' if col.key in row.tied else ''}"


def fmt_counts(sub: Submission) -> str:
    sc = "?" if sub.n_scored is None else str(sub.n_scored)
    sk = "?" if sub.n_skipped is None else str(sub.n_skipped)
    return f"{sc} / {sk}"


def lead_columns(table: Table) -> list[str]:
    """The optional text columns (``model``, ``date``) that at least one row of the table fills."""
    return [name for name in ("model", "date") if any(getattr(r.sub, name) for r in table.rows)]


def skip_notes(table: Table) -> list[str]:
    """One line per distinct reason a headline value is missing ("LSE-D, LSE-C: <why> (3 rows)"), then one
    line per incomplete row. Untrusted text: renderers escape it."""
    by_reason: dict[str, tuple[list[str], list[str]]] = {}
    for row in table.rows:
        for c in table.headline:
            why = skipped_reason(row.sub, c)
            if why and why != "not reported":
                labels, names = by_reason.setdefault(why, ([], []))
                if c.label not in labels:
                    labels.append(c.label)
                if row.sub.name not in names:
                    names.append(row.sub.name)
    out = []
    for why, (labels, names) in by_reason.items():
        who = names[0] if len(names) == 1 else f"{len(names)} rows"
        out.append(f"{', '.join(labels)}: {why} ({who})")
    out += [f"{row.sub.name}: {row.missing}" for row in table.rows if row.missing]
    return out


def skipped_reason(sub: Submission, col: Column) -> str | None:
    m = sub.metrics.get(col.key)
    if m is None:
        return "not reported"
    return None if m.computed else (m.skipped_reason or "not computed")


def weights_line(bench_weights: dict[str, tuple[str | None, bool]],
                 columns: tuple[Column, ...] = ()) -> list[tuple[str, str]]:
    """(label, 'weights abc…, UNCALIBRATED') for each metric that has weights or is uncalibrated (column order)."""
    labels = {c.key: c.label for c in columns}
    order = [c.key for c in columns]
    out = []
    for key in sorted(bench_weights, key=lambda k: (order.index(k) if k in order else len(order), k)):
        sha, cal = bench_weights[key]
        if sha is None and cal:
            continue
        parts = [f"weights {sha}" if sha else "no weights hash"]
        if not cal:
            parts.append("UNCALIBRATED")
        out.append((labels.get(key, key), ", ".join(parts)))
    return out
