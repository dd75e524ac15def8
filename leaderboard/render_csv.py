"""leaderboard.csv: one row per results file (ranked, unranked or rejected), every metric with its provenance.

Metric fields are ``<metric>`` + each of :data:`METRIC_FIELDS`, for every metric any benchmark reports (headline
or not), in the benchmarks' column order.
"""
from __future__ import annotations

import csv
import io
import math

from talkbase.escape import csv_text, safe_url

from .registry import Collection
from .tables import Benchmark, Row, Table, csv_columns

BASE_FIELDS = ["benchmark", "reference_shards_sha256", "mode", "protocol_version", "protocol_hash", "table",
               "not_ranked_reason", "submission", "kind", "model", "date", "link", "notes", "results_path",
               "results_sha256", "talkbench_version", "n_expected", "n_scored", "n_skipped", "mean_rank"]
METRIC_FIELDS = ["", "_stderr", "_rank", "_n_scored", "_n_skipped", "_calibrated", "_weights_sha256",
                 "_skipped_reason"]


def metric_keys(benchmarks: list[Benchmark]) -> tuple[list[str], list[str]]:
    """(metrics with CSV fields, metrics left out): metric names come from the results files, so a name
    whose fields would land on a field already taken (``kind``, ``psnr_rank`` beside ``psnr``...) is left out
    rather than overwrite it (first come, in column order)."""
    taken, keys, clashing = set(BASE_FIELDS), [], []
    for c in csv_columns(benchmarks):
        names = {c.key + suffix for suffix in METRIC_FIELDS}
        if names & taken:
            clashing.append(c.key)
            continue
        taken |= names
        keys.append(c.key)
    return keys, clashing


def fieldnames(keys: list[str]) -> list[str]:
    return BASE_FIELDS + [k + suffix for k in keys for suffix in METRIC_FIELDS]


def _num(v) -> str:
    if v is None:
        return ""
    if isinstance(v, float):
        if math.isnan(v):
            return ""
        if math.isinf(v):
            return "inf" if v > 0 else "-inf"
        return repr(v)  # shortest exact round-trip
    return str(v)


def _row(b: Benchmark, t: Table, row: Row, keys: list[str]) -> dict:
    s = row.sub
    d = {"benchmark": csv_text(b.name), "reference_shards_sha256": b.reference_shards_sha256, "mode": s.mode,
         "protocol_version": csv_text(s.protocol_version), "protocol_hash": s.protocol_hash,
         "table": "ranked" if t.ranked else "not-ranked", "not_ranked_reason": csv_text(t.reason or ""),
         "submission": csv_text(s.name), "kind": s.kind, "model": csv_text(s.model), "date": csv_text(s.date),
         "link": safe_url(s.link) or "", "notes": csv_text(s.notes), "results_path": csv_text(s.path),
         "results_sha256": s.sha256, "talkbench_version": csv_text(s.talkbench_version),
         "n_expected": _num(s.n_expected), "n_scored": _num(s.n_scored), "n_skipped": _num(s.n_skipped),
         "mean_rank": "" if row.mean_rank is None else f"{row.mean_rank:.4f}"}
    for k in keys:
        m = s.metrics.get(k)
        if m is None:
            continue
        d[k] = _num(m.value) if m.computed else ""
        d[k + "_stderr"] = _num(m.stderr)
        d[k + "_rank"] = _num(row.ranks.get(k))
        d[k + "_n_scored"] = _num(m.n_scored)
        d[k + "_n_skipped"] = _num(m.n_skipped)
        d[k + "_calibrated"] = "true" if m.calibrated else "false"
        d[k + "_weights_sha256"] = m.weights_sha256 or ""
        d[k + "_skipped_reason"] = csv_text(m.skipped_reason or "")
    return d


def render_csv(benchmarks: list[Benchmark], collection: Collection) -> str:
    keys, _ = metric_keys(benchmarks)
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=fieldnames(keys), lineterminator="\n", restval="", extrasaction="raise")
    w.writeheader()
    for b in benchmarks:
        for t in [b.ranked] + b.unranked:
            for row in t.rows:
                w.writerow(_row(b, t, row, keys))
    for r in collection.rejected:
        w.writerow({"table": "rejected", "not_ranked_reason": csv_text(r.reason), "results_path": csv_text(r.path)})
    return buf.getvalue()
