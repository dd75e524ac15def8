"""``evaluate``: validate a submission, score every video over Dask, merge, write results.json + per_video.parquet.

Flow: choose the metrics (:func:`evalkit.metrics.select`) → resolve the networks they need once, here
(:func:`evalkit.weights.resolve_weights`) → read the reference clips through :class:`prep.output.PrepOutput`
and verify each source video's sha256 → ``validate_submission`` → one ``score_video`` task per accepted
video (plus ``reference_fid_features`` tasks when the FID reference statistics are not cached) → fold the
per-video values **in clip order** through each metric's spec (so the numbers do not depend on the worker
count or completion order) → results.
"""
from __future__ import annotations

import datetime as _dt
import hashlib
import json
import logging
import re
import sys
from pathlib import Path

from talkbase import __version__
from talkbase.executor import Executor
from talkbase.fileio import atomic_write_bytes, sha256_file
from talkbase.paths import relative_text
from talkbase.results import PER_VIDEO_FILE, RESULTS_FILE, dumps, parse_results, protocol_hash
from talkbase.threads import one_thread

from . import metrics as registry
from .config import PROTOCOL_VERSION, EvalConfig, SubmissionLimits
from .metrics.base import CI_METHOD, MergeContext, bootstrap_ci

FID_CI_RESAMPLES = 50  # set-level metrics recompute the whole statistic per resample (FID: an eigendecomposition)
from .results import metric_entry
from .tasks import EvalTask, ReferenceClip, ReferenceFIDTask, ResolvedWeights, VideoScore
from .weights import EvaluationError, FIDWeightsMissing, WeightPaths, resolve_weights

log = logging.getLogger(__name__)


# ---------------------------------------------------------------- reference

def load_reference(prep_out, split: str | None = None) -> tuple[dict[str, ReferenceClip], list[dict]]:
    """Reference clips (of ``split``, or all) whose source video is present and unchanged since prep, and a
    skip record for each clip whose source is missing or changed (never scored against the wrong video)."""
    clips = prep_out.clips(split)
    if split is not None and not clips:
        splits = ", ".join(repr(s) for s in prep_out.splits())
        raise EvaluationError(f"{prep_out.path}: no reference clip has split {split!r} (splits there: {splits})")
    geometry = prep_out.geometry(clips)
    out, problems = {}, []
    for c in clips:
        src = prep_out.source(c)
        if src is None:
            problems.append({"clip_id": c.clip_id, "path": f"{c.clip_id}.mp4", "code": "reference_missing",
                             "reason": f"reference source video {c.source_path} not found"})
            continue
        if c.source_sha256 and sha256_file(src) != c.source_sha256:
            problems.append({"clip_id": c.clip_id, "path": f"{c.clip_id}.mp4", "code": "reference_changed",
                             "reason": f"reference source video {c.source_path} changed since prep (sha256 differs)"})
            continue
        g = geometry[c.clip_id]
        out[c.clip_id] = ReferenceClip(c.clip_id, str(src), c.source_sha256, c.num_frames, int(c.src_width),
                                       int(c.src_height), c.crop_size, g.face, g.boxes, g.affines, g.mm_exp)
    return out, problems


def reference_shards_sha256(reference_out) -> str:
    from prep.output import PrepOutput

    return PrepOutput.open(reference_out).shards_sha256


# ---------------------------------------------------------------- helpers

def _default_fid_cache() -> Path:
    from talkbase.weights import cache_dir

    return cache_dir().parent / "evalkit" / "fid"


def submission_block(meta: dict | None, mode: str) -> dict:
    meta = dict(meta or {})
    return {"name": meta.get("name") or "unnamed", "model": meta.get("model"), "date": meta.get("date") or None,
            "link": meta.get("link"), "notes": meta.get("notes"), "kind": meta.get("kind") or "model", "mode": mode}


def check_meta(submission_meta: dict | None) -> None:
    meta_date = (submission_meta or {}).get("date")
    if meta_date and not re.fullmatch(r"\d{4}-\d{2}-\d{2}", str(meta_date)):
        raise ValueError(f"submission date {meta_date!r} is not YYYY-MM-DD")


def progress_bar(total: int, desc: str, enabled: bool):
    if not enabled or not total:
        return None
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, unit="video", dynamic_ncols=True, file=sys.stderr)


