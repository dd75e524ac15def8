"""``results.json`` (``talkbench-results/1``): the one reader and writer, used by evalkit and the leaderboard.

Top level: ``results_schema``, ``talkbench_version``, ``created`` (informational), ``benchmark`` (``name``,
``reference_shards_sha256``, ``protocol_version``, ``protocol_hash``), ``submission`` (``name``, ``model``,
``date``, ``link``, ``notes``, ``kind`` model|ground-truth|baseline, ``mode``), ``config``, ``metrics``,
``metric_order``, ``skipped``, ``n_videos`` (``expected`` = ``scored`` + ``skipped``; ``extra``,
``resampled``, ``skip_codes``) and ``per_video`` (``path``, ``sha256``).

Each metric describes itself, so a reader needs no table of its own: ``value`` (null when it could not be
computed, with ``skipped_reason``), ``stderr``, ``ci95``, ``higher_is_better``, ``label``, ``unit``,
``version``, ``n_scored``, ``n_skipped``, ``protocol``, ``weights_sha256``, ``calibrated``; more keys are
allowed (``skip_reasons``, ``n_frames``, FID's ``n_samples`` ...). ``benchmark.protocol_hash`` is the sha256
of the canonical JSON of ``{metric: protocol}`` and is recomputed on every read, so a file cannot claim a
protocol its metrics were not computed under.
"""
from __future__ import annotations

import hashlib
import json
import math
import re
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

RESULTS_SCHEMA = "talkbench-results/1"
KINDS = ("model", "ground-truth", "baseline")
MODES = ("reconstruction", "cross", "reference-free")
META_FIELDS = ("name", "model", "date", "link", "notes", "kind")
MAX_RESULTS_BYTES = 8 << 20
MAX_ABS_VALUE = 1e9  # no metric value or stderr is this large: a file claiming one was tampered with
RESULTS_FILE = "results.json"
PER_VIDEO_FILE = "per_video.parquet"

_HEX64 = re.compile(r"[0-9a-f]{64}")
_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")
_METRIC_NAME = re.compile(r"[a-z0-9_]{1,40}")


class ResultsError(ValueError):
    """A results document that does not follow ``talkbench-results/1``; the message names the field."""


