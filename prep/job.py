"""``talkbench prep``: a video collection → Parquet shards, fanned out over Dask distributed.

One task per source video (a long video becomes segment tasks plus a finalising task). A source with
hard cuts becomes one clip per shot (:mod:`prep.shots`). Each clip commits its own part files under
``OUT/.work/<config hash>/``; when every source is done the shards are rebuilt from the parts in
``clip_id`` order, so the output is byte-identical whatever the worker count, completion order,
interruptions (SIGKILL included) or retries.

Accounting: every *shot* of every input ends up as exactly one clip row or one failure row; an input that
fails before its shots are known (unreadable, no audio, too short, …) counts as one shot. So
``clips + failures = shots`` and ``shots = inputs`` when no input has a cut (checked at the end of
every job); the summary and the manifest report both.
"""
from __future__ import annotations

import logging
import shutil
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from talkbase.executor import Executor
from talkbase.fileio import atomic_write_json, sha256_file

from . import media
from .config import PrepConfig
from .errors import TalkbenchError
from .failures import record_is_transient
from .finalize import done_clips, done_failures, done_units
from .inputs import InputItem, collect_inputs_report
from .lock import OutputLock
from .output import MANIFEST, NotAPrepOutput, PrepOutput
from .pipeline import WorkDir, source_stat
from .schema import SCHEMA_VERSION
from .splits import SPLIT_RULE
from .syncqa import manifest_entry, scorer_identity
from .shards import iter_parquet_tables, rows_to_table, write_shard_set, write_table_atomic
from .tasks import run_tasks, start_clip, warm_process

log = logging.getLogger(__name__)


class PrepUsageError(TalkbenchError):
    """The job cannot start: no inputs, or OUT holds output of a different config."""


@dataclass
class PrepSummary:
    out_dir: str
    inputs: int  # input files
    shots: int  # units accounted for: one per shot (an input that failed before shot splitting: one)
    ok: int
    failed: int
    frames: int
    resumed: int  # clips already committed by an earlier run and skipped
    seconds: float
    config_hash: str
    failures: list[dict] = field(default_factory=list)
    transient: int = 0  # failures of the environment (disk full, memory, a killed worker): not committed
    skipped_files: int = 0  # files a directory scan passed over (not videos)
    splits: dict = field(default_factory=dict)  # {split: clips}

    def line(self) -> str:
        failed = f"{self.failed} failed" + (f" ({self.transient} transient: retried on the next run)"
                                            if self.transient else "")
        skipped = f", {self.skipped_files} files skipped (not video)" if self.skipped_files else ""
        shots = f"{self.shots} shots, " if self.shots != self.inputs else ""
        return f"{self.ok} ok, {failed} ({self.inputs} inputs{skipped}, {shots}{self.frames} frames, " \
               f"{self.resumed} resumed) in {self.seconds:.1f}s -> {self.out_dir}"

    def to_dict(self) -> dict:
        return asdict(self)


# ---------------------------------------------------------------- the job

def _prepare_out(out: Path, cfg: PrepConfig, overwrite: bool) -> WorkDir:
    chash = cfg.content_hash()
    work_parent = out / ".work"
    others = [p.name for p in work_parent.iterdir() if p.is_dir() and p.name != chash] if work_parent.exists() else []
    try:
        old = PrepOutput.open(out).config_hash
    except NotAPrepOutput:
        old = None
    if (others or (old and old != chash)) and not overwrite:
        theirs = old if old and old != chash else others[0]
        raise PrepUsageError(
            f"{out} already holds prep output made with a different config "
            f"({theirs} != {chash}); use a new output directory, or --overwrite to replace it")
    if overwrite:
        for name in others:
            shutil.rmtree(work_parent / name)
        if old and old != chash:
            for sub in ("clips", "frames"):
                shutil.rmtree(out / sub, ignore_errors=True)
            (out / "failures.parquet").unlink(missing_ok=True)
            (out / MANIFEST).unlink(missing_ok=True)
    work = WorkDir(work_parent / chash)
    for sub in ("parts", "done", "segments"):
        (work.root / sub).mkdir(parents=True, exist_ok=True)
    atomic_write_json(work.root / "config.json", cfg.content_dict())
    return work


def _check_models(cfg: PrepConfig, fetch: bool = True) -> None:
    """Fail fast, before any task runs, when a model the config needs is absent (the 3DMM basis is fetched
    on first use when ``fetch``: :func:`prep.threedmm.ensure_bfm`)."""
    if cfg.faces.fit_3dmm:
        from talkbase.weights import WeightsMismatch, WeightsNotFound

        from .threedmm import ensure_bfm

        try:
            ensure_bfm(fetch)
        except (WeightsNotFound, WeightsMismatch) as e:
            raise PrepUsageError(f"3DMM basis unavailable: {e}\nOr run without the 3DMM stage (--no-3dmm).") from e


