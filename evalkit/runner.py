"""``evaluate``: validate a submission, score every video over Dask, merge, write results.json + per_video.parquet.

Flow: resolve the networks in the driver (so a missing official weight file is decided once, with a
clear reason) → read the reference clips and per-frame geometry → ``validate_submission`` → one
``score_video`` task per accepted video (plus ``reference_fid_features`` tasks when the FID reference
statistics are not cached) → fold the per-video states **in clip order** (so the numbers do not
depend on the worker count or completion order) → results.
"""
from __future__ import annotations

import contextlib
import datetime as _dt
import functools
import hashlib
import logging
import os
import re
from pathlib import Path

import numpy as np

from .protocol import (METRICS, PROTOCOL_VERSION, EvalConfig, SubmissionLimits, metric_protocol,
                       protocol_hash)

log = logging.getLogger(__name__)

RESULTS_FILE = "results.json"
PER_VIDEO_FILE = "per_video.parquet"


class EvaluationError(RuntimeError):
    """The evaluation cannot start (bad reference, refused uncalibrated FID, ...)."""


class FIDWeightsMissing(EvaluationError):
    """Official Inception weights absent and uncalibrated FID not explicitly allowed."""


# ---------------------------------------------------------------- reference

def reference_shards_sha256(reference_out) -> str:
    """sha256 over the manifest's shard entries: lines ``"<path> <sha256>"`` sorted by path."""
    from prep.shards import read_manifest

    manifest = read_manifest(reference_out)
    entries = []
    for kind, items in sorted((manifest.get("shards") or {}).items()):
        for it in items or []:
            if isinstance(it, dict) and "sha256" in it and "path" in it:
                entries.append(f"{it['path']} {it['sha256']}")
    if not entries:
        raise EvaluationError(f"{reference_out}: manifest lists no shards with sha256")
    return hashlib.sha256("\n".join(sorted(entries)).encode()).hexdigest()


def _resolve_source(reference_out: Path, source_path: str) -> Path | None:
    p = Path(source_path)
    for cand in ([p] if p.is_absolute() else [p, reference_out / p, reference_out.parent / p]):
        if cand.is_file():
            return cand.resolve()
    return None


def load_reference(reference_out, split: str | None = None) -> dict[str, dict]:
    """Per reference clip (of ``split``, or all): source path, size, crop size, per-frame face / box / affine."""
    from prep.shards import iter_frame_batches, read_clips

    ref = Path(reference_out)
    cols = ["clip_id", "source_path", "source_sha256", "num_frames", "src_width", "src_height", "crop_size", "split"]
    clips = {}
    for r in read_clips(ref, cols).to_pylist():
        if split is not None and r["split"] != split:
            continue
        n = int(r["num_frames"])
        src = _resolve_source(ref, r["source_path"])
        clips[r["clip_id"]] = {
            "clip_id": r["clip_id"], "ref_path": str(src) if src else None, "source_path": r["source_path"],
            "ref_sha256": r["source_sha256"], "ref_num_frames": n, "ref_width": r["src_width"],
            "ref_height": r["src_height"], "ref_crop_size": int(r["crop_size"] or 256),
            "face": np.zeros(n, bool), "boxes": np.full((n, 4), np.nan), "affines": np.full((n, 6), np.nan)}
    for batch in iter_frame_batches(ref, ["clip_id", "frame_index", "face_found", "box", "affine"]):
        d = batch.to_pydict()
        for cid, fi, ff, box, aff in zip(d["clip_id"], d["frame_index"], d["face_found"], d["box"], d["affine"]):
            c = clips.get(cid)
            if c is None or not (0 <= fi < c["ref_num_frames"]):
                continue
            ok = bool(ff) and box is not None and aff is not None
            c["face"][fi] = ok
            if box is not None:
                c["boxes"][fi] = box
            if aff is not None:
                c["affines"][fi] = aff
    return clips


# ---------------------------------------------------------------- networks

def _state_sha256(module) -> str:
    """sha256 over a module's state dict (names, dtypes, shapes, bytes): identifies random weights."""
    h = hashlib.sha256()
    for k, v in sorted(module.state_dict().items()):
        t = v.detach().cpu().contiguous()
        h.update(f"{k}|{t.dtype}|{tuple(t.shape)}|".encode())
        h.update(t.numpy().tobytes())
    return h.hexdigest()


