"""``results.json``: building, writing and validating the file the leaderboard reads (``talkbench-results/1``).

Top level: ``results_schema``, ``talkbench_version``, ``created`` (informational), ``benchmark``
(``name``, ``reference_shards_sha256``, ``protocol_version``, ``protocol_hash``), ``submission`` (``name``,
``model``, ``date``, ``link``, ``notes``, ``kind`` model|ground-truth|baseline, ``mode``
reconstruction|cross), ``config``, ``metrics``, ``skipped`` (``clip_id``, ``reason``, plus ``code``/``path``),
``n_videos`` (``expected`` = ``scored`` + ``skipped``; plus ``extra`` unknown files, ``resampled``,
``skip_codes``) and ``per_video`` (``path``, ``sha256``). Each metric: ``value`` (null when it could not be
computed, with ``skipped_reason``), ``stderr``, ``higher_is_better``, ``n_scored``, ``n_skipped``, ``unit``,
``version``, ``protocol``, ``weights_sha256``, ``calibrated`` (false → "uncalibrated" in the unit) and
``skipped_reason``; extra keys (``skip_reasons``, ``n_frames``, FID's ``n_samples``/``warning``/``label``)
are allowed.

``load_results`` raises :class:`ResultsSchemaError` naming the first violation; it also recomputes
``benchmark.protocol_hash`` from the metrics' protocol dicts and, when ``per_video.parquet`` sits next to
the file, checks its sha256.
"""
from __future__ import annotations

import hashlib
import json
import math
import re
from pathlib import Path, PurePosixPath

from .protocol import METRICS, canonical_json, protocol_hash

RESULTS_SCHEMA_VERSION = "talkbench-results/1"
SUBMISSION_KINDS = ("model", "ground-truth", "baseline")
MODES = ("reconstruction", "cross")
_HEX64 = re.compile(r"^[0-9a-f]{64}$")
_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")

METRIC_FIELDS = {
    "value": (int, float, type(None)), "stderr": (int, float, type(None)), "higher_is_better": (bool,),
    "n_scored": (int,), "n_skipped": (int,), "unit": (str,), "version": (str,), "protocol": (dict,),
    "weights_sha256": (str, type(None)), "calibrated": (bool,), "skipped_reason": (str, type(None)),
}


class ResultsSchemaError(ValueError):
    """results.json does not follow the agreed format."""


def _fail(where: str, msg: str):
    raise ResultsSchemaError(f"{where}: {msg}")


def _req(d: dict, key: str, types, where: str):
    if not isinstance(d, dict):
        _fail(where, "expected an object")
    if key not in d:
        _fail(where, f"missing key {key!r}")
    v = d[key]
    if isinstance(v, bool) and bool not in types:
        _fail(f"{where}.{key}", f"expected {[t.__name__ for t in types]}, got bool")
    if not isinstance(v, types):
        _fail(f"{where}.{key}", f"expected {[t.__name__ for t in types]}, got {type(v).__name__}")
    return v


def _finite(v, where: str):
    if isinstance(v, float) and not math.isfinite(v):
        _fail(where, f"not a finite number: {v}")


def validate_metric(name: str, m: dict) -> None:
    where = f"metrics.{name}"
    for key, types in METRIC_FIELDS.items():
        _req(m, key, types, where)
    _finite(m["value"], f"{where}.value")
    _finite(m["stderr"], f"{where}.stderr")
    if m["n_scored"] < 0 or m["n_skipped"] < 0:
        _fail(where, "negative counts")
    if m["value"] is None:
        if not m["skipped_reason"]:
            _fail(where, "value is null but skipped_reason is empty")
        if m["stderr"] is not None:
            _fail(where, "value is null but stderr is not")
    elif m["skipped_reason"] is not None:
        _fail(where, "has a value and a skipped_reason")
    if m["stderr"] is not None and m["stderr"] < 0:
        _fail(f"{where}.stderr", "negative")
    if m["weights_sha256"] is not None and not _HEX64.match(m["weights_sha256"]):
        _fail(f"{where}.weights_sha256", "not a 64-char lowercase hex sha256")
    if name in METRICS:
        if m["higher_is_better"] != METRICS[name][2]:
            _fail(f"{where}.higher_is_better", f"must be {METRICS[name][2]} for {name}")
        if m["version"] != METRICS[name][0]:
            _fail(f"{where}.version", f"{m['version']!r} is not this evalkit's {METRICS[name][0]!r}")
    if m["protocol"].get("version") != m["version"]:
        _fail(f"{where}.protocol.version", "differs from the metric version")
    if not m["calibrated"] and m["value"] is not None and "uncalibrated" not in m["unit"].lower():
        _fail(where, "an uncalibrated value must say 'uncalibrated' in its unit")