def canonical_json(obj) -> bytes:
    """Sorted-key compact ASCII JSON: the bytes that protocol hashes are taken over."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=True, allow_nan=False).encode()


def protocol_hash(protocols: dict[str, dict]) -> str:
    """sha256 of the canonical JSON of ``{metric name: protocol dict}``."""
    return hashlib.sha256(canonical_json(protocols)).hexdigest()


def dumps(doc: dict) -> str:
    """Pretty, stable JSON text (sorted keys, no NaN)."""
    return json.dumps(doc, indent=2, sort_keys=True, allow_nan=False, ensure_ascii=False) + "\n"


# ---------------------------------------------------------------- typed view

@dataclass(frozen=True)
class MetricResult:
    name: str
    value: float | None
    stderr: float | None
    ci95: tuple[float, float] | None
    higher_is_better: bool
    label: str
    unit: str
    version: str
    n_scored: int | None
    n_skipped: int | None
    protocol: dict
    weights_sha256: str | None
    calibrated: bool
    skipped_reason: str | None
    extra: dict = field(default_factory=dict)  # every other key of the entry

    @property
    def computed(self) -> bool:
        return self.value is not None

    @property
    def signature(self) -> tuple[str | None, bool]:
        """What must match for two values of this metric to be comparable (beyond the protocol)."""
        return (self.weights_sha256, self.calibrated)


@dataclass(frozen=True)
class Results:
    benchmark_name: str
    reference_shards_sha256: str
    protocol_version: str
    protocol_hash: str
    talkbench_version: str
    meta: dict  # submission: name, model, date, link, notes, kind, mode
    metrics: dict[str, MetricResult]
    metric_order: tuple[str, ...]
    n_expected: int | None
    n_scored: int | None
    n_skipped: int | None
    skipped: tuple[dict, ...]
    per_video: dict | None
    doc: dict  # the validated document itself


# ---------------------------------------------------------------- validation

def _fail(where: str, msg: str):
    raise ResultsError(f"{where}: {msg}")


def _get(d, key: str, kind, where: str, required: bool = True, default=None):
    if not isinstance(d, dict):
        _fail(where, "expected an object")
    if d.get(key) is None:
        if required:
            _fail(f"{where}.{key}", "missing")
        return default
    v = d[key]
    if kind == "number":
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            _fail(f"{where}.{key}", f"expected a number, got {type(v).__name__}")
        if not math.isfinite(v):
            _fail(f"{where}.{key}", f"not a finite number: {v}")
        return float(v)
    if kind == "count":
        if isinstance(v, bool) or not isinstance(v, int) or v < 0:
            _fail(f"{where}.{key}", "expected a non-negative integer")
        return v
    if kind is bool:
        if not isinstance(v, bool):
            _fail(f"{where}.{key}", f"expected true/false, got {type(v).__name__}")
        return v
    if not isinstance(v, kind) or isinstance(v, bool):
        _fail(f"{where}.{key}", f"expected {kind.__name__}, got {type(v).__name__}")
    return v


def _hex64(v, where: str) -> str:
    if not isinstance(v, str) or not _HEX64.fullmatch(v):
        _fail(where, "expected a lowercase 64-hex sha256")
    return v


_METRIC_KEYS = {"value", "stderr", "ci95", "higher_is_better", "label", "unit", "version", "n_scored",
                "n_skipped", "protocol", "weights_sha256", "calibrated", "skipped_reason"}


def parse_metric(name: str, d, where: str) -> MetricResult:
    value = _get(d, "value", "number", where, required=False)
    stderr = _get(d, "stderr", "number", where, required=False)
    if stderr is not None and stderr < 0:
        _fail(f"{where}.stderr", "negative")
    for key, v in (("value", value), ("stderr", stderr)):
        if v is not None and abs(v) > MAX_ABS_VALUE:
            _fail(f"{where}.{key}", f"{v:g} is beyond any metric's range (|x| > {MAX_ABS_VALUE:g})")
    ci = d.get("ci95")
    if ci is not None:
        if not (isinstance(ci, list) and len(ci) == 2):
            _fail(f"{where}.ci95", "expected [lo, hi]")
        lo, hi = (_get({"x": c}, "x", "number", f"{where}.ci95") for c in ci)
        if lo > hi:
            _fail(f"{where}.ci95", f"lo {lo} > hi {hi}")
        ci = (lo, hi)
    lim = d.get("valid_range")
    if lim is None and isinstance(d.get("protocol"), dict):  # the protocol (hashed) carries it too
        lim = d["protocol"].get("valid_range")
    if lim is not None and value is not None:
        if not (isinstance(lim, list) and len(lim) == 2):
            _fail(f"{where}.valid_range", "expected [lo, hi] (null for open ends)")
        lo, hi = lim
        if any(x is not None and (isinstance(x, bool) or not isinstance(x, (int, float))) for x in lim):
            _fail(f"{where}.valid_range", "expected numbers or null")
        if (lo is not None and value < lo) or (hi is not None and value > hi):
            _fail(f"{where}.value", f"{value} outside the metric's range [{lo}, {hi}]")
    weights = d.get("weights_sha256")
    if weights is not None:
        _hex64(weights, f"{where}.weights_sha256")
    reason = _get(d, "skipped_reason", str, where, required=False)
    if value is None:
        if stderr is not None:
            _fail(where, "value is null but stderr is not")
        reason = reason or "not computed"
    elif reason is not None:
        _fail(where, "has a value and a skipped_reason")
    protocol = _get(d, "protocol", dict, where)
    version = _get(d, "version", str, where)
    if protocol.get("version") not in (None, version):
        _fail(f"{where}.protocol.version", "differs from the metric version")
    return MetricResult(
        name=name, value=value, stderr=stderr, ci95=ci,
        higher_is_better=_get(d, "higher_is_better", bool, where),
        label=_get(d, "label", str, where, required=False, default=name),
        unit=_get(d, "unit", str, where, required=False, default=""), version=version,
        n_scored=_get(d, "n_scored", "count", where, required=False),
        n_skipped=_get(d, "n_skipped", "count", where, required=False),
        protocol=protocol, weights_sha256=weights,
        calibrated=_get(d, "calibrated", bool, where, required=False, default=True),
        skipped_reason=reason, extra={k: v for k, v in d.items() if k not in _METRIC_KEYS})


def parse_results(doc) -> Results:
    """Validate a results document and return its typed view; raises :class:`ResultsError`."""
    if not isinstance(doc, dict):
        _fail("results", "expected a JSON object")
    if doc.get("results_schema") != RESULTS_SCHEMA:
        _fail("results_schema", f"{doc.get('results_schema')!r} is not {RESULTS_SCHEMA!r}")
    bench = _get(doc, "benchmark", dict, "results")
    sub = _get(doc, "submission", dict, "results")
    metrics_doc = _get(doc, "metrics", dict, "results")
    if not metrics_doc:
        _fail("metrics", "no metrics")
    protocol_version = _get(bench, "protocol_version", str, "benchmark")
    if not protocol_version.strip():
        _fail("benchmark.protocol_version", "empty")
    meta = {k: _get(sub, k, str, "submission", required=False, default="") for k in META_FIELDS}
    meta["kind"] = meta["kind"] or "model"
    meta["mode"] = _get(sub, "mode", str, "submission", required=False, default="reconstruction")
    if meta["kind"] not in KINDS:
        _fail("submission.kind", f"{meta['kind']!r} not one of {KINDS}")
    if meta["mode"] not in MODES:
        _fail("submission.mode", f"{meta['mode']!r} not one of {MODES}")
    if meta["date"] and not _DATE.fullmatch(meta["date"]):
        _fail("submission.date", f"{meta['date']!r} is not YYYY-MM-DD")
    metrics = {}
    for name in sorted(metrics_doc):
        if not isinstance(name, str) or not _METRIC_NAME.fullmatch(name):
            _fail("metrics", f"bad metric name {name!r}")
        metrics[name] = parse_metric(name, metrics_doc[name], f"metrics.{name}")
    claimed = _hex64(bench.get("protocol_hash"), "benchmark.protocol_hash")
    try:
        recomputed = protocol_hash({k: m.protocol for k, m in metrics.items()})
    except (TypeError, ValueError) as e:
        raise ResultsError(f"metrics: protocol dicts are not strict JSON ({e})") from None
    if recomputed != claimed:
        _fail("benchmark.protocol_hash", f"{claimed[:12]}… does not match the metrics' protocol dicts "
                                         f"({recomputed[:12]}…)")
    order = doc.get("metric_order")
    if order is None:
        order = sorted(metrics)
    elif not (isinstance(order, list) and sorted(order) == sorted(metrics)):
        _fail("metric_order", "must list every metric once")
    nv = doc.get("n_videos")
    counts = {k: None for k in ("expected", "scored", "skipped")}
    if nv is not None:
        counts = {k: _get(nv, k, "count", "n_videos") for k in counts}
        if counts["scored"] + counts["skipped"] != counts["expected"]:
            _fail("n_videos", f"scored {counts['scored']} + skipped {counts['skipped']} != "
                              f"expected {counts['expected']}")
        for name, m in metrics.items():
            if m.n_scored is not None and m.n_scored > counts["scored"]:
                _fail(f"metrics.{name}.n_scored", f"{m.n_scored} > videos scored {counts['scored']}")
    skipped = doc.get("skipped") or []
    if not isinstance(skipped, list):
        _fail("skipped", "expected a list")
    for i, item in enumerate(skipped):
        _get(item, "clip_id", str, f"skipped[{i}]")
        _get(item, "reason", str, f"skipped[{i}]")
    pv = doc.get("per_video")
    if pv is not None:
        rel = _get(pv, "path", str, "per_video")
        pp = PurePosixPath(rel)
        if pp.is_absolute() or ".." in pp.parts or "\\" in rel:
            _fail("per_video.path", f"{rel!r} must be a relative path inside the results folder")
        _hex64(pv.get("sha256"), "per_video.sha256")
    try:
        canonical_json(doc)
    except (TypeError, ValueError) as e:
        _fail("results", f"not strict JSON ({e})")
    return Results(
        benchmark_name=_get(bench, "name", str, "benchmark", required=False, default=""),
        reference_shards_sha256=_hex64(bench.get("reference_shards_sha256"), "benchmark.reference_shards_sha256"),
        protocol_version=protocol_version, protocol_hash=claimed,
        talkbench_version=_get(doc, "talkbench_version", str, "results", required=False, default=""),
        meta=meta, metrics=metrics, metric_order=tuple(order), n_expected=counts["expected"],
        n_scored=counts["scored"], n_skipped=counts["skipped"], skipped=tuple(skipped), per_video=pv, doc=doc)


def read_results_bytes(data: bytes, where: str = "results.json") -> Results:
    """Parse results bytes (size-limited; strict JSON: NaN / Infinity constants are refused)."""
    if len(data) > MAX_RESULTS_BYTES:
        _fail(where, f"larger than {MAX_RESULTS_BYTES} bytes")
    try:
        doc = json.loads(data.decode("utf-8"),
                         parse_constant=lambda c: _fail(where, f"non-standard JSON constant {c}"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ResultsError(f"{where}: not valid JSON ({e})") from None
    return parse_results(doc)


def load_results(path, verify_per_video: bool = True) -> Results:
    """Read and validate a results file; with ``verify_per_video`` also check the sha256 of the per-video
    table when it sits beside it."""
    path = Path(path)
    if path.stat().st_size > MAX_RESULTS_BYTES:
        _fail(str(path), f"larger than {MAX_RESULTS_BYTES} bytes")
    r = read_results_bytes(path.read_bytes(), str(path))
    if verify_per_video and r.per_video:
        pv = path.parent / r.per_video["path"]
        if pv.is_file():
            digest = hashlib.sha256(pv.read_bytes()).hexdigest()
            if digest != r.per_video["sha256"]:
                _fail("per_video.sha256", f"{pv} has sha256 {digest}, the results file says {r.per_video['sha256']}")
    return r


__all__ = ["RESULTS_SCHEMA", "KINDS", "MODES", "META_FIELDS", "MAX_RESULTS_BYTES", "RESULTS_FILE", "PER_VIDEO_FILE",
           "ResultsError", "MetricResult", "Results", "parse_results", "parse_metric", "read_results_bytes",
           "load_results", "dumps", "canonical_json", "protocol_hash"]