@functools.lru_cache(maxsize=4)
def _random_inception_sha256(seed: int) -> str:
    from .inception import load_inception

    return _state_sha256(load_inception(None, allow_random=True, seed=seed))


def _resolve_inception(config: EvalConfig, inception_path) -> dict:
    from talkbench.models import WeightsMismatch, WeightsNotFound, resolve

    from .inception import load_inception

    try:
        resolve("inception", path=inception_path, check=False)
    except WeightsNotFound as e:
        if not config.allow_uncalibrated_fid:
            raise FIDWeightsMissing(
                f"FID needs the official Inception weights ({e}). Pass --inception PATH, or rerun with "
                "--allow-uncalibrated-fid for an FID from a seeded random network (labelled uncalibrated; "
                "not comparable with published FIDs), or leave fid out of --metrics.") from e
        log.warning("Inception weights absent: FID will be UNCALIBRATED (random network, seed %d)",
                    config.inception_seed)
        return {"path": None, "allow_random": True, "seed": config.inception_seed,
                "sha256": _random_inception_sha256(config.inception_seed), "calibrated": False,
                "source": f"random (seed {config.inception_seed}) - UNCALIBRATED"}
    try:  # an unofficial file is only accepted as an explicitly uncalibrated FID
        net = load_inception(inception_path, require_official=not config.allow_uncalibrated_fid)
    except WeightsMismatch as e:
        raise FIDWeightsMissing(f"{e}. Use the official pt_inception-2015-12-05-6726825d.pth, or rerun with "
                                "--allow-uncalibrated-fid to score with this file (labelled uncalibrated).") from e
    return {"path": net.weights_path, "allow_random": False, "seed": config.inception_seed,
            "sha256": net.weights_sha256, "calibrated": bool(net.calibrated), "source": "file"}


def _resolve_weights(loader, path, absent: str, unusable: str) -> tuple[dict | None, str | None]:
    """Load a network once to check its file: ({path, sha256}, None), or (None, why it cannot be used)."""
    from talkbench.models import WeightsMismatch, WeightsNotFound

    try:
        net = loader(path)
    except WeightsNotFound as e:
        return None, f"{absent}: {e}"
    except (WeightsMismatch, ValueError) as e:
        return None, f"{unusable}: {e}"
    return {"path": net.weights_path, "sha256": net.weights_sha256, "calibrated": bool(net.calibrated)}, None


def _resolve_syncnet(syncnet_path) -> tuple[dict | None, str | None]:
    from .syncnet import load_syncnet

    return _resolve_weights(load_syncnet, syncnet_path, "official SyncNet weights (syncnet_v2.model) absent",
                            "SyncNet weights unusable")


def _resolve_s3fd(s3fd_path) -> tuple[dict | None, str | None]:
    from .s3fd import load_s3fd

    return _resolve_weights(load_s3fd, s3fd_path,
                            "syncnet-pipeline with the s3fd detector: S3FD weights (sfd_face.pth) absent",
                            "S3FD weights unusable")


def _resolve_sync_expert(path) -> tuple[dict | None, str | None]:
    if not path:
        return None, "no sync-expert checkpoint given (--sync-expert)"
    p = Path(path)
    if p.is_dir():
        p = p / "sync_expert.pt"
    if not p.is_file():
        return None, f"sync-expert checkpoint {p} not found"
    try:
        from refmodel.sync_expert import load_sync_expert

        load_sync_expert(p)
    except ImportError as e:
        return None, f"refmodel.sync_expert unavailable ({e})"
    except Exception as e:  # noqa: BLE001 - an unreadable checkpoint skips the metric, with its reason
        return None, f"sync-expert checkpoint unusable: {type(e).__name__}: {e}"
    from talkbench.models import file_sha256

    return {"path": str(p.resolve()), "sha256": file_sha256(p), "calibrated": True}, None


def _dlib_csim_weights() -> dict:
    from talkbench.models import file_sha256

    from .csim import model_paths

    paths = model_paths()
    return {"sha256": file_sha256(paths["embedding"]), "calibrated": True,
            "shape_predictor_sha256": file_sha256(paths["shape_predictor"])}


