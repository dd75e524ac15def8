"""leaderboard.csv: one row per results file (ranked, unranked or rejected), every metric with its provenance."""
from __future__ import annotations

import csv
import io
import math

from .escape import csv_text, safe_url
from .registry import Collection
from .tables import ALL_COLUMNS, Benchmark, Row, Table

BASE_FIELDS = ["benchmark", "reference_shards_sha256", "mode", "protocol_version", "protocol_hash", "table",
               "not_ranked_reason", "submission", "kind", "model", "date", "link", "notes", "results_path",
               "results_sha256", "talkbench_version", "n_expected", "n_scored", "n_skipped", "mean_rank"]
METRIC_FIELDS = ["", "_stderr", "_rank", "_n_scored", "_n_skipped", "_calibrated", "_weights_sha256",
                 "_skipped_reason"]


def fieldnames() -> list[str]:
    return BASE_FIELDS + [c.key + suffix for c in ALL_COLUMNS for suffix in METRIC_FIELDS]


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


def _row(b: Benchmark, t: Table, row: Row) -> dict:
    s = row.sub
    d = {"benchmark": csv_text(b.name), "reference_shards_sha256": b.reference_shards_sha256, "mode": s.mode,
         "protocol_version": csv_text(s.protocol_version), "protocol_hash": s.protocol_hash,
         "table": "ranked" if t.ranked else "not-ranked", "not_ranked_reason": csv_text(t.reason or ""),
         "submission": csv_text(s.name), "kind": s.kind, "model": csv_text(s.model), "date": csv_text(s.date),
         "link": safe_url(s.link) or "", "notes": csv_text(s.notes), "results_path": csv_text(s.path),
         "results_sha256": s.sha256, "talkbench_version": csv_text(s.talkbench_version),
         "n_expected": _num(s.n_expected), "n_scored": _num(s.n_scored), "n_skipped": _num(s.n_skipped),
         "mean_rank": "" if row.mean_rank is None else f"{row.mean_rank:.4f}"}
    for c in ALL_COLUMNS:
        m = s.metrics.get(c.key)
        if m is None:
            continue
        d[c.key] = _num(m.value) if m.computed else ""
        d[c.key + "_stderr"] = _num(m.stderr)
        d[c.key + "_rank"] = _num(row.ranks.get(c.key))
        d[c.key + "_n_scored"] = _num(m.n_scored)
        d[c.key + "_n_skipped"] = _num(m.n_skipped)
        d[c.key + "_calibrated"] = "true" if m.calibrated else "false"
        d[c.key + "_weights_sha256"] = m.weights_sha256 or ""
        d[c.key + "_skipped_reason"] = csv_text(m.skipped_reason or "")
    return d


def render_csv(benchmarks: list[Benchmark], collection: Collection) -> str:
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=fieldnames(), lineterminator="\n", restval="", extrasaction="raise")
    w.writeheader()
    for b in benchmarks:
        for t in [b.ranked] + b.unranked:
            for row in t.rows:
                w.writerow(_row(b, t, row))
    for r in collection.rejected:
        w.writerow({"table": "rejected", "not_ranked_reason": csv_text(r.reason), "results_path": csv_text(r.path)})
    return buf.getvalue()
