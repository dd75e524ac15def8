"""Reference-free evaluation: score any folder of videos, with no prep output behind it.

``evaluate_reference_free(submission, out, benchmark_name)`` is ``talkbench eval --submission DIR --out RES``
without ``--reference``: every video file under DIR (recursively; :func:`evalkit.submission.discover_videos`
applies the submission-safety rules) is decoded at 25 fps / 16 kHz, its face tracked as prep does and scored
by the metrics whose spec lists the ``reference-free`` mode (:mod:`evalkit.free_worker`), one Dask task per
video; the per-video values are merged in file order through each spec and written as the same
``results.json`` / ``per_video.parquet`` as a reference evaluation.

The benchmark is named by the user and keyed by the set of submitted file names:
``benchmark.reference_shards_sha256`` (the key the leaderboard groups a table by, with the mode) holds
:func:`submission_set_sha256` of (the benchmark name, the sorted relative file names), also written as
``benchmark.submission_set_sha256``. Runs of different models over the same named set of files (e.g. the same
dubbing clips) land in one table; another file set, or another name, is another benchmark.
"""
from __future__ import annotations

import hashlib
import logging
from pathlib import Path

from talkbase.executor import Executor
from talkbase.results import canonical_json
from talkbase.threads import one_thread

from . import metrics as registry
from .config import EvalConfig, SubmissionLimits
from .runner import (check_meta, failed_records, merge_entries, plan_weights, protocols_for, score_all,
                     write_results)
from .tasks import FreeTask
from .weights import WeightPaths

log = logging.getLogger(__name__)

MODE = "reference-free"
SET_KEY_SCHEMA = "talkbench-reference-free-set/1"
MAX_NAME = 200


def submission_set_sha256(benchmark_name: str, names) -> str:
    """The benchmark key: sha256 of the canonical JSON of (schema, name, sorted relative file names)."""
    return hashlib.sha256(canonical_json({"schema": SET_KEY_SCHEMA, "name": benchmark_name,
                                          "files": sorted(names)})).hexdigest()


def tracking_protocol(face_config) -> dict:
    """What every metric's protocol records about the geometry in this mode."""
    from .free_worker import TRACK_PROTOCOL

    return {"tracking": {**TRACK_PROTOCOL, "face_config": face_config.to_dict()}}


def evaluate_reference_free(submission, out, benchmark_name: str, metrics=None, scheduler=None,
                            n_workers: int | None = None, syncnet_path=None, s3fd_path=None, sync_expert=None,
                            submission_meta: dict | None = None, lse_crop: str = "aligned",
                            limits: SubmissionLimits | None = None, face_config=None, progress: bool = False,
                            weight_paths: dict | None = None, **options) -> dict:
    """Score every video under ``submission`` with no reference; writes ``out/results.json`` and returns it.

    ``benchmark_name`` is required (it names the benchmark and enters its key). ``metrics``: names of
    reference-free metrics (default: every one; ``talkbench eval --list-metrics`` shows each metric's modes).
    ``lse_crop``: ``aligned`` (the video's own tracked face, warped to 224 px) or ``syncnet-pipeline``.
    ``face_config``: the :class:`prep.faces.FaceConfig` of the tracking (default: prep's, without 3DMM).
    ``options``: other :class:`EvalConfig` fields (``cpbd_stride``, ``crop_size``, ``lse_detector`` ...).
    Raises ValueError for a missing / too long benchmark name, an unknown metric or one without this mode,
    and :class:`~evalkit.weights.EvaluationError` for an asked-for metric or weight file that cannot be used.
    """
    from prep.faces import FaceConfig

    from .free_worker import score_free_video
    from .submission import count_skips, discover_videos

    name = (benchmark_name or "").strip()
    if not name:
        raise ValueError("reference-free mode needs a benchmark name (--benchmark-name): it names the benchmark "
                         "and, with the set of file names, keys it")
    if len(name) > MAX_NAME or any(ord(c) < 32 for c in name):
        raise ValueError(f"benchmark name must be at most {MAX_NAME} printable characters")
    check_meta(submission_meta)
    submission, out = Path(submission), Path(out)
    config = EvalConfig(mode=MODE, metrics=registry.select(metrics, MODE), lse_crop=lse_crop,
                        limits=limits or SubmissionLimits(), **options)
    face_config = face_config or FaceConfig(fit_3dmm=False)
    specs = [registry.get(n) for n in config.metrics]
    paths = WeightPaths(**{**(weight_paths or {}), **{k: v for k, v in dict(
        syncnet=syncnet_path, s3fd=s3fd_path, sync_expert=sync_expert).items() if v}})
    weights, skipped_metric = plan_weights(specs, config, paths, metrics)
    protocols = protocols_for(specs, config, weights, extra=tracking_protocol(face_config))

    accepted, skipped, names = discover_videos(submission, config.limits)
    if not names:
        raise ValueError(f"{submission}: no video files ({', '.join(_extensions())}) in the folder")
    active = tuple(s.name for s in specs if s.name not in skipped_metric)
    tasks = [FreeTask(v, config, weights, active, face_config) for v in accepted]
    n_expected = len({s["clip_id"] for s in skipped} | {v.clip_id for v in accepted})
    log.info("reference-free: %d video file(s), %d accepted, metrics %s", len(names), len(accepted),
             ", ".join(active) or "none")

    with Executor(scheduler, n_workers, n_tasks=len(tasks)) as executor, one_thread():
        scores = score_all(executor, score_free_video, tasks, progress, desc="eval (reference-free)")
    skipped += failed_records(scores, {v.clip_id: v.rel_path for v in accepted})
    entries = merge_entries(specs, scores, config, protocols, weights, skipped_metric, None, n_expected,
                            count_skips(skipped))
    key = submission_set_sha256(name, names)
    benchmark = {"name": name, "reference_shards_sha256": key, "submission_set_sha256": key,
                 "reference": "none (reference-free)", "n_files": len(names)}
    return write_results(out, specs=specs, scores=scores, accepted=accepted, skipped=skipped, config=config,
                         weights=weights, entries=entries, benchmark=benchmark, submission_meta=submission_meta,
                         n_expected=n_expected)


def _extensions():
    from .submission import VIDEO_EXTENSIONS

    return VIDEO_EXTENSIONS


__all__ = ["evaluate_reference_free", "submission_set_sha256", "tracking_protocol", "MODE"]