# ---------------------------------------------------------------- scheduling

class _Scheduler:
    """``None``: a LocalCluster (processes, 1 thread each); an address or Client: that cluster;
    ``"synchronous"``: this process, serially (debugging; same numbers)."""

    def __init__(self, scheduler, n_workers: int | None, n_tasks: int):
        self.client = self.cluster = None
        self.sync = scheduler == "synchronous"
        if self.sync or n_tasks == 0:
            self.sync = True
            return
        from dask.distributed import Client, LocalCluster

        if scheduler is None:
            n = n_workers or max(1, min(os.cpu_count() or 1, n_tasks))
            self.cluster = LocalCluster(n_workers=n, threads_per_worker=1, processes=True,
                                        dashboard_address=":0")
            self.client = Client(self.cluster)
        elif isinstance(scheduler, str):
            self.client = Client(scheduler)
        else:
            self.client = scheduler  # a dask.distributed.Client given by the caller
            self._own_client = False

    def map_ordered(self, fn, tasks: list[dict], on_result):
        """Run ``fn`` over tasks; call ``on_result(i, result)`` in task order (buffering early arrivals)."""
        if self.sync:
            for i, t in enumerate(tasks):
                on_result(i, fn(t))
            return
        from dask.distributed import as_completed

        import uuid

        run = uuid.uuid4().hex[:12]  # keys only; never part of a result
        futures = [self.client.submit(fn, t, key=f"evalkit-{fn.__name__}-{run}-{i}", pure=False)
                   for i, t in enumerate(tasks)]
        index = {f.key: i for i, f in enumerate(futures)}
        pending, nxt = {}, 0
        for f in as_completed(futures):
            i = index[f.key]
            try:
                pending[i] = f.result()
            except Exception as e:  # noqa: BLE001 - a worker crash becomes a failed video
                pending[i] = {"clip_id": tasks[i]["clip_id"], "status": "failed",
                              "reason": f"worker error: {type(e).__name__}: {e}"}
            f.release()
            while nxt in pending:
                on_result(nxt, pending.pop(nxt))
                nxt += 1

    def close(self):
        if self.cluster is not None:
            self.client.close()
            self.cluster.close()
        elif self.client is not None and getattr(self, "_own_client", True):
            self.client.close()


# ---------------------------------------------------------------- evaluate

def _default_fid_cache() -> Path:
    from talkbench.models import cache_dir

    return cache_dir().parent / "evalkit" / "fid"


def _submission_block(meta: dict | None, mode: str) -> dict:
    meta = dict(meta or {})
    date = meta.get("date") or None
    out = {"name": meta.get("name") or "unnamed", "model": meta.get("model"), "date": date,
           "link": meta.get("link"), "notes": meta.get("notes"), "kind": meta.get("kind") or "model",
           "mode": mode}
    return out


