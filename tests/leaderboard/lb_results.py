"""Hand-written results files for the leaderboard tests (``talkbench-results/1``, as talkbase.results reads
them): each metric entry describes itself (label, direction, decimals, headline), as evalkit writes them.

Loaded by path from ``conftest.py`` (works under any pytest import mode); test modules import it by name.
"""
from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from talkbase.results import RESULTS_SCHEMA, protocol_hash


def sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


REF_A, REF_B = sha("reference shards A"), sha("reference shards B")
INCEPTION, RANDOM_INCEPTION = sha("pt_inception"), sha("random inception")
SYNCNET, SYNCNET_OTHER = sha("syncnet_v2"), sha("another syncnet")
EVIL_NAME = "<script>document.body.setAttribute('data-pwned','1')</script>|evil"
EVIL_NOTES = "notes with <img src=x onerror=\"document.body.setAttribute('data-pwned','2')\"> and `code` | pipe\nnewline"

# name: (label, higher_is_better, decimals, headline), in evalkit's display order
SPECS = {
    "psnr": ("PSNR", True, 2, True),
    "ssim": ("SSIM", True, 4, True),
    "lmd_mouth": ("LMD (mouth)", False, 3, True),
    "lmd_face": ("LMD (face)", False, 3, False),
    "fid": ("FID", False, 2, True),
    "lse_d": ("LSE-D", False, 3, True),
    "lse_c": ("LSE-C", True, 3, True),
    "csim": ("dlib-CSIM", True, 4, True),
    "sync_inhouse": ("Sync (in-domain)", True, 3, False),
}
HEADLINE_LABELS = ["PSNR", "SSIM", "LMD (mouth)", "FID", "LSE-D", "LSE-C", "dlib-CSIM"]


def metric(key, value, stderr=None, *, weights=None, calibrated=True, reason=None, n=12, spec=None):
    label, higher, decimals, headline = spec or SPECS[key]
    return {"value": value, "stderr": stderr, "higher_is_better": higher, "label": label, "decimals": decimals,
            "headline": headline, "n_scored": n if value is not None else 0, "n_skipped": 0, "unit": "",
            "version": f"{key}-1", "protocol": {"version": f"{key}-1", "crop_size": 256},
            "weights_sha256": weights, "calibrated": calibrated, "skipped_reason": reason}


def finish(doc: dict) -> dict:
    """Recompute ``benchmark.protocol_hash`` after the metrics' protocol dicts changed."""
    doc["benchmark"]["protocol_hash"] = protocol_hash({k: m["protocol"] for k, m in doc["metrics"].items()})
    return doc


def results_doc(name, kind, values: dict, *, ref=REF_A, bench="lrs2-test", version="evalkit-1.0",
                fid_weights=INCEPTION, fid_calibrated=True, syncnet=SYNCNET, link="", notes="", model="",
                date="2026-11-01", mode="reconstruction", per_video=None, skipped=0, specs=None, order=True):
    """``specs``: {metric: (label, higher_is_better, decimals, headline)} for metrics not in :data:`SPECS`;
    ``order``: write ``metric_order`` (else readers fall back to sorted names)."""
    specs = {**SPECS, **(specs or {})}
    metrics = {}
    for key, v in values.items():
        value, se = (v if isinstance(v, tuple) else (v, None))
        weights = fid_weights if key == "fid" else syncnet if key in ("lse_d", "lse_c") else None
        cal = fid_calibrated if key == "fid" else True
        reason = None if value is not None else (
            "official SyncNet weights absent" if key.startswith("lse") else "identical to the reference")
        metrics[key] = metric(key, value, se, weights=weights if value is not None else None, calibrated=cal,
                              reason=reason, n=12 - skipped, spec=specs[key])
    doc = {"results_schema": RESULTS_SCHEMA, "talkbench_version": "0.1.0", "created": "2026-11-23T00:00:00Z",
           "benchmark": {"name": bench, "reference_shards_sha256": ref, "protocol_version": version,
                         "protocol_hash": ""},
           "submission": {"name": name, "model": model, "date": date, "link": link, "notes": notes,
                          "kind": kind, "mode": mode},
           "config": {"device": "cpu"}, "metrics": metrics, "skipped": [],
           "n_videos": {"expected": 12, "scored": 12 - skipped, "skipped": skipped}}
    if order:
        doc["metric_order"] = [k for k in specs if k in metrics]
    for key, m in metrics.items():  # protocol dicts change with the protocol version
        m["protocol"]["release"] = version
    finish(doc)
    if per_video is not None:
        doc["per_video"] = per_video
    return doc


def write_results(root: Path, rel: str, doc: dict, created_at: float | None = None) -> Path:
    p = root / rel / "results.json"
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text(json.dumps(doc, indent=1))
    if created_at is not None:
        os.utime(p, (created_at, created_at))
    return p


def write_per_video(folder: Path, values: dict[str, np.ndarray]) -> dict:
    n = len(next(iter(values.values())))
    t = pa.table({"clip_id": [f"clip{i:03d}" for i in range(n)], **{k: pa.array(v) for k, v in values.items()}})
    p = folder / "per_video.parquet"
    pq.write_table(t, p)
    return {"path": "per_video.parquet", "sha256": hashlib.sha256(p.read_bytes()).hexdigest()}


