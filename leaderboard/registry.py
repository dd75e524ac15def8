"""Finding, validating and verifying stored results files (everything here is untrusted input).

Layout of a results root::

    RESULTS_ROOT/registry.json                 optional: the operator's list of accepted submissions
    RESULTS_ROOT/<any>/<dirs>/results.json     one evaluation run (evalkit's results format)
    RESULTS_ROOT/<any>/<dirs>/submission.json  optional: the submitter's metadata for that run
    RESULTS_ROOT/<any>/<dirs>/per_video.parquet  optional: per-video scores (used for plots)

``registry.json`` (schema ``talkbench-registry/1``)::

    {"registry_schema": "talkbench-registry/1",
     "benchmarks": [{"name": "lrs2-test", "reference_shards_sha256": "<64 hex>",
                     "protocol_version": "evalkit-1.0", "protocol_hash": "<64 hex>",
                     "weights": {"fid": "<sha256>", "lse_d": {"sha256": "<sha256>", "calibrated": true}}}],
     "submissions": [{"results": "team-a/run1/results.json", "sha256": "<sha256 of that file>",
                      "name": "...", "model": "...", "date": "YYYY-MM-DD", "link": "https://...",
                      "notes": "...", "kind": "model|ground-truth|baseline"}]}

With a registry, a results file is accepted only if it is listed there and its bytes hash to the listed
sha256; declared benchmarks fix the protocol and weights that rank. ``submission.json`` may carry
``results_sha256``, checked the same way. Metadata precedence: registry > submission.json > results.json.
"""
from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import re
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from .columns import DIRECTIONS

log = logging.getLogger(__name__)

RESULTS_SCHEMA = "talkbench-results/1"
REGISTRY_SCHEMA = "talkbench-registry/1"
RESULTS_FILE = "results.json"
SUBMISSION_FILE = "submission.json"
REGISTRY_FILE = "registry.json"
KINDS = ("model", "baseline", "ground-truth")
MODES = ("reconstruction", "cross")
META_FIELDS = ("name", "model", "date", "link", "notes", "kind")
MAX_JSON_BYTES = 8 << 20
_HEX64 = re.compile(r"[0-9a-f]{64}")


class ResultsError(ValueError):
    """A results, submission or registry file that does not follow its schema."""


@dataclass(frozen=True)
class Metric:
    key: str
    value: float | None  # None: not computed (see skipped_reason); may be +-inf (e.g. PSNR of ground truth)
    stderr: float | None
    higher_is_better: bool | None
    n_scored: int | None
    n_skipped: int | None
    weights_sha256: str | None
    calibrated: bool
    skipped_reason: str | None
    version: str | None
    unit: str | None

    @property
    def computed(self) -> bool:
        return self.value is not None and not math.isnan(self.value)

    @property
    def signature(self) -> tuple[str | None, bool]:
        """What must match for two values of this metric to be comparable (beyond the protocol)."""
        return (self.weights_sha256, self.calibrated)


@dataclass
class Submission:
    """One accepted results file with its resolved metadata."""

    path: str  # relative to the results root, '/'-separated
    sha256: str
    benchmark_name: str
    reference_shards_sha256: str
    protocol_version: str
    protocol_hash: str
    name: str
    model: str
    date: str
    link: str
    notes: str
    kind: str
    mode: str
    talkbench_version: str
    metrics: dict[str, Metric]
    n_expected: int | None
    n_scored: int | None
    n_skipped: int | None
    per_video: Path | None = None  # verified per-video parquet, if any
    metadata_source: str = "results.json"


@dataclass(frozen=True)
class Rejected:
    path: str
    reason: str


@dataclass(frozen=True)
class BenchmarkDecl:
    """A benchmark declared in the registry: its protocol and metric weights are the ranked ones."""

    name: str
    reference_shards_sha256: str
    protocol_version: str
    protocol_hash: str
    weights: dict[str, tuple[str | None, bool]] = field(default_factory=dict)
    mode: str | None = None  # None: applies to every mode without its own declaration


