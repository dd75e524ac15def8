"""Building the results document evalkit writes (the format itself, and its one parser: :mod:`talkbase.results`).

Each metric entry is made from the metric's spec, so the file describes itself: label, direction, unit,
version, display precision, valid range, protocol and weights. Reading it back with
:func:`talkbase.results.parse_results` before writing is the validation.
"""
from __future__ import annotations

import math

from talkbase.results import RESULTS_SCHEMA, ResultsError, dumps, load_results, parse_results  # noqa: F401

from .metrics.base import MetricSpec

RESULTS_SCHEMA_VERSION = RESULTS_SCHEMA


def metric_entry(spec: MetricSpec, summary: dict, n_expected: int, protocol: dict,
                 weights_sha256: str | None = None, calibrated: bool = True,
                 skipped_reason: str | None = None, weights_status: str | None = None, **extra) -> dict:
    """One ``metrics`` entry from a spec and its merged summary (``value``, ``stderr``, ``n``, ...).

    A value from uncalibrated (random) or unverified (a file whose sha256 is not a pinned official one)
    weights says so in its unit and in ``weights_status``.
    """
    value, stderr, n = summary.get("value"), summary.get("stderr"), int(summary.get("n") or 0)
    if value is not None and not math.isfinite(float(value)):
        value, skipped_reason = None, skipped_reason or "value not finite"
    if value is None:
        stderr, n = None, 0
        skipped_reason = skipped_reason or summary.get("reason") or "not computed"
    else:
        skipped_reason = None
    word = "unverified" if weights_status == "unverified" else "uncalibrated"
    unit = spec.unit if calibrated else f"{spec.unit} ({word})".strip()
    entry = {"value": None if value is None else float(value), "stderr": None if stderr is None else float(stderr),
             "higher_is_better": spec.higher_is_better, "label": spec.label, "unit": unit, "version": spec.version,
             "n_scored": n, "n_skipped": max(0, n_expected - n), "protocol": protocol,
             "weights_sha256": weights_sha256, "calibrated": bool(calibrated), "skipped_reason": skipped_reason,
             "decimals": spec.decimals, "headline": spec.headline, "valid_range": list(spec.valid_range)}
    for key in ("frames", "frames_skipped"):
        if key in summary:
            entry[f"n_{key}"] = int(summary[key])
    for key in ("n_samples", "n_reference_samples", "warning"):
        if summary.get(key) is not None:
            entry[key] = summary[key]
    if weights_status is not None:
        entry["weights_status"] = weights_status
    entry.update(extra)
    return entry


__all__ = ["metric_entry", "RESULTS_SCHEMA_VERSION", "dumps", "load_results", "parse_results", "ResultsError"]