def protocols_for(specs, config: EvalConfig, weights: ResolvedWeights, extra: dict | None = None) -> dict[str, dict]:
    """Each metric's protocol (from its module's constants and ``config``) plus the weights it uses and
    ``extra`` (settings shared by every metric of the mode, e.g. the reference-free face tracking)."""
    out = {}
    for spec in specs:
        p = spec.protocol(config)
        if config.submission_kind != "frames":  # crops are scored without the paste-back: another protocol
            p["submission_kind"] = config.submission_kind
        used = {name: weights.get(name).protocol() for name in spec.weights(config) if weights.get(name)}
        if used:
            p["weights"] = used
        if extra:
            p.update(extra)
        out[spec.name] = p
    return out


def _main_weights(spec, config, weights: ResolvedWeights):
    """The network whose file identifies this metric's numbers (the first it needs), or None."""
    names = spec.weights(config)
    return weights.get(names[0]) if names else None


def plan_weights(specs, config: EvalConfig, paths: WeightPaths, named_metrics) -> tuple[ResolvedWeights, dict]:
    """Resolve the networks the metrics need, once: ``(weights, {metric: why it is skipped})``.

    Metrics named explicitly and weight files given explicitly must be usable (else EvaluationError);
    a default metric whose weights are absent is skipped with the reason.
    """
    needed = {w for s in specs for w in s.weights(config)}
    for name, given in vars(paths).items():
        if given and name not in needed:
            log.warning("--%s %s is not used by these metrics / options; ignored", name.replace("_", "-"), given)
    explicit = {w for s in specs for w in s.weights(config) if named_metrics} | \
        {k for k, v in vars(paths).items() if v and k != "inception"}
    weights, unusable = resolve_weights(needed, config, paths, required=explicit & needed)
    skipped_metric = {}
    for spec in specs:
        why = [unusable[w] for w in spec.weights(config) if w in unusable]
        if why:
            skipped_metric[spec.name] = why[0]
    _warn_skipped(skipped_metric)
    return weights, skipped_metric


_WARNED: set[str] = set()  # reasons already shown in this process (a demo or a sweep evaluates many times)


def _warn_skipped(skipped_metric: dict[str, str]) -> None:
    """One warning per distinct reason, naming every metric it skips; a reason already shown is logged at INFO
    (results.json records it every time)."""
    by_reason: dict[str, list[str]] = {}
    for name, why in skipped_metric.items():
        by_reason.setdefault(why, []).append(name)
    for why, names in by_reason.items():
        (log.info if why in _WARNED else log.warning)("%s skipped: %s", ", ".join(names), why)
        _WARNED.add(why)


def score_all(executor, fn, tasks, progress: bool, desc: str = "eval") -> list[VideoScore]:
    """Run ``fn`` over ``tasks`` (results in task order; a worker error becomes a failed VideoScore)."""
    scores: list[VideoScore] = []
    bar = progress_bar(len(tasks), desc, progress)

    def on_score(i, res: VideoScore):
        scores.append(res)
        if bar is not None:
            bar.update(1)

    executor.map_ordered(fn, tasks, on_score,
                         on_error=lambda i, e: VideoScore(tasks[i].video.clip_id, "failed",
                                                          f"worker error: {type(e).__name__}: {e}"))
    if bar is not None:
        bar.close()
    return scores


def failed_records(scores, paths: dict | None = None) -> list[dict]:
    """Skip records of the videos whose scoring failed (``paths``: clip id -> file, default ``<id>.mp4``)."""
    return [{"clip_id": r.clip_id, "path": (paths or {}).get(r.clip_id, f"{r.clip_id}.mp4"), "code": r.code or "scoring_failed",
             "reason": r.reason} for r in scores if r.status != "scored"]