@dataclass
class Collection:
    submissions: list[Submission]
    rejected: list[Rejected]
    declared: dict[tuple[str, str | None], BenchmarkDecl]  # by (reference_shards_sha256, mode or None)
    registry_path: str | None
    warnings: list[str]

    def declaration(self, shards_sha256: str, mode: str) -> BenchmarkDecl | None:
        return self.declared.get((shards_sha256, mode)) or self.declared.get((shards_sha256, None))


# ---------------------------------------------------------------- small validators

def _is_number(x) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool)


def _get(d: dict, key: str, types, where: str, required: bool = True, default=None):
    if key not in d or d[key] is None:
        if required:
            raise ResultsError(f"{where}.{key}: missing")
        return default
    v = d[key]
    if types == "number":
        if not _is_number(v):
            raise ResultsError(f"{where}.{key}: expected a number, got {type(v).__name__}")
        return float(v)
    if types == "int":
        if not isinstance(v, int) or isinstance(v, bool) or v < 0:
            raise ResultsError(f"{where}.{key}: expected a non-negative integer")
        return v
    if not isinstance(v, types):
        raise ResultsError(f"{where}.{key}: expected {getattr(types, '__name__', types)}, got {type(v).__name__}")
    return v


def _hex64(v, where: str) -> str:
    if not isinstance(v, str) or not _HEX64.fullmatch(v):
        raise ResultsError(f"{where}: expected a lowercase 64-hex sha256")
    return v