def _dedupe(items: list[InputItem]) -> tuple[list[InputItem], list[dict]]:
    """Unique, safe clip ids; a duplicate or an id that would leave a folder (``../x``, ``/abs``, ``a\\b``:
    eval and sample refuse those, so the clip could never be scored) is a failure row."""
    from talkbase.paths import unsafe_relative_id

    seen: dict[str, InputItem] = {}
    dup_failures = []
    for it in sorted(items, key=lambda i: (i.clip_id, i.source_path)):
        bad = unsafe_relative_id(it.clip_id)
        if bad:
            dup_failures.append({"status": "failed", "clip_id": it.clip_id, "source_path": it.source_path,
                                 "stage": "inputs", "error_type": "UnsafeClipId",
                                 "message": f"clip_id {it.clip_id!r}: {bad}; give it a relative id without '..'"})
        elif it.clip_id in seen:
            dup_failures.append({"status": "failed", "clip_id": it.clip_id, "source_path": it.source_path,
                                 "stage": "inputs", "error_type": "DuplicateClipId",
                                 "message": f"clip_id {it.clip_id!r} already used by {seen[it.clip_id].source_path}"})
        else:
            seen[it.clip_id] = it
    return list(seen.values()), dup_failures


def _is_committed(work: WorkDir, it: InputItem, retry_failed: bool = False) -> dict | None:
    """The clip's commit record when a rerun may trust it; None to (re)process it. An environment failure
    (also one an older version committed) is never trusted; with ``retry_failed`` no failure is."""
    done = work.read_done(it.key)
    if not done or done.get("source_path") != it.source_path:
        return None
    if done.get("status") == "failed" and (retry_failed or record_is_transient(done)):
        return None
    try:
        if done.get("source_stat") != source_stat(it.source_path):
            return None  # the file changed since: redo it
    except OSError:
        return None
    for c in done_clips(done):
        if not (work.part(c["part"], "frames").exists() and work.part(c["part"], "clips").exists()):
            return None
    return done


def _versions() -> dict:
    import importlib.metadata as md

    out = {"python": sys.version.split()[0]}
    for pkg in ("talkbench", "numpy", "pyarrow", "av", "dlib-bin", "dlib", "scenedetect", "dask", "distributed",
                "python_speech_features", "opencv-python-headless", "pillow", "scipy"):
        try:
            out[pkg] = md.version(pkg)
        except md.PackageNotFoundError:
            pass
    return out


def _with_split(table, it: InputItem):
    """A committed clip part with this run's split / speaker (splits are not content: ``--splits`` may change
    them without reprocessing)."""
    import pyarrow as pa

    for name in ("split", "speaker"):
        i = table.schema.get_field_index(name)
        table = table.set_column(i, table.schema.field(name),
                                 pa.array([getattr(it, name)] * table.num_rows, type=pa.string()))
    return table


def _split_counts(splits) -> dict:
    out: dict[str, int] = {}
    for s in splits:
        out[s or "none"] = out.get(s or "none", 0) + 1
    return dict(sorted(out.items()))