def write_results(out: Path, *, specs, scores, accepted, skipped, config: EvalConfig, weights: ResolvedWeights,
                  entries: dict, benchmark: dict, submission_meta, n_expected: int,
                  config_extra: dict | None = None) -> dict:
    """``out/per_video.parquet`` and ``out/results.json`` (validated by the one reader first); the results dict."""
    from .per_video import per_video_table
    from .submission import count_skips

    skipped.sort(key=lambda s: (s["code"] == "unknown_clip", s["clip_id"], s["path"]))
    n_scored = sum(1 for r in scores if r.status == "scored")
    out.mkdir(parents=True, exist_ok=True)
    pv_bytes = per_video_table(specs, scores, accepted, skipped)
    atomic_write_bytes(out / PER_VIDEO_FILE, pv_bytes)
    counts = count_skips(skipped)
    result = {
        "results_schema": "talkbench-results/1", "talkbench_version": __version__,
        "created": _dt.datetime.now(_dt.timezone.utc).replace(microsecond=0).isoformat().replace("+00:00", "Z"),
        "benchmark": {**benchmark, "protocol_version": PROTOCOL_VERSION,
                      "protocol_hash": protocol_hash({k: e["protocol"] for k, e in entries.items()})},
        "submission": submission_block(submission_meta, config.mode),
        "config": {**config.to_dict(), "weights": {k: v.protocol() for k, v in sorted(weights.by_name.items())},
                   **(config_extra or {})},
        "metrics": entries, "metric_order": [s.name for s in specs],
        "skipped": [{"clip_id": s["clip_id"], "reason": s["reason"], "code": s["code"], "path": s["path"]}
                    for s in skipped],
        "n_videos": {"expected": n_expected, "scored": n_scored, "skipped": n_expected - n_scored,
                     "extra": counts.get("unknown_clip", 0), "resampled": sum(1 for v in accepted if v.resampled),
                     "skip_codes": counts},
        "per_video": {"path": PER_VIDEO_FILE, "sha256": hashlib.sha256(pv_bytes).hexdigest()},
    }
    parse_results(result)  # the one reader validates what we write
    atomic_write_bytes(out / RESULTS_FILE, dumps(result).encode())
    log.info("evaluation: %d scored, %d skipped -> %s", n_scored, n_expected - n_scored, out / RESULTS_FILE)
    return result
def _read_pairs(pairs, config: EvalConfig, prep_out) -> dict[str, str] | None:
    if pairs is None:
        return None
    if config.mode != "cross":
        raise EvaluationError("--pairs names the driving audio of cross-mode submissions; add --mode cross")
    from .pairs import PairsError, read_pairs

    if isinstance(pairs, dict):
        return dict(pairs)
    try:
        return read_pairs(pairs, [c.clip_id for c in prep_out.clips(config.split)])
    except PairsError as e:
        raise EvaluationError(str(e)) from None


def _audio_source(clip_id: str, config: EvalConfig, clips: dict, pair_map):
    """The clip whose audio ``clip_id``'s submission must carry: None (no check), or False when that clip's
    source is not available."""
    from .tasks import AudioSource

    if not config.audio_check:
        return None
    src = clip_id if config.mode == "reconstruction" else (pair_map or {}).get(clip_id)
    if src is None:
        return None  # cross mode without a pairs list: which audio drives it is not known
    c = clips.get(src)
    return AudioSource(c.clip_id, c.path, c.num_frames) if c is not None else False


def _pairs_record(pairs, pair_map: dict) -> dict:
    out = {"n": len(pair_map), "sha256": hashlib.sha256(json.dumps(sorted(pair_map.items())).encode()).hexdigest()}
    if not isinstance(pairs, dict):
        out["file"] = Path(pairs).name
    return out


def _default_benchmark_name(prep_out, split: str | None) -> str:
    """The reference folder's name (its parent's too when it is a generic one like ``shards``), and the split."""
    path = prep_out.path.resolve()
    name = path.name
    if name.lower() in ("shards", "prep", "prep_out", "out", "output", "ref", "reference") and path.parent.name:
        name = f"{path.parent.name}/{name}"
    return name + (f" ({split} split)" if split else "")


def _check_device(device: str) -> None:
    """Fail before any decoding when the asked-for device does not exist here."""
    if device == "cpu":
        return
    import torch

    ok = (device == "mps" and torch.backends.mps.is_available()) or (
        device.startswith("cuda") and torch.cuda.is_available()
        and int((device.split(":") + ["0"])[1]) < torch.cuda.device_count())
    if not ok:
        raise EvaluationError(f"--device {device}: no such device here (torch {torch.__version__}, "
                              f"CUDA available: {torch.cuda.is_available()}); use --device cpu")


def _path_roots(reference: Path, submission: Path) -> dict[str, str]:
    from talkbase.weights import cache_dir

    home = Path.home()
    return {"<submission>": str(submission.resolve()), "<reference>": str(reference.resolve()),
            "$TALKBENCH_CACHE/models": str(cache_dir()), "~": str(home) if str(home) != "/" else ""}