def _read_json(path: Path) -> dict:
    if path.stat().st_size > MAX_JSON_BYTES:
        raise ResultsError(f"file larger than {MAX_JSON_BYTES} bytes")
    try:
        doc = json.loads(path.read_bytes().decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ResultsError(f"not valid JSON: {e}") from None
    if not isinstance(doc, dict):
        raise ResultsError("top level is not a JSON object")
    return doc


def _inside(root: Path, rel: str) -> Path | None:
    """``root / rel`` if ``rel`` is a plain relative path that stays inside ``root`` (no symlink escapes)."""
    if not isinstance(rel, str) or not rel or "\\" in rel or "\x00" in rel:
        return None
    p = PurePosixPath(rel)
    if p.is_absolute() or any(part in ("..", "") for part in p.parts):
        return None
    full = root / Path(*p.parts)
    try:
        full.resolve().relative_to(root.resolve())
    except (ValueError, OSError):
        return None
    return full


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def protocol_hash(protocols: dict[str, dict]) -> str:
    """sha256 of the canonical JSON (sorted keys, compact, ASCII) of ``{metric: protocol dict}``: evalkit's
    definition of ``benchmark.protocol_hash``, recomputed here so a results file cannot claim a protocol
    its metrics were not computed under."""
    text = json.dumps(protocols, sort_keys=True, separators=(",", ":"), ensure_ascii=True, allow_nan=False)
    return hashlib.sha256(text.encode()).hexdigest()


# ---------------------------------------------------------------- results.json

def parse_metric(key: str, d, where: str) -> Metric:
    if not isinstance(d, dict):
        raise ResultsError(f"{where}: expected an object")
    value = _get(d, "value", "number", where, required=False)
    if value is not None and math.isnan(value):
        value = None
    stderr = _get(d, "stderr", "number", where, required=False)
    if stderr is not None and not (stderr >= 0):
        raise ResultsError(f"{where}.stderr: expected >= 0")
    weights = d.get("weights_sha256")
    if weights is not None:
        weights = _hex64(weights, f"{where}.weights_sha256")
    calibrated = _get(d, "calibrated", bool, where, required=False, default=True)
    skipped_reason = _get(d, "skipped_reason", str, where, required=False)
    if value is None and not skipped_reason:
        skipped_reason = "not computed"
    return Metric(key=key, value=value, stderr=stderr,
                  higher_is_better=_get(d, "higher_is_better", bool, where, required=False),
                  n_scored=_get(d, "n_scored", "int", where, required=False),
                  n_skipped=_get(d, "n_skipped", "int", where, required=False),
                  weights_sha256=weights, calibrated=calibrated, skipped_reason=skipped_reason,
                  version=_get(d, "version", str, where, required=False),
                  unit=_get(d, "unit", str, where, required=False))


def parse_results(doc: dict, expected_directions: dict[str, bool] | None = DIRECTIONS) -> dict:
    """Validate a results document; returns the normalised fields (raises ResultsError)."""
    schema = doc.get("results_schema")
    if schema != RESULTS_SCHEMA:
        raise ResultsError(f"results_schema {schema!r} is not {RESULTS_SCHEMA!r}")
    bench = _get(doc, "benchmark", dict, "results")
    sub = _get(doc, "submission", dict, "results")
    metrics_doc = _get(doc, "metrics", dict, "results")
    out = {
        "benchmark_name": _get(bench, "name", str, "benchmark", required=False, default=""),
        "reference_shards_sha256": _hex64(bench.get("reference_shards_sha256"),
                                          "benchmark.reference_shards_sha256"),
        "protocol_version": _get(bench, "protocol_version", str, "benchmark"),
        "protocol_hash": _hex64(bench.get("protocol_hash"), "benchmark.protocol_hash"),
        "talkbench_version": _get(doc, "talkbench_version", str, "results", required=False, default=""),
    }
    if not out["protocol_version"].strip():
        raise ResultsError("benchmark.protocol_version: empty")
    meta = {k: _get(sub, k, str, "submission", required=False, default="") for k in META_FIELDS}
    meta["mode"] = _get(sub, "mode", str, "submission", required=False, default="reconstruction")
    if meta["mode"] not in MODES:
        raise ResultsError(f"submission.mode {meta['mode']!r} not one of {MODES}")
    if meta["kind"] and meta["kind"] not in KINDS:
        raise ResultsError(f"submission.kind {meta['kind']!r} not one of {KINDS}")
    out["meta"] = meta
    metrics = {}
    for key in sorted(metrics_doc):
        if not isinstance(key, str) or not re.fullmatch(r"[a-z0-9_]{1,40}", key):
            raise ResultsError(f"metrics: bad metric name {key!r}")
        m = parse_metric(key, metrics_doc[key], f"metrics.{key}")
        want = (expected_directions or {}).get(key)
        if want is not None and m.higher_is_better is not None and m.higher_is_better != want:
            raise ResultsError(f"metrics.{key}.higher_is_better is {m.higher_is_better}, expected {want}")
        metrics[key] = m
    out["metrics"] = metrics
    protocols = {}
    for key in sorted(metrics_doc):
        proto = metrics_doc[key].get("protocol")
        if not isinstance(proto, dict):
            raise ResultsError(f"metrics.{key}.protocol: missing (needed to verify benchmark.protocol_hash)")
        protocols[key] = proto
    try:
        recomputed = protocol_hash(protocols)
    except (TypeError, ValueError) as e:
        raise ResultsError(f"metrics protocol dicts are not strict JSON ({e})") from None
    if recomputed != out["protocol_hash"]:
        raise ResultsError(f"benchmark.protocol_hash {out['protocol_hash'][:12]}… does not match the metrics' "
                           f"protocol dicts ({recomputed[:12]}…)")
    nv = doc.get("n_videos") or {}
    if not isinstance(nv, dict):
        raise ResultsError("n_videos: expected an object")
    for k in ("expected", "scored", "skipped"):
        out[f"n_{k}"] = _get(nv, k, "int", "n_videos", required=False)
    pv = doc.get("per_video")
    if pv is not None and not isinstance(pv, dict):
        raise ResultsError("per_video: expected an object")
    out["per_video"] = pv
    return out


def _per_video_file(results_dir: Path, pv: dict | None, rel: str, warnings: list[str]) -> Path | None:
    """The per-video parquet beside a results file, only if it stays in that folder and its hash matches."""
    if not pv or not pv.get("path"):
        return None
    p = _inside(results_dir, pv["path"])
    if p is None:
        warnings.append(f"{rel}: per_video path {pv['path']!r} leaves the results folder; ignored")
        return None
    if not p.is_file() or p.is_symlink():
        return None
    want = pv.get("sha256")
    if want is not None and sha256_bytes(p.read_bytes()) != want:
        warnings.append(f"{rel}: per_video.parquet sha256 does not match results.json; ignored")
        return None
    return p


# ---------------------------------------------------------------- registry

def _parse_weights(d, where: str) -> dict[str, tuple[str | None, bool]]:
    if d is None:
        return {}
    if not isinstance(d, dict):
        raise ResultsError(f"{where}: expected an object")
    out = {}
    for k, v in sorted(d.items()):
        if isinstance(v, str):
            out[k] = (_hex64(v, f"{where}.{k}"), True)
        elif isinstance(v, dict):
            sha = v.get("sha256")
            out[k] = (None if sha is None else _hex64(sha, f"{where}.{k}.sha256"),
                      _get(v, "calibrated", bool, f"{where}.{k}", required=False, default=True))
        else:
            raise ResultsError(f"{where}.{k}: expected a sha256 or an object")
    return out


def load_registry(path: Path) -> tuple[dict[str, dict], dict[tuple[str, str | None], BenchmarkDecl]]:
    """Parse registry.json: ({results path: entry}, {(reference_shards_sha256, mode or None): BenchmarkDecl})."""
    doc = _read_json(path)
    if doc.get("registry_schema") != REGISTRY_SCHEMA:
        raise ResultsError(f"registry_schema {doc.get('registry_schema')!r} is not {REGISTRY_SCHEMA!r}")
    decls = {}
    for i, b in enumerate(_get(doc, "benchmarks", list, "registry", required=False, default=[])):
        where = f"benchmarks[{i}]"
        if not isinstance(b, dict):
            raise ResultsError(f"{where}: expected an object")
        sha = _hex64(b.get("reference_shards_sha256"), f"{where}.reference_shards_sha256")
        mode = _get(b, "mode", str, where, required=False)
        if mode is not None and mode not in MODES:
            raise ResultsError(f"{where}.mode {mode!r} not one of {MODES}")
        if (sha, mode) in decls:
            raise ResultsError(f"{where}: benchmark {sha[:12]}… ({mode or 'all modes'}) declared twice")
        decls[(sha, mode)] = BenchmarkDecl(name=_get(b, "name", str, where, required=False, default=""),
                                           reference_shards_sha256=sha,
                                           protocol_version=_get(b, "protocol_version", str, where),
                                           protocol_hash=_hex64(b.get("protocol_hash"), f"{where}.protocol_hash"),
                                           weights=_parse_weights(b.get("weights"), f"{where}.weights"), mode=mode)
    entries = {}
    for i, e in enumerate(_get(doc, "submissions", list, "registry", required=False, default=[])):
        where = f"submissions[{i}]"
        if not isinstance(e, dict):
            raise ResultsError(f"{where}: expected an object")
        rel = _get(e, "results", str, where)
        _hex64(e.get("sha256"), f"{where}.sha256")
        for k in META_FIELDS:
            _get(e, k, str, where, required=False)
        if e.get("kind") and e["kind"] not in KINDS:
            raise ResultsError(f"{where}.kind {e['kind']!r} not one of {KINDS}")
        if rel in entries:
            raise ResultsError(f"{where}: {rel!r} listed twice")
        entries[rel] = e
    return entries, decls


# ---------------------------------------------------------------- discovery

def find_results(root: Path) -> list[str]:
    """Every results.json under ``root`` (relative '/'-paths, sorted); symlinked folders are not followed."""
    found = []
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        dirnames.sort()
        if RESULTS_FILE in filenames:
            found.append(Path(dirpath, RESULTS_FILE).relative_to(root).as_posix())
    return sorted(found)


def collect(results_root, registry=None, expected_directions: dict[str, bool] | None = DIRECTIONS) -> Collection:
    """Load and verify every results file under ``results_root``.

    ``registry``: path to a registry JSON; None uses ``RESULTS_ROOT/registry.json`` when it exists.
    Files that fail validation are returned as :class:`Rejected` with the reason; never raises for them.
    """
    root = Path(results_root)
    if not root.is_dir():
        raise FileNotFoundError(f"{root}: results root is not a directory")
    reg_path = Path(registry) if registry is not None else root / REGISTRY_FILE
    entries: dict[str, dict] | None = None
    declared: dict[tuple[str, str | None], BenchmarkDecl] = {}
    if registry is not None or reg_path.is_file():
        try:
            entries, declared = load_registry(reg_path)
        except (OSError, ResultsError) as e:
            raise ResultsError(f"{reg_path}: {e}") from None
    submissions, rejected, warnings = [], [], []
    found = find_results(root)
    for rel in sorted(set(found) | set(entries or {})):
        try:
            submissions.append(_load_one(root, rel, entries, expected_directions, warnings))
        except (ResultsError, OSError) as e:
            log.warning("rejected %s: %s", rel, e)
            rejected.append(Rejected(rel, str(e)))
    return Collection(submissions, rejected, declared,
                      str(reg_path) if entries is not None else None, warnings)


def _load_one(root: Path, rel: str, entries: dict | None, directions, warnings: list[str]) -> Submission:
    path = _inside(root, rel)
    if path is not None and path.is_symlink() or path is None and (root / rel).is_symlink():
        raise ResultsError("results file is a symlink")
    if path is None:
        raise ResultsError("registered path leaves the results root")
    if not path.is_file():
        raise ResultsError("registered results file is missing")
    data = path.read_bytes()
    if len(data) > MAX_JSON_BYTES:
        raise ResultsError(f"file larger than {MAX_JSON_BYTES} bytes")
    digest = sha256_bytes(data)
    entry = None
    if entries is not None:
        entry = entries.get(rel)
        if entry is None:
            raise ResultsError("not listed in the submission registry")
        if entry["sha256"] != digest:
            raise ResultsError(f"sha256 {digest[:12]}… does not match the registry entry "
                               f"({entry['sha256'][:12]}…): file changed after registration")
    doc = _read_json(path)
    r = parse_results(doc, directions)
    meta, source = dict(r["meta"]), "results.json"
    sub_path = path.parent / SUBMISSION_FILE
    if sub_path.is_file() and not sub_path.is_symlink():
        sdoc = _read_json(sub_path)
        want = sdoc.get("results_sha256")
        if want is not None and want != digest:
            raise ResultsError(f"sha256 {digest[:12]}… does not match {SUBMISSION_FILE} "
                               f"results_sha256 ({str(want)[:12]}…)")
        for k in META_FIELDS:
            v = _get(sdoc, k, str, "submission.json", required=False)
            if v:
                meta[k], source = v, SUBMISSION_FILE
    if entry is not None:
        for k in META_FIELDS:
            if entry.get(k):
                meta[k], source = entry[k], REGISTRY_FILE
    if meta["kind"] not in KINDS:
        meta["kind"] = "model"
    if not meta["name"]:
        meta["name"] = rel.rsplit("/", 1)[0] if "/" in rel else rel
    return Submission(
        path=rel, sha256=digest, benchmark_name=r["benchmark_name"],
        reference_shards_sha256=r["reference_shards_sha256"], protocol_version=r["protocol_version"],
        protocol_hash=r["protocol_hash"], name=meta["name"], model=meta["model"], date=meta["date"],
        link=meta["link"], notes=meta["notes"], kind=meta["kind"], mode=meta["mode"],
        talkbench_version=r["talkbench_version"], metrics=r["metrics"], n_expected=r["n_expected"],
        n_scored=r["n_scored"], n_skipped=r["n_skipped"],
        per_video=_per_video_file(path.parent, r["per_video"], rel, warnings), metadata_source=source)