def evaluate(reference, submission, out, mode: str = "reconstruction", metrics=None, scheduler=None,
             n_workers: int | None = None, syncnet_path=None, inception_path=None, s3fd_path=None,
             allow_uncalibrated_fid: bool = False, sync_expert=None, submission_meta: dict | None = None,
             crop: str = "aligned", lse_crop: str = "aligned", limits: SubmissionLimits | None = None,
             benchmark_name: str | None = None, fid_cache_dir=None, config: EvalConfig | None = None,
             **options) -> dict:
    """Score ``submission`` (a dir of ``<clip_id>.mp4``) against the prep output ``reference``.

    Writes ``out/results.json`` (format ``talkbench-results/1``, see :mod:`evalkit.results`) and
    ``out/per_video.parquet``; returns the results dict. ``mode``: ``reconstruction`` (same audio: all
    metrics) or ``cross`` (other audio: FID, LSE, CSIM, in-house sync). ``metrics``: subset of names.
    ``crop``: ``aligned`` (face crop from the reference affine) or ``full`` frames for PSNR/SSIM/FID;
    ``lse_crop``: ``aligned`` or ``syncnet-pipeline`` (its detector: ``lse_detector="dlib"`` or
    ``"s3fd"`` with ``sfd_face.pth`` from ``s3fd_path`` / ``TALKBENCH_S3FD`` / cache). ``scheduler``: None (LocalCluster), a Dask
    address / Client, or ``"synchronous"``. ``options``: other :class:`EvalConfig` fields
    (``csim_stride``, ``fid_stride``, ``crop_size``, ``lmd_preset``, ``chunk_size`` ...).

    Raises :class:`FIDWeightsMissing` when FID is requested without official weights and without
    ``allow_uncalibrated_fid``. Official SyncNet weights absent → LSE is reported with value null and
    the reason; same for the in-house sync score without a checkpoint.
    """
    from prep.shards import atomic_write_bytes, read_manifest

    from . import results as R
    from .submission import count_skips, validate_submission

    reference, submission, out = Path(reference), Path(submission), Path(out)
    meta_date = (submission_meta or {}).get("date")
    if meta_date and not re.match(r"^\d{4}-\d{2}-\d{2}$", str(meta_date)):
        raise ValueError(f"submission date {meta_date!r} is not YYYY-MM-DD")
    if config is None:
        config = EvalConfig(mode=mode, metrics=tuple(metrics or ()), region=crop, lse_crop=lse_crop,
                            allow_uncalibrated_fid=allow_uncalibrated_fid,
                            limits=limits or SubmissionLimits(), **options)
    active = config.active_metrics
    read_manifest(reference)  # clear error when it is not a prep output
    shards_sha = reference_shards_sha256(reference)

    # networks: decided once, here
    weights: dict[str, dict] = {}
    skipped_metric: dict[str, str] = {}
    inception = _resolve_inception(config, inception_path) if "fid" in active else None
    if inception:
        weights["fid"] = inception
    syncnet = None
    if {"lse_d", "lse_c"} & set(active):
        syncnet, why = _resolve_syncnet(syncnet_path)
        if not why and config.lse_crop == "syncnet-pipeline" and config.lse_detector == "s3fd":
            s3fd, why = _resolve_s3fd(s3fd_path)
            syncnet = {**syncnet, "s3fd": s3fd} if s3fd else None
        if why:
            skipped_metric["lse_d"] = skipped_metric["lse_c"] = why
            log.warning("LSE skipped: %s", why)
        else:
            weights["lse_d"] = weights["lse_c"] = syncnet
    expert = None
    if "sync_inhouse" in active:
        expert, why = _resolve_sync_expert(sync_expert)
        if why:
            skipped_metric["sync_inhouse"] = why
        else:
            weights["sync_inhouse"] = expert
    if "csim" in active:
        weights["csim"] = _dlib_csim_weights()

    protocols = {}
    for name in active:
        w = weights.get(name)
        winfo = None if w is None else {"sha256": w.get("sha256"), "calibrated": w.get("calibrated", True),
                                        **({"source": w["source"]} if "source" in w else {})}
        protocols[name] = metric_protocol(name, config, winfo)
        if w is not None and w.get("s3fd"):
            protocols[name]["detector_weights"] = {"sha256": w["s3fd"]["sha256"], "file": "sfd_face.pth"}

    ref_clips = load_reference(reference, config.split)
    accepted, skipped = validate_submission(reference, submission, config.mode, config.limits,
                                            split=config.split)
    cfg_task = config.to_dict()
    tasks = []
    for v in accepted:
        c = ref_clips[v.clip_id]
        if c["ref_path"] is None:
            skipped.append({"clip_id": v.clip_id, "path": v.rel_path, "code": "reference_missing",
                            "reason": f"reference source video {c['source_path']} not found"})
            continue
        tasks.append({**{k: c[k] for k in ("clip_id", "ref_path", "ref_sha256", "ref_width", "ref_height",
                                           "ref_crop_size", "face", "boxes", "affines")},
                      "gen_path": v.path, "gen_width": v.width, "gen_height": v.height,
                      "n_frames": min(v.num_frames, c["ref_num_frames"]), "config": cfg_task,
                      "inception": inception, "syncnet": syncnet["path"] if syncnet else None,
                      "s3fd": syncnet["s3fd"]["path"] if syncnet and syncnet.get("s3fd") else None,
                      "sync_expert": expert["path"] if expert else None})

    # FID reference statistics: cached by (shards, protocol)
    fid_ref = None
    fid_tasks = []
    fid_key_protocol = None
    fid_cache = Path(fid_cache_dir) if fid_cache_dir else _default_fid_cache()
    if inception:
        from .fid import FeatureMoments, stats_cache_key

        fid_key_protocol = {**protocols["fid"], "weights_sha256": inception["sha256"]}
        cache_file = fid_cache / f"fid-ref-{stats_cache_key(shards_sha, fid_key_protocol)}.npz"
        if cache_file.is_file():
            try:
                fid_ref, meta = FeatureMoments.load(cache_file)
                log.info("FID reference statistics from cache %s (n=%d)", cache_file, fid_ref.n)
            except (OSError, ValueError, KeyError) as e:
                log.warning("ignoring unreadable FID cache %s: %s", cache_file, e)
                fid_ref = None
        if fid_ref is None:
            missing = sorted(cid for cid, c in ref_clips.items() if c["ref_path"] is None)
            if missing:
                raise EvaluationError(f"FID reference set incomplete: source video of {len(missing)} reference "
                                      f"clip(s) not found (first: {missing[0]}); leave fid out of --metrics")
            fid_tasks = [{**{k: c[k] for k in ("clip_id", "ref_path", "ref_num_frames", "ref_crop_size",
                                               "face", "affines")},
                          "config": cfg_task, "inception": inception}
                         for cid, c in sorted(ref_clips.items())]

    # score
    per_video: list[dict] = []
    sched = _Scheduler(scheduler, n_workers, len(tasks) + len(fid_tasks))
    ref_total = []  # one running FeatureMoments (32 MB): folded in clip order as results arrive
    from .worker import reference_fid_features, score_video

    try:
        with _single_threaded():  # reference moments are float64 sums made here: same bits everywhere
            if fid_tasks:
                from .fid import FeatureMoments

                def on_ref(i, res):
                    if res["status"] != "ok":
                        raise EvaluationError(f"FID reference features failed for {res['clip_id']}: "
                                              f"{res['reason']}")
                    mom = FeatureMoments.from_features(res["features"])
                    ref_total[:] = [ref_total[0].merge(mom) if ref_total else mom]

                sched.map_ordered(reference_fid_features, fid_tasks, on_ref)
            sched.map_ordered(score_video, tasks, lambda i, res: per_video.append(res))
    finally:
        sched.close()
    if fid_tasks:
        from .fid import cached_reference_moments

        fid_ref, _ = cached_reference_moments(fid_cache, shards_sha, fid_key_protocol, lambda: ref_total[0])

    # fold per-video states in clip order
    failed = [r for r in per_video if r["status"] != "scored"]
    for r in failed:
        skipped.append({"clip_id": r["clip_id"], "path": f"{r['clip_id']}.mp4", "code": "scoring_failed",
                        "reason": r["reason"]})
    not_scored = count_skips([s for s in skipped if s["code"] != "unknown_clip"])
    with _single_threaded():
        results_metrics, rows = _merge(per_video, active, config, protocols, weights, skipped_metric,
                                       fid_ref, n_expected=len(ref_clips), video_skips=not_scored)
    skipped.sort(key=lambda s: (s["code"] == "unknown_clip", s["clip_id"]))
    n_scored = sum(1 for r in per_video if r["status"] == "scored")

    # per_video.parquet
    out.mkdir(parents=True, exist_ok=True)
    pv_bytes = _per_video_table(rows, accepted, skipped, active)
    atomic_write_bytes(out / PER_VIDEO_FILE, pv_bytes)

    counts = count_skips(skipped)
    result = {
        "results_schema": R.RESULTS_SCHEMA_VERSION,
        "talkbench_version": _talkbench_version(),
        "created": _dt.datetime.now(_dt.timezone.utc).replace(microsecond=0).isoformat().replace("+00:00", "Z"),
        "benchmark": {"name": benchmark_name or reference.resolve().name + (f":{config.split}" if config.split else ""), "reference_shards_sha256": shards_sha,
                      "protocol_version": PROTOCOL_VERSION, "protocol_hash": protocol_hash(protocols)},
        "submission": _submission_block(submission_meta, config.mode),
        "config": {**config.to_dict(), "inception_path": inception and inception["path"],
                   "syncnet_path": syncnet and syncnet["path"], "sync_expert_path": expert and expert["path"]},
        "metrics": results_metrics,
        "skipped": [{"clip_id": s["clip_id"], "reason": s["reason"], "code": s["code"], "path": s["path"]}
                    for s in skipped],
        "n_videos": {"expected": len(ref_clips), "scored": n_scored, "skipped": len(ref_clips) - n_scored,
                     "extra": counts.get("unknown_clip", 0),
                     "resampled": sum(1 for v in accepted if v.resampled), "skip_codes": counts},
        "per_video": {"path": PER_VIDEO_FILE, "sha256": hashlib.sha256(pv_bytes).hexdigest()},
    }
    R.validate_results(result)
    atomic_write_bytes(out / RESULTS_FILE, R.dumps(result).encode())
    log.info("evaluation: %d scored, %d skipped -> %s", n_scored, len(ref_clips) - n_scored, out / RESULTS_FILE)
    return result