def write_outputs(out: Path, work: WorkDir, items: list[InputItem], failures: list[dict],
                  cfg: PrepConfig, n_inputs: int | None = None, units: int | None = None,
                  sync_unavailable: str | None = None) -> dict:
    """Rebuild the shard set and manifest from committed parts (deterministic: sorted by clip_id).

    ``items``: the (unique) inputs whose committed clips to write; ``failures``: every failure row (shots and
    inputs); ``n_inputs``: input files; ``units``: the shots the rows must account for. Splits: the default
    rule runs over the sources with a committed clip, and every shot of a source gets its source's split."""
    from .splits import assign_splits

    entries = sorted(((c, it) for it in items for c in done_clips(work.read_done(it.key))),
                     key=lambda e: (e[0]["clip_id"], e[1].source_path))
    ok, seen, failures = [], {}, list(failures)
    for c, it in entries:  # a shot id equal to another input's clip id: the later one is a failure row
        if c["clip_id"] in seen:
            failures.append({"source_path": it.source_path, "clip_id": c["clip_id"], "stage": "inputs",
                             "error_type": "DuplicateClipId",
                             "message": f"clip_id {c['clip_id']!r} already used by {seen[c['clip_id']]}"})
            continue
        seen[c["clip_id"]] = it.source_path
        ok.append((c, it))
    sources = sorted({it.key: it for _, it in ok}.values(), key=lambda it: (it.clip_id, it.source_path))
    with_split = {it.key: s for it, s in zip(sources, assign_splits(sources))}
    ok = [(c, with_split[it.key]) for c, it in ok]

    def tables(kind):  # streamed in small pieces: a 2-hour clip's part never sits in memory whole
        for c, it in ok:
            for t in iter_parquet_tables(work.part(c["part"], kind)):
                yield _with_split(t, it) if kind == "clips" else t

    total_frames = sum(c["num_frames"] for c, _ in ok)
    clips = write_shard_set(tables("clips"), out / "clips", "clips", len(ok), cfg.clips_per_shard)
    frames = write_shard_set(tables("frames"), out / "frames", "frames", total_frames, cfg.frames_per_shard)
    fail_rows = sorted(({**{k: f.get(k) for k in ("source_path", "clip_id", "stage", "error_type", "message")},
                         "transient": bool(f.get("transient"))}
                        for f in failures), key=lambda r: (r["source_path"], r["clip_id"] or ""))
    fail_table = rows_to_table(fail_rows, "failures")
    write_table_atomic(fail_table, out / "failures.parquet", "failures")
    manifest = {
        "schema_version": SCHEMA_VERSION, "created_by": "talkbench prep",
        "talkbench_version": _versions().get("talkbench", "0"),
        "config": cfg.content_dict(), "config_hash": cfg.content_hash(),
        "crop_codec": cfg.crop_codec, "fps": media.FPS, "sample_rate": media.SAMPLE_RATE,
        "versions": _versions(),
        "counts": {"inputs": len(items) if n_inputs is None else n_inputs,
                   "shots": len(ok) + len(fail_rows) if units is None else units,
                   "clips": len(ok), "failed": len(fail_rows),
                   "transient": sum(1 for r in fail_rows if r["transient"]), "frames": total_frames,
                   "qa_pass": sum(1 for c, _ in ok if c.get("qa_pass")),
                   "splits": _split_counts(it.split for _, it in ok)},
        "split_rule": SPLIT_RULE,
        "shots": {"detector": "scenedetect ContentDetector on the decoded 25 fps frames" if cfg.shots.enabled
                  else "disabled", **cfg.shots.to_dict()},
        "sync_qa": manifest_entry(cfg.sync, sync_unavailable),
        "shards": {"clips": clips, "frames": frames,
                   "failures": [{"path": "failures.parquet", "rows": fail_table.num_rows,
                                 "sha256": sha256_file(out / "failures.parquet")}]},
    }
    atomic_write_json(out / MANIFEST, manifest)
    return manifest


def run_prep(inputs, out_dir, config: PrepConfig | None = None, *, recipe: str | None = None,
             scheduler: str | None = None, n_workers: int | None = None, threads_per_worker: int = 1,
             memory_limit="auto", progress: bool = True, overwrite: bool = False, retry_failed: bool = False,
             splits=None, root=None, host: str | None = None, dashboard_address: str | None = None,
             fetch_models: bool = True, sync_scorer=None, sync_unavailable: str | None = None) -> PrepSummary:
    """Prepare ``inputs`` (a directory, a .txt/.csv list, a corpus dir with ``recipe``, or a list of
    ``InputItem``) into shards under ``out_dir``. ``scheduler``: None (a LocalCluster on 127.0.0.1 sized to
    the machine; ``host`` / ``dashboard_address`` to listen elsewhere on purpose), a ``tcp://host:port``
    address or Client, or ``"inline"`` (this process, serially).

    Resumable: clips committed by an earlier run with the same config are not redone. Environment failures
    (disk full, permissions, memory, a killed worker) are reported but never committed, so a rerun retries
    them; ``retry_failed`` re-runs committed content failures too. ``splits``: ``{clip_id: split}`` or a
    ``clip_id,split`` file; clips without one get the default rule (:mod:`prep.splits`; every shot of a source
    shares its split). ``root``: the folder list-file clip ids are relative to (default: the deepest folder
    holding every listed file). ``fetch_models``: fetch the 3DMM basis on first use (``talkbench models fetch
    3ddfa``; needs the package index). ``sync_scorer``: a :class:`prep.syncqa.SyncScorer` (e.g.
    ``evalkit.sync_qa.SyncNetQA``) for the sync QA columns; its identity joins the config hash. Without one the
    columns are null and the manifest's ``sync_qa.reason`` says why (``sync_unavailable`` when given).
    Only one run writes ``out_dir`` at a time (:mod:`prep.lock`)."""
    from .splits import assign_splits, read_splits_file

    t0 = time.perf_counter()
    cfg = config or PrepConfig()
    from dataclasses import replace as _replace

    cfg = cfg.replace(sync=_replace(cfg.sync, scorer=scorer_identity(sync_scorer)))
    out = Path(out_dir)
    skipped_files: list[str] = []
    if isinstance(inputs, (list, tuple)):
        items = list(inputs)
    else:
        items, skipped_files = collect_inputs_report(inputs, recipe, root)
    if not items:
        raise PrepUsageError(f"no video inputs found in {inputs}"
                             + (f" ({len(skipped_files)} other files, e.g. {skipped_files[0]})" if skipped_files else ""))
    if splits is not None and not isinstance(splits, dict):
        splits = read_splits_file(splits)
    items = assign_splits(items, splits, default=False)  # the default rule runs over the clips that succeed
    _check_models(cfg, fetch_models)
    if scheduler in ("inline", "synchronous"):
        warm_process(cfg.faces.backend, cfg.faces.detector)
    out.mkdir(parents=True, exist_ok=True)
    with OutputLock(out):
        return _run_locked(items, out, cfg, t0, skipped_files, scheduler=scheduler, n_workers=n_workers,
                           threads_per_worker=threads_per_worker, memory_limit=memory_limit, progress=progress,
                           overwrite=overwrite, retry_failed=retry_failed, host=host,
                           dashboard_address=dashboard_address, sync_scorer=sync_scorer,
                           sync_unavailable=sync_unavailable)


