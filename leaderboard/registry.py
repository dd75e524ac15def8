"""Finding, accepting and verifying stored results files (everything here is untrusted input).

Layout of a results root::

    RESULTS_ROOT/registry.json                 optional: the operator's list of accepted submissions
    RESULTS_ROOT/<any>/<dirs>/results.json     one evaluation run (``talkbench-results/1``)
    RESULTS_ROOT/<any>/<dirs>/submission.json  optional: the submitter's metadata for that run
    RESULTS_ROOT/<any>/<dirs>/per_video.parquet  optional: per-video scores (used for plots)

A results file is parsed and validated by :mod:`talkbase.results` (the one reader of that format: schema,
metric entries, the recomputed protocol hash). This module adds the leaderboard's own policy: the
registry, file size limits, discovery (symlinks are never followed), the per-video file check and the
metadata precedence.

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

import json
import logging
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

from talkbase.fileio import sha256_bytes, sha256_file
from talkbase.paths import join_inside
from talkbase.results import (KINDS, MAX_RESULTS_BYTES, META_FIELDS, MODES, RESULTS_FILE, MetricResult,
                              ResultsError, read_results_bytes)

log = logging.getLogger(__name__)

REGISTRY_SCHEMA = "talkbench-registry/1"
SUBMISSION_FILE = "submission.json"
REGISTRY_FILE = "registry.json"
MAX_JSON_BYTES = MAX_RESULTS_BYTES  # results, submission and registry files alike
MAX_PER_VIDEO_BYTES = 64 << 20  # per_video.parquet on disk
MAX_PER_VIDEO_ROWS = 1_000_000  # one row per video: far more than any benchmark
MAX_PER_VIDEO_DECODED = 256 << 20  # uncompressed bytes its metadata declares
_HEX64 = re.compile(r"[0-9a-f]{64}")

__all__ = ["ResultsError", "Submission", "Rejected", "BenchmarkDecl", "Collection", "collect", "find_results",
           "load_registry", "REGISTRY_SCHEMA", "REGISTRY_FILE", "SUBMISSION_FILE", "MAX_JSON_BYTES"]


@dataclass
class Submission:
    """One accepted results file with its resolved metadata (metrics as :mod:`talkbase.results` read them)."""

    path: str  # relative to the results root, '/'-separated
    name: str
    kind: str
    metrics: dict[str, MetricResult]
    metric_order: tuple[str, ...] = ()  # the file's display order (talkbase: sorted names when absent)
    mode: str = "reconstruction"
    sha256: str = ""
    benchmark_name: str = ""
    reference_shards_sha256: str = ""
    protocol_version: str = ""
    protocol_hash: str = ""
    model: str = ""
    date: str = ""
    link: str = ""
    notes: str = ""
    talkbench_version: str = ""
    n_expected: int | None = None
    n_scored: int | None = None
    n_skipped: int | None = None
    per_video: Path | None = None  # verified per-video parquet, if any
    metadata_source: str = RESULTS_FILE
    skipped: tuple = ()  # the results' skip records ({clip_id, code, reason}): what was not scored and why


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


# ---------------------------------------------------------------- small validators (registry, submission.json)

def _get(d: dict, key: str, types, where: str, required: bool = True, default=None):
    if key not in d or d[key] is None:
        if required:
            raise ResultsError(f"{where}.{key}: missing")
        return default
    v = d[key]
    if not isinstance(v, types):
        raise ResultsError(f"{where}.{key}: expected {getattr(types, '__name__', types)}, got {type(v).__name__}")
    return v


def _hex64(v, where: str) -> str:
    if not isinstance(v, str) or not _HEX64.fullmatch(v):
        raise ResultsError(f"{where}: expected a lowercase 64-hex sha256")
    return v


def _read_json(path: Path) -> dict:
    """A small JSON object file (registry.json, submission.json): size-limited, strict (no NaN constants)."""
    if path.stat().st_size > MAX_JSON_BYTES:
        raise ResultsError(f"file larger than {MAX_JSON_BYTES} bytes")

    def constant(c):
        raise ResultsError(f"non-standard JSON constant {c}")

    try:
        doc = json.loads(path.read_bytes().decode("utf-8"), parse_constant=constant)
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ResultsError(f"not valid JSON: {e}") from None
    if not isinstance(doc, dict):
        raise ResultsError("top level is not a JSON object")
    return doc


def _per_video_file(results_dir: Path, pv: dict | None, rel: str, warnings: list[str]) -> Path | None:
    """The per-video parquet beside a results file, only if it stays in that folder and its hash matches."""
    if not pv or not pv.get("path"):
        return None
    p = join_inside(results_dir, pv["path"])
    if p is None:
        warnings.append(f"{rel}: per_video path {pv['path']!r} leaves the results folder; ignored")
        return None
    if not p.is_file() or p.is_symlink():
        return None
    why = _per_video_too_big(p)
    if why:
        warnings.append(f"{rel}: per_video.parquet {why}; ignored")
        return None
    if sha256_file(p) != pv["sha256"]:
        warnings.append(f"{rel}: per_video.parquet sha256 does not match results.json; ignored")
        return None
    return p


def _per_video_too_big(p: Path) -> str | None:
    """Why a per-video parquet is refused before reading it (its footer is read, nothing else), or None."""
    import pyarrow.parquet as pq

    size = p.stat().st_size
    if size > MAX_PER_VIDEO_BYTES:
        return f"is {size} bytes (limit {MAX_PER_VIDEO_BYTES})"
    try:
        md = pq.ParquetFile(p).metadata
    except Exception as e:  # noqa: BLE001 - not a parquet file
        return f"is not readable as parquet ({type(e).__name__})"
    decoded = sum(md.row_group(i).total_byte_size for i in range(md.num_row_groups))
    if md.num_rows > MAX_PER_VIDEO_ROWS or decoded > MAX_PER_VIDEO_DECODED or md.num_columns > 1000:
        return (f"declares {md.num_rows} rows, {md.num_columns} columns, {decoded} bytes uncompressed (limits "
                f"{MAX_PER_VIDEO_ROWS} rows, 1000 columns, {MAX_PER_VIDEO_DECODED} bytes)")
    return None


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


def collect(results_root, registry=None) -> Collection:
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
    for rel in sorted(set(find_results(root)) | set(entries or {})):
        try:
            submissions.append(_load_one(root, rel, entries, warnings))
        except (ResultsError, OSError) as e:
            log.warning("rejected %s: %s", rel, e)
            rejected.append(Rejected(rel, str(e)))
    return Collection(submissions, rejected, declared,
                      str(reg_path) if entries is not None else None, warnings)


def _load_one(root: Path, rel: str, entries: dict | None, warnings: list[str]) -> Submission:
    path = join_inside(root, rel)
    if path is not None and path.is_symlink() or path is None and (root / rel).is_symlink():
        raise ResultsError("results file is a symlink")
    if path is None:
        raise ResultsError("registered path leaves the results root")
    if not path.is_file():
        raise ResultsError("registered results file is missing")
    if path.stat().st_size > MAX_JSON_BYTES:
        raise ResultsError(f"file larger than {MAX_JSON_BYTES} bytes")
    data = path.read_bytes()
    digest = sha256_bytes(data)
    entry = None
    if entries is not None:
        entry = entries.get(rel)
        if entry is None:
            raise ResultsError("not listed in the submission registry")
        if entry["sha256"] != digest:
            raise ResultsError(f"sha256 {digest[:12]}… does not match the registry entry "
                               f"({entry['sha256'][:12]}…): file changed after registration")
    r = read_results_bytes(data, RESULTS_FILE)
    meta, source = dict(r.meta), RESULTS_FILE
    sub_path = path.parent / SUBMISSION_FILE
    if sub_path.is_file() and not sub_path.is_symlink():
        sdoc = _read_json(sub_path)
        want = sdoc.get("results_sha256")
        if want is not None and want != digest:
            raise ResultsError(f"sha256 {digest[:12]}… does not match {SUBMISSION_FILE} "
                               f"results_sha256 ({str(want)[:12]}…)")
        for k in META_FIELDS:
            v = _get(sdoc, k, str, SUBMISSION_FILE, required=False)
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
        path=rel, sha256=digest, benchmark_name=r.benchmark_name,
        reference_shards_sha256=r.reference_shards_sha256, protocol_version=r.protocol_version,
        protocol_hash=r.protocol_hash, name=meta["name"], model=meta["model"], date=meta["date"],
        link=meta["link"], notes=meta["notes"], kind=meta["kind"], mode=meta["mode"],
        talkbench_version=r.talkbench_version, metrics=dict(r.metrics), metric_order=tuple(r.metric_order),
        n_expected=r.n_expected, n_scored=r.n_scored, n_skipped=r.n_skipped,
        per_video=_per_video_file(path.parent, r.per_video, rel, warnings), metadata_source=source,
        skipped=tuple(x for x in r.skipped if isinstance(x, dict)))