@contextlib.contextmanager
def _single_threaded():
    """One BLAS / torch thread while merging: the FID eigendecompositions and float64 sums then give
    the same bits on every machine (and OpenBLAS does not thrash on a busy one)."""
    from .worker import _Threads

    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # pragma: no cover - threadpoolctl ships with scipy/sklearn stacks
        threadpool_limits = None
    with _Threads(), (threadpool_limits(1) if threadpool_limits else contextlib.nullcontext()):
        yield


def _talkbench_version() -> str:
    from talkbench import __version__

    return __version__


def _merge(per_video, active, config, protocols, weights, skipped_metric, fid_ref, n_expected, video_skips):
    """Fold per-video results in order → metric entries and per-video rows."""
    import warnings

    from .csim import CSIM
    from .image_metrics import PSNR, SSIM
    from .lmd import LMD
    from .metric_base import VideoValueMetric
    from .results import metric_entry

    builders = {"psnr": PSNR, "ssim": SSIM, "lmd_mouth": lambda: LMD("mouth", config.lmd_preset),
                "lmd_face": lambda: LMD("face", config.lmd_preset), "csim": CSIM}
    merged = {n: (builders[n]() if n in builders else VideoValueMetric()) for n in active if n != "fid"}
    # why each metric has fewer than n_expected videos: validation / scoring skips, then per-metric reasons
    reasons = {n: {f"video skipped: {code}": k for code, k in video_skips.items()} for n in active}
    fid_metric = None
    if "fid" in active and fid_ref is not None:
        from .fid import FID

        fid_metric = FID(reference=fid_ref)
    fid_videos = 0
    rows = []
    for r in per_video:
        row = {"clip_id": r["clip_id"], "status": r["status"], "reason": r.get("reason")}
        if r["status"] != "scored":
            rows.append(row)
            continue
        row.update(n_frames=r["n_frames"], n_face_frames=r["n_face_frames"], **r.get("extra", {}))
        for n in active:
            if n in skipped_metric:
                continue
            if n == "fid":
                f = r.get("fid_features")
                if f is not None and len(f) and fid_metric is not None:
                    fid_metric.update(f, real=False)
                    fid_videos += 1
                    row["fid_frames"] = int(len(f))
                else:
                    why = r["errors"].get("fid", "no FID features")
                    reasons[n][why] = reasons[n].get(why, 0) + 1
                continue
            v = r["values"].get(n)
            if n in r.get("states", {}):
                merged[n].merge_state(r["states"][n])
            elif v is not None:
                merged[n].add_video_value(v, r["n_frames"])
            if v is None:
                why = r["errors"].get(n, "not computed")
                reasons[n][why] = reasons[n].get(why, 0) + 1
            row[n] = v
        rows.append(row)

    entries = {}
    for n in active:
        w = weights.get(n) or {}
        calibrated = bool(w.get("calibrated", True))
        common = dict(protocol=protocols[n], weights_sha256=w.get("sha256"), calibrated=calibrated)
        if n in skipped_metric:
            entries[n] = metric_entry(n, None, None, 0, n_expected, skipped_reason=skipped_metric[n], **common)
            continue
        if n == "fid":
            value, extra = None, {}
            if fid_metric is not None and fid_videos:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    try:
                        value = float(fid_metric.compute())
                    except ValueError as e:
                        reasons[n][str(e)] = reasons[n].get(str(e), 0) + 1
                extra = {"n_samples": fid_metric.moments(False).n, "n_reference_samples": fid_metric.moments(True).n,
                         "warning": fid_metric.low_sample_message()}
            if not calibrated:
                extra["label"] = "UNCALIBRATED FID (random Inception weights): not comparable with published FIDs"
            entries[n] = metric_entry(n, value, None, fid_videos, n_expected - fid_videos,
                                      skipped_reason=None if value is not None else "no generated FID samples",
                                      skip_reasons=reasons[n], **extra, **common)
            continue
        with warnings.catch_warnings():  # a metric no video reached: torchmetrics warns, we report it
            warnings.filterwarnings("ignore", message=r".*was called before the ``update`` method")
            s = merged[n].compute()
        entries[n] = metric_entry(n, s["value"], s["stderr"], s["n"], n_expected - s["n"],
                                  skipped_reason=None if s["value"] is not None else "no video could be scored",
                                  skip_reasons=reasons[n], n_frames=s["frames"],
                                  n_frames_skipped=s["frames_skipped"], **common)
    return entries, rows