def _relative_entry(entry: dict, roots: dict) -> dict:
    out = dict(entry)
    for key in ("skipped_reason", "note"):
        if isinstance(out.get(key), str):
            out[key] = relative_text(out[key], roots)
    if isinstance(out.get("skip_reasons"), dict):
        out["skip_reasons"] = {relative_text(k, roots): v for k, v in out["skip_reasons"].items()}
    return out


# ---------------------------------------------------------------- evaluate

def evaluate(reference, submission, out, mode: str = "reconstruction", metrics=None, scheduler=None,
             n_workers: int | None = None, syncnet_path=None, inception_path=None, s3fd_path=None,
             allow_uncalibrated_fid: bool = False, sync_expert=None, submission_meta: dict | None = None,
             crop: str = "aligned", lse_crop: str = "aligned", limits: SubmissionLimits | None = None,
             benchmark_name: str | None = None, fid_cache_dir=None, config: EvalConfig | None = None,
             progress: bool = False, weight_paths: dict | None = None, follow_symlinks_inside=(), pairs=None,
             host: str | None = None, dashboard_address: str | None = None, **options) -> dict:
    """Score ``submission`` (a dir of ``<clip_id>.mp4``) against the prep output ``reference``.

    Writes ``out/results.json`` (``talkbench-results/1``, :mod:`talkbase.results`) and ``out/per_video.parquet``;
    returns the results dict. ``mode``: ``reconstruction`` (same audio) or ``cross`` (other audio); ``metrics``:
    names (any case, ``lse-c`` = ``lse_c``; default: every metric of the mode; ``talkbench eval
    --list-metrics``). ``crop``: ``aligned`` (face crop from the reference affine) or ``full`` frames for
    PSNR/SSIM/FID; ``lse_crop``: ``aligned`` or ``syncnet-pipeline`` (detector ``lse_detector="dlib"`` or
    ``"s3fd"``). ``scheduler``: None (LocalCluster), a Dask address / Client, or ``"inline"``. ``options``:
    other :class:`EvalConfig` fields (``csim_stride``, ``fid_stride``, ``crop_size``, ``lmd_preset``,
    ``device`` for the networks, ...). ``follow_symlinks_inside``: folders a submission's symlinks may point
    into (else a symlink leaving the submission folder is skipped as ``unsafe_path``). ``pairs``: cross mode, a
    pairs list (:mod:`evalkit.pairs`; or ``{video clip: audio clip}``) naming the audio that drives each video.
    Each submission's audio is checked against the audio it must carry (its own clip's in reconstruction,
    the paired clip's in cross mode; :mod:`evalkit.audio_check`, ``audio_check=False`` to disable):
    a mismatch is skipped as ``audio_mismatch``.
    Reasons in results.json name files relative to the submission / reference folders, never by this
    machine's absolute paths.

    ``weight_paths``: other weight files by registry name (``alexnet``, ``vgg16``, ``arcface``, ``i3d``).

    Raises :class:`FIDWeightsMissing` when FID is requested without official weights and without
    ``allow_uncalibrated_fid``, and :class:`EvaluationError` when a metric or weight file asked for explicitly
    cannot be used. Weights absent for a default metric skip it, with the reason in results.json.
    """
    from prep.output import PrepOutput

    from .submission import count_skips, validate_submission
    from .worker import reference_fid_features, score_video

    reference, submission, out = Path(reference), Path(submission), Path(out)
    check_meta(submission_meta)
    if config is None:
        config = EvalConfig(mode=mode, metrics=registry.select(metrics, mode), region=crop, lse_crop=lse_crop,
                            allow_uncalibrated_fid=allow_uncalibrated_fid, limits=limits or SubmissionLimits(),
                            **options)
    else:
        config = config.with_(metrics=registry.select(config.metrics, config.mode))
    if config.mode == "reference-free":
        raise ValueError("reference-free mode has no reference: use evalkit.free.evaluate_reference_free")
    specs = [registry.get(n) for n in config.metrics]
    _check_device(config.device)
    prep_out = PrepOutput.open(reference)
    shards_sha = prep_out.shards_sha256

    # networks: decided once, here. Asked-for metrics and explicitly named files must be usable.
    paths = WeightPaths(**{**(weight_paths or {}), **{k: v for k, v in dict(
        syncnet=syncnet_path, inception=inception_path, s3fd=s3fd_path, sync_expert=sync_expert).items() if v}})
    weights, skipped_metric = plan_weights(specs, config, paths, metrics)
    protocols = protocols_for(specs, config, weights)

    pair_map = _read_pairs(pairs, config, prep_out)
    ref_clips, skipped = load_reference(prep_out, config.split)
    audio_clips = ref_clips  # where driving audio comes from (every verified clip)
    if pair_map is not None:  # only the paired video clips are expected
        skipped = [s for s in skipped if s["clip_id"] in pair_map]
        ref_clips = {k: v for k, v in ref_clips.items() if k in pair_map}
    accepted, sub_skips = validate_submission(reference, submission, config.mode, config.limits, split=config.split,
                                              follow_inside=follow_symlinks_inside,
                                              clip_ids=set(pair_map) if pair_map is not None else None,
                                              kind=config.submission_kind)
    bad_refs = {s["clip_id"] for s in skipped}
    skipped += [s for s in sub_skips if s["clip_id"] not in bad_refs]
    active = tuple(s.name for s in specs if s.name not in skipped_metric)
    tasks = []
    for v in accepted:
        if v.clip_id not in ref_clips:
            continue
        audio = _audio_source(v.clip_id, config, audio_clips, pair_map)
        if audio is False:
            skipped.append({"clip_id": v.clip_id, "path": f"{v.clip_id}.mp4", "code": "reference_missing",
                            "reason": f"the source video of audio clip {pair_map[v.clip_id]} is missing or changed"})
            continue
        tasks.append(EvalTask(ref_clips[v.clip_id], v, min(v.num_frames, ref_clips[v.clip_id].num_frames), config,
                              weights, active, audio or None))
    n_expected = len(ref_clips) + len(bad_refs)

    # FID reference statistics: cached by (shards, source hashes, protocol, weights)
    fid_ref, fid_tasks, cache, cache_key = None, [], None, None
    inception = weights.get("inception")
    if "fid" in active:
        from .metrics.fid import FeatureMoments, ReferenceStatsCache, stats_cache_key

        if bad_refs:
            raise EvaluationError(f"FID reference set incomplete: {len(bad_refs)} reference source video(s) missing "
                                  f"or changed (first: {sorted(bad_refs)[0]}); leave fid out of --metrics")
        sources = sorted(c.sha256 for c in ref_clips.values())
        cache = ReferenceStatsCache(Path(fid_cache_dir) if fid_cache_dir else _default_fid_cache())
        cache_key = stats_cache_key(shards_sha, {**protocols["fid"], "sources": sources})
        fid_ref = cache.load(cache_key)
        if fid_ref is None:
            fid_tasks = [ReferenceFIDTask(c, config, inception) for _, c in sorted(ref_clips.items())]

    # score
    with Executor(scheduler, n_workers, n_tasks=len(tasks) + len(fid_tasks), dashboard=dashboard_address,
                  **({"host": host} if host else {})) as executor, one_thread():
        if fid_tasks:
            ref_total = []  # one running FeatureMoments (32 MB), folded in clip order as results arrive
            bar = progress_bar(len(fid_tasks), "eval: FID reference", progress)

            def on_ref(i, res):
                if res["status"] != "ok":
                    raise EvaluationError(f"FID reference features failed for {res['clip_id']}: {res['reason']}")
                mom = FeatureMoments.from_features(res["features"])
                ref_total[:] = [ref_total[0].merge(mom) if ref_total else mom]
                if bar is not None:
                    bar.update(1)

            executor.map_ordered(reference_fid_features, fid_tasks, on_ref,
                                 on_error=lambda i, e: {"clip_id": fid_tasks[i].clip.clip_id, "status": "failed",
                                                        "reason": f"worker error: {type(e).__name__}: {e}"})
            if bar is not None:
                bar.close()
            fid_ref = ref_total[0] if ref_total else None
            if fid_ref is not None:
                cache.store(cache_key, fid_ref, {"reference": shards_sha, "protocol": protocols["fid"]})
        scores = score_all(executor, score_video, tasks, progress)

        # fold per-video values in clip order
        skipped += failed_records(scores)
        video_skips = count_skips([s for s in skipped if s["code"] != "unknown_clip"])
        entries = merge_entries(specs, scores, config, protocols, weights, skipped_metric, fid_ref, n_expected,
                                video_skips)
    roots = _path_roots(reference, submission)
    skipped = [dict(s, reason=relative_text(s["reason"], roots)) for s in skipped]
    entries = {k: _relative_entry(e, roots) for k, e in entries.items()}
    return write_results(out, specs=specs, scores=scores, accepted=accepted, skipped=skipped, config=config,
                         weights=weights, entries=entries,
                         benchmark={"name": benchmark_name or _default_benchmark_name(prep_out, config.split),
                                    "reference_shards_sha256": shards_sha},
                         submission_meta=submission_meta, n_expected=n_expected,
                         config_extra={"pairs": _pairs_record(pairs, pair_map)} if pair_map is not None else None)