def make_results_root(root: Path, order_seed: int = 0) -> Path:
    """A results root with GT, baselines, models, an injected name, a mismatched protocol, other SyncNet
    weights, a broken file and a second benchmark with uncalibrated FID. ``order_seed`` changes the order
    (and mtimes) in which files are written, which must not change the output."""
    rng = np.random.default_rng(7)
    base = {"psnr": (29.5, 0.3), "ssim": (0.8812, 0.004), "lmd_mouth": (2.31, 0.05), "lmd_face": (1.9, 0.04),
            "fid": (14.2, 0.0), "lse_d": (7.12, 0.08), "lse_c": (6.85, 0.1), "csim": (0.912, 0.003)}
    entries = [
        ("gt", results_doc("Ground truth", "ground-truth",
                           {**base, "psnr": (None, None), "ssim": (1.0, 0.0), "lmd_mouth": (0.0, 0.0), "fid": (0.0, 0.0),
                            "lse_d": (6.71, 0.07), "lse_c": (7.95, 0.1), "csim": (1.0, 0.0)})),
        ("baselines/wav2lip", results_doc("Wav2Lip", "baseline", base, model="wav2lip_gan",
                                          link="https://github.com/Rudrabha/Wav2Lip")),
        ("baselines/copy", results_doc("Copy-first-frame", "baseline",
                                       {**base, "psnr": (24.1, 0.5), "lse_c": (1.2, 0.2), "lse_d": (11.9, 0.1),
                                        "fid": (40.3, 0.0)})),
        ("teams/diff/run1", results_doc("DiffLip", "model",
                                        {**base, "psnr": (31.25, 0.28), "ssim": (0.9011, 0.003), "fid": (11.7, 0.0),
                                         "lse_c": (7.41, 0.09), "lse_d": (6.95, 0.07), "csim": (0.93, 0.002)},
                                        model="refmodel-tiny", link="https://example.org/difflip?a=1&b=(2)",
                                        notes="trained 3 days")),
        ("teams/evil/run", results_doc(EVIL_NAME, "model", {**base, "psnr": (30.0, 0.3)}, model="x|y",
                                       link="javascript:alert(1)", notes=EVIL_NOTES)),
        ("teams/formula", results_doc("=HYPERLINK(\"http://x\")", "model", {**base, "psnr": (29.5, 0.3)},
                                      notes="tied PSNR with Wav2Lip")),
        ("teams/nosync", results_doc("NoSyncWeights", "model",
                                     {**base, "lse_d": (None, None), "lse_c": (None, None)})),
        ("teams/old", results_doc("OldProtocol", "model", {**base, "psnr": (35.0, 0.2)}, version="evalkit-0.9")),
        ("teams/othersync", results_doc("OtherSyncNet", "model", {**base, "lse_c": (9.9, 0.1)},
                                        syncnet=SYNCNET_OTHER)),
        ("bench_b/gt", results_doc("GT-B", "ground-truth", {"ssim": (1.0, 0.0), "fid": (0.0, 0.0), "lse_c": (4.0, 0.2),
                                                     "lse_d": (8.0, 0.1)}, ref=REF_B,
                                   bench="demo-synthetic", fid_weights=RANDOM_INCEPTION, fid_calibrated=False)),
        ("bench_b/m1", results_doc("Model-B1", "model", {"ssim": (0.71, 0.01), "fid": (80.5, 0.0),
                                                         "lse_c": (3.1, 0.2), "lse_d": (9.0, 0.1)},
                                   ref=REF_B, bench="demo-synthetic", fid_weights=RANDOM_INCEPTION,
                                   fid_calibrated=False)),
        ("bench_b/m2", results_doc("Model-B2", "model", {"ssim": (0.74, 0.01), "fid": (70.1, 0.0),
                                                         "lse_c": (3.5, 0.2), "lse_d": (8.7, 0.1)},
                                   ref=REF_B, bench="demo-synthetic", fid_weights=RANDOM_INCEPTION,
                                   fid_calibrated=False)),
    ]
    order = list(range(len(entries)))
    if order_seed:
        np.random.default_rng(order_seed).shuffle(order)
    for i, k in enumerate(order):
        rel, doc = entries[k]
        if rel == "teams/diff/run1":
            folder = root / rel
            folder.mkdir(parents=True, exist_ok=True)
            doc["per_video"] = write_per_video(folder, {
                "psnr": rng.normal(31.25, 1.0, 12), "ssim": rng.normal(0.90, 0.01, 12),
                "lmd_mouth": rng.normal(2.3, 0.2, 12), "lse_c": rng.normal(7.4, 0.3, 12),
                "lse_d": rng.normal(6.95, 0.2, 12), "csim": rng.normal(0.93, 0.01, 12)})
        write_results(root, rel, doc, created_at=1_700_000_000 + (i if not order_seed else -i) * 1000)
    broken = root / "teams/broken/results.json"
    broken.parent.mkdir(parents=True, exist_ok=True)
    broken.write_text(json.dumps({"results_schema": RESULTS_SCHEMA, "benchmark": {"name": "x"}}))
    return root