def validate_results(r: dict) -> None:
    """Raise :class:`ResultsSchemaError` unless ``r`` follows ``talkbench-results/1``."""
    if not isinstance(r, dict):
        _fail("results", "expected a JSON object")
    if _req(r, "results_schema", (str,), "results") != RESULTS_SCHEMA_VERSION:
        _fail("results_schema", f"{r['results_schema']!r} is not {RESULTS_SCHEMA_VERSION!r}")
    _req(r, "talkbench_version", (str,), "results")
    _req(r, "created", (str,), "results")
    b = _req(r, "benchmark", (dict,), "results")
    _req(b, "name", (str,), "benchmark")
    for key in ("reference_shards_sha256", "protocol_hash"):
        if not _HEX64.match(_req(b, key, (str,), "benchmark")):
            _fail(f"benchmark.{key}", "not a 64-char lowercase hex sha256")
    _req(b, "protocol_version", (str,), "benchmark")
    s = _req(r, "submission", (dict,), "results")
    for key in ("name", "model", "date", "link", "notes", "kind", "mode"):
        _req(s, key, (str,) if key in ("name", "kind", "mode") else (str, type(None)), "submission")
    if s["kind"] not in SUBMISSION_KINDS:
        _fail("submission.kind", f"{s['kind']!r} not one of {SUBMISSION_KINDS}")
    if s["mode"] not in MODES:
        _fail("submission.mode", f"{s['mode']!r} not one of {MODES}")
    if s["date"] is not None and not _DATE.match(s["date"]):
        _fail("submission.date", f"{s['date']!r} is not YYYY-MM-DD")
    _req(r, "config", (dict,), "results")
    metrics = _req(r, "metrics", (dict,), "results")
    if not metrics:
        _fail("metrics", "no metrics")
    for name, m in metrics.items():
        validate_metric(name, m)
    expected = protocol_hash({k: v["protocol"] for k, v in metrics.items()})
    if b["protocol_hash"] != expected:
        _fail("benchmark.protocol_hash", "does not match the metrics' protocol dicts")
    skipped = _req(r, "skipped", (list,), "results")
    for i, item in enumerate(skipped):
        _req(item, "clip_id", (str,), f"skipped[{i}]")
        _req(item, "reason", (str,), f"skipped[{i}]")
    n = _req(r, "n_videos", (dict,), "results")
    for key in ("expected", "scored", "skipped"):
        if _req(n, key, (int,), "n_videos") < 0:
            _fail(f"n_videos.{key}", "negative")
    if n["scored"] + n["skipped"] != n["expected"]:
        _fail("n_videos", f"scored {n['scored']} + skipped {n['skipped']} != expected {n['expected']}")
    for name, m in metrics.items():
        if m["n_scored"] > n["scored"]:
            _fail(f"metrics.{name}.n_scored", f"{m['n_scored']} > videos scored {n['scored']}")
    pv = _req(r, "per_video", (dict,), "results")
    path = _req(pv, "path", (str,), "per_video")
    pp = PurePosixPath(path)
    if pp.is_absolute() or ".." in pp.parts or "\\" in path:
        _fail("per_video.path", f"{path!r} must be a relative path inside the results dir")
    if not _HEX64.match(_req(pv, "sha256", (str,), "per_video")):
        _fail("per_video.sha256", "not a 64-char lowercase hex sha256")
    try:
        canonical_json(r)
    except (TypeError, ValueError) as e:
        _fail("results", f"not strict JSON ({e})")


def load_results(path, verify_files: bool = True) -> dict:
    """Read and validate a results.json; with ``verify_files`` also check per_video.parquet's sha256
    when that file is present next to it."""
    path = Path(path)
    try:
        r = json.loads(path.read_text(encoding="utf-8"),
                       parse_constant=lambda c: _fail(str(path), f"non-standard JSON constant {c}"))
    except json.JSONDecodeError as e:
        raise ResultsSchemaError(f"{path}: not JSON ({e})") from e
    validate_results(r)
    if verify_files:
        pv = path.parent / r["per_video"]["path"]
        if pv.is_file():
            digest = hashlib.sha256(pv.read_bytes()).hexdigest()
            if digest != r["per_video"]["sha256"]:
                _fail("per_video.sha256", f"{pv} has sha256 {digest}, results.json says {r['per_video']['sha256']}")
    return r


def dumps(r: dict) -> str:
    """Pretty, stable JSON text (sorted keys, no NaN)."""
    return json.dumps(r, indent=2, sort_keys=True, allow_nan=False, ensure_ascii=False) + "\n"


def metric_entry(name: str, value, stderr, n_scored: int, n_skipped: int, protocol: dict,
                 weights_sha256: str | None = None, calibrated: bool = True,
                 skipped_reason: str | None = None, **extra) -> dict:
    """One ``metrics`` entry; an uncalibrated value gets '(uncalibrated)' in its unit."""
    version, unit, higher = METRICS[name]
    if value is not None and not math.isfinite(float(value)):
        value, skipped_reason = None, skipped_reason or "value not finite"
    if value is None:
        stderr = None
        skipped_reason = skipped_reason or "not computed"
    else:
        skipped_reason = None
    if not calibrated:
        unit = f"{unit} (uncalibrated)".strip()
    entry = {"value": None if value is None else float(value),
             "stderr": None if stderr is None else float(stderr),
             "higher_is_better": higher, "n_scored": int(n_scored), "n_skipped": int(n_skipped),
             "unit": unit, "version": version, "protocol": protocol, "weights_sha256": weights_sha256,
             "calibrated": bool(calibrated), "skipped_reason": skipped_reason}
    entry.update(extra)
    return entry


__all__ = ["RESULTS_SCHEMA_VERSION", "ResultsSchemaError", "load_results", "validate_results",
           "validate_metric", "metric_entry", "dumps"]