def _run_locked(items, out: Path, cfg: PrepConfig, t0: float, skipped_files, *, scheduler, n_workers,
                threads_per_worker, memory_limit, progress, overwrite, retry_failed, host,
                dashboard_address, sync_scorer, sync_unavailable) -> PrepSummary:
    work = _prepare_out(out, cfg, overwrite)
    unique, failures = _dedupe(items)
    todo, resumed = [], 0
    for it in unique:
        if _is_committed(work, it, retry_failed):
            resumed += 1
        else:
            todo.append(it)
            done = work.read_done(it.key)
            if done and done.get("status") == "failed":  # retried: its old verdict must not come back
                work.done(it.key).unlink()
    log.info("prep: %d inputs, %d to process, %d already committed (config %s)",
             len(items), len(todo), resumed, cfg.content_hash())
    transient: list[dict] = []  # environment failures (not committed: a rerun retries them)
    stats = {"ok": 0, "failed": 0, "frames": 0}
    bar = None
    if progress and todo:
        from tqdm.auto import tqdm

        bar = tqdm(total=len(todo), unit="clip", desc="prep", dynamic_ncols=True, file=sys.stderr)

    def on_done(it: InputItem, res: dict):
        if res.get("status") == "ok":
            stats["ok"] += 1
            stats["frames"] += res["num_frames"]
        else:
            stats["failed"] += 1
            if not work.read_done(it.key):
                transient.append(dict(res, transient=True))
            log.info("failed: %s [%s] %s", it.source_path, res.get("stage"), res.get("message"))
        if bar is not None:
            el = time.perf_counter() - t0
            bar.set_postfix(ok=stats["ok"], failed=stats["failed"],
                            frames_per_s=f"{stats['frames'] / max(el, 1e-9):.0f}")
            bar.update(1)

    if todo:
        executor = Executor(scheduler, n_workers, threads_per_worker, memory_limit, n_tasks=len(todo),
                            dashboard=dashboard_address, **({"host": host} if host else {}))
        if executor.client is not None:  # every worker loads its models (in a thread) while tasks are queued
            executor.client.run(warm_process, cfg.faces.backend, cfg.faces.detector)
        if executor.dashboard_link and bar is not None:
            bar.write(f"Dask dashboard: {executor.dashboard_link}", file=sys.stderr)
        try:
            run_tasks(executor, todo, cfg, str(work.root), on_done, sync_scorer)
        finally:
            executor.close()
            if bar is not None:
                bar.close()
    retried = {t["clip_id"] for t in transient}  # their earlier records are replaced by this run's
    units = len(failures) + len(transient)  # duplicates and executor failures: one row each
    for it in unique:
        if it.clip_id in retried:
            continue
        d = work.read_done(it.key)
        failures.extend(done_failures(d))
        units += done_units(d) if d else 0
    failures.extend(transient)
    manifest = write_outputs(out, work, unique, failures, cfg, len(items), units, sync_unavailable)
    c = manifest["counts"]
    if c["clips"] + c["failed"] != units:
        raise RuntimeError(f"accounting bug: {c['clips']} clips + {c['failed']} failures != {units} shots "
                           f"of {len(items)} inputs")
    return PrepSummary(str(out), len(items), units, c["clips"], c["failed"], c["frames"], resumed,
                       time.perf_counter() - t0, cfg.content_hash(),
                       [{k: f.get(k) for k in ("source_path", "stage", "message", "transient")} for f in failures],
                       transient=c["transient"], skipped_files=len(skipped_files), splits=c["splits"])


__all__ = ["run_prep", "PrepSummary", "PrepUsageError", "write_outputs", "start_clip"]