PER_VIDEO_COLUMNS = ["clip_id", "status", "code", "reason", "path", "src_fps", "resampled", "width", "height",
                     "num_frames", "ref_num_frames", "n_frames", "n_face_frames", "fid_frames"]


def _per_video_table(rows, accepted, skipped, active) -> bytes:
    """Deterministic Parquet bytes: one row per reference clip and per unknown file, sorted."""
    import pyarrow as pa

    from prep.shards import table_to_parquet_bytes

    acc = {v.clip_id: v for v in accepted}
    by_id = {r["clip_id"]: r for r in rows}
    skip_by_id = {}
    for s in skipped:  # a reference clip's own record wins over an unknown file of the same id (impossible)
        skip_by_id.setdefault(s["clip_id"], s)
    records = []
    for cid in sorted(set(acc) | set(skip_by_id)):
        v = acc.get(cid)
        r = by_id.get(cid, {})
        sk = skip_by_id.get(cid)
        rec = {"clip_id": cid, "status": r.get("status") or ("skipped" if sk else "scored"),
               "code": sk["code"] if sk else None, "reason": (sk or {}).get("reason") or r.get("reason"),
               "path": v.rel_path if v else (sk or {}).get("path"),
               "src_fps": v.src_fps if v else None, "resampled": v.resampled if v else None,
               "width": v.width if v else None, "height": v.height if v else None,
               "num_frames": v.num_frames if v else None, "ref_num_frames": v.ref_num_frames if v else None,
               "n_frames": r.get("n_frames"), "n_face_frames": r.get("n_face_frames"),
               "fid_frames": r.get("fid_frames")}
        if sk and sk["code"] == "unknown_clip":
            rec["status"] = "unknown"
        elif sk and rec["status"] == "scored":
            rec["status"] = "skipped"
        for n in active:
            if n != "fid":
                rec[n] = r.get(n)
        for k in ("lse_offset", "lse_windows", "sync_inhouse_offset", "sync_inhouse_confidence"):
            rec[k] = r.get(k)
        records.append(rec)
    types = {"clip_id": pa.string(), "status": pa.string(), "code": pa.string(), "reason": pa.string(),
             "path": pa.string(), "src_fps": pa.float64(), "resampled": pa.bool_(), "width": pa.int32(),
             "height": pa.int32(), "num_frames": pa.int32(), "ref_num_frames": pa.int32(), "n_frames": pa.int32(),
             "n_face_frames": pa.int32(), "fid_frames": pa.int32(), "lse_offset": pa.int32(),
             "lse_windows": pa.int32(), "sync_inhouse_offset": pa.int32(), "sync_inhouse_confidence": pa.float64()}
    names = PER_VIDEO_COLUMNS + [n for n in METRICS if n in active and n != "fid"] + \
        ["lse_offset", "lse_windows", "sync_inhouse_offset", "sync_inhouse_confidence"]
    cols = {k: pa.array([rec.get(k) for rec in records], type=types.get(k, pa.float64())) for k in names}
    return table_to_parquet_bytes(pa.table(cols), "per_video")


__all__ = ["evaluate", "load_reference", "reference_shards_sha256", "EvaluationError", "FIDWeightsMissing",
           "RESULTS_FILE", "PER_VIDEO_FILE"]