def _weights_note(spec, w) -> str | None:
    """The warning a metric's entry carries when its network is not the pinned official file."""
    from talkbase.weights import REGISTRY

    if w is None or w.calibrated:
        return None
    pinned = REGISTRY.get(w.name) is None or bool(REGISTRY[w.name].official_sha256)
    if w.path and not pinned:  # no trusted hash to compare with: the file may be the official one
        return (f"UNVERIFIED {spec.label}: no official sha256 is pinned for the {w.name} weights; this file has "
                f"sha256 {w.sha256[:12]} (compare results only under the same file)")
    if w.status == "unverified":
        return (f"UNVERIFIED {spec.label}: the {w.name} file's sha256 {w.sha256[:12]}… is not a pinned "
                "official hash (talkbase.weights); not comparable with published numbers")
    return (f"UNCALIBRATED {spec.label}: {w.name} weights are not the official file ({w.source}, "
            f"sha256 {w.sha256[:12]}); not comparable with published numbers")


def merge_entries(specs, scores, config, protocols, weights, skipped_metric, fid_ref, n_expected,
                  video_skips) -> dict:
    """Fold per-video values in clip order through each spec → the results' metric entries."""
    ctx = MergeContext(config, fid_ref)
    entries = {}
    for spec in specs:
        w = _main_weights(spec, config, weights)
        common = dict(protocol=protocols[spec.name], weights_sha256=w.sha256 if w else None,
                      calibrated=w.calibrated if w else True, weights_status=w.status if w else None)
        if spec.name in skipped_metric:
            entries[spec.name] = metric_entry(spec, {}, n_expected, skipped_reason=skipped_metric[spec.name], **common)
            continue
        reasons = {f"video skipped: {code}": k for code, k in video_skips.items()}
        merged = spec.merger(config)
        per_video = []  # (clip id, value) of every merged video: the bootstrap resamples these in clip-id order
        for r in scores:
            if r.status != "scored":
                continue
            v = r.values.get(spec.name)
            if v is None or v.reason is not None:
                why = v.reason if v is not None else "not computed"
                reasons[why] = reasons.get(why, 0) + 1
            if v is not None:
                spec.merge(merged, v)
                per_video.append((r.clip_id, v))
        summary = spec.summary(merged, ctx)
        extra = {"skip_reasons": reasons}
        if summary.get("value") is not None and config.ci_resamples:
            resamples = min(config.ci_resamples, FID_CI_RESAMPLES) if spec.bootstrap is not None else config.ci_resamples
            ci = bootstrap_ci([v for _, v in sorted(per_video, key=lambda cv: cv[0])], spec, ctx, resamples,
                              config.ci_seed)
            if ci is not None:
                extra["ci95"] = list(ci)
                extra["ci95_method"] = {"method": CI_METHOD, "resamples": int(resamples), "seed": int(config.ci_seed),
                                        "unit": "video"}
        note = _weights_note(spec, w)
        if note:
            extra["note"] = note
        entries[spec.name] = metric_entry(spec, summary, n_expected, skipped_reason=None if summary.get("value")
                                          is not None else summary.get("reason") or "no video could be scored",
                                          **extra, **common)
    return entries


__all__ = ["evaluate", "load_reference", "reference_shards_sha256", "plan_weights", "protocols_for", "score_all",
           "merge_entries", "write_results", "failed_records", "check_meta", "submission_block", "EvaluationError", "FIDWeightsMissing",
           "RESULTS_FILE", "PER_VIDEO_FILE"]
