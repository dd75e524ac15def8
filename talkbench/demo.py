"""``talkbench demo OUT``: the whole suite offline on a dataset it synthesizes itself.

synthesize (real face photo, audio-driven mouth) → prep (Dask) → train the sync expert, then the three tiny
reference models side by side on the cluster's workers (Diff2Lip-style diffusion, AttnWav2Lip, oneshot3dmm;
one torch thread each), each sampling its test clips when trained, while this process writes the ground
truth and the baselines: a reconstruction set (own audio) and a **cross** set (every test clip driven by the
next test clip's audio) → eval (``reconstruction`` and ``cross`` modes, with the in-domain sync score; two
submissions at a time on the same warm cluster) → leaderboard (one table per mode) → data card. Runs on 2
CPU cores in under 10 minutes with no network and no external weights (SyncNet / Inception official weights
are used when present; otherwise LSE is skipped and FID is computed uncalibrated and labelled so, as the
results say).
"""
from __future__ import annotations

import json
import logging
import shutil
import sys
import time
from pathlib import Path

log = logging.getLogger(__name__)

STAGES = ("synthesize", "prep", "train, sample, eval", "leaderboard", "card")
# the demo's training budget (steps of each reference model, and of the one sync expert both use): enough
# for the losses to fall and the models to beat mean-fill on the demo data, small enough for the 10-minute
# target on 2 cores (demo/README.md has the measured stage times)
DEMO_TRAIN_STEPS = 200
DEMO_SYNC_STEPS = 150
DEMO_FID_STRIDE = 10  # every 10th frame into FID (recorded in the protocol): CPU Inception is the slow part
DEMO_CSIM_STRIDE = 10  # every 10th face frame into dlib-CSIM (its ResNet is ~80 ms a face on one core)
DEMO_CPBD_STRIDE = 5  # every 5th face frame into CPBD
REFERENCE_MODELS = ("diff2lip", "attnwav2lip")
# one line per baseline: what it is, and why mouth LMD can reward it although nothing moves
BASELINE_NOTES = {
    "copy-reference": "baseline: the lower face of one fixed reference frame of the clip, pasted on every frame "
                      "(perfect identity, a still mouth); LMD centres the mouth landmarks and speech keeps the "
                      "mouth near-closed much of the time, so a still, mostly closed mouth is close on most frames "
                      "and scores a good LMD without any lip sync: read LMD beside the sync score",
    "mean-fill": "baseline: the dataset's per-pixel mean lower face on every frame (a blurred, half-closed "
                 "average mouth that follows nothing); LMD can still rank it well because an average closed "
                 "mouth is near the truth in pauses and on consonants, while sync stays at the floor",
    "source-video": "baseline (cross only): the clip's own video, untouched, with the other clip's audio muxed: real "
                    "frames whose mouth follows the wrong speech, the floor a cross-driven model must beat on sync",
}


def _stage(name: str, i: int) -> float:
    print(f"[{i + 1}/{len(STAGES)}] {name} ...", file=sys.stderr, flush=True)
    return time.perf_counter()


def cpu_seconds() -> float:
    """CPU time (user + system) of this process, its finished children and its live descendants (the Dask
    workers, which live through several stages)."""
    import resource

    import psutil

    own, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    total = own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime
    for child in psutil.Process().children(recursive=True):
        try:
            t = child.cpu_times()
            total += t.user + t.system
        except psutil.Error:  # exited meanwhile: counted once it is reaped
            pass
    return total


def _ground_truth_submission(prep_out: Path, clip_ids: list[str], out_dir: Path) -> Path:
    """The reference videos themselves, decoded at 25 fps and re-encoded (the best a model can do)."""
    from prep import media
    from prep.output import PrepOutput

    prep = PrepOutput.open(prep_out)
    for clip in prep.clips(clip_ids=clip_ids):
        decoded = media.decode_clip(prep.verified_source(clip))
        media.write_video(out_dir / f"{clip.clip_id}.mp4", decoded.frames, decoded.audio)
    return out_dir


def _prep_config():
    """The default prep config; without the 3DMM basis (academic licence, not bundled) the 3DMM stage is
    skipped, and the demo says so."""
    from prep.config import PrepConfig
    from prep.faces import FaceConfig
    from prep.threedmm import ensure_bfm
    from talkbase.weights import WeightsMismatch, WeightsNotFound

    try:
        ensure_bfm()  # fetched on first use, like `talkbench prep` (offline: the stage is skipped, as said)
        return PrepConfig()
    except (WeightsNotFound, WeightsMismatch) as e:
        print(f"    3DMM basis not available ({str(e).splitlines()[0][:120]}...): skipping the 3DMM stage. "
              "Set TALKBENCH_3DDFA_DIR or run `talkbench models fetch 3ddfa` to include it.", file=sys.stderr)
        return PrepConfig(faces=FaceConfig(fit_3dmm=False))


def run_demo(out, *, n_identities: int = 3, clips_per_identity: int = 2, seconds: float = 4.0,
             train_steps: int | None = None, sync_steps: int | None = None, seed: int = 0, workers: int | None = None,
             clean: bool = False) -> dict:
    """Run every stage into ``out``; returns the paths a user should look at."""
    from data_cards import write_card
    from leaderboard import build_leaderboard
    from prep.job import run_prep
    from prep.output import PrepOutput
    from talkbase.executor import Executor
    from talkbase.fileio import atomic_write_text

    from .demo_data import synthesize_dataset

    out = Path(out)
    if clean and out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True, exist_ok=True)
    timings, cpu, c0 = {}, {}, cpu_seconds()

    t = _stage("synthesize", 0)
    videos = out / "videos"
    synthesize_dataset(videos, n_identities=n_identities, clips_per_identity=clips_per_identity,
                       seconds=seconds, seed=seed)
    timings["synthesize"] = time.perf_counter() - t
    cpu["synthesize"] = cpu_seconds() - c0 - sum(cpu.values())

    results = out / "results"
    # one warm cluster for every stage from prep on: models load once per worker, and the three reference
    # models train side by side on its workers (one torch thread each) while this process scores the baselines
    with Executor(None, workers) as pool:
        t = _stage("prep", 1)
        shards = out / "shards"
        listing = videos / "speakers.csv"
        summary = run_prep(listing if listing.exists() else videos, shards, _prep_config(), scheduler=pool.client)
        print(f"    {summary.line()}", file=sys.stderr)
        timings["prep"] = time.perf_counter() - t
        cpu["prep"] = cpu_seconds() - c0 - sum(cpu.values())
        clips = PrepOutput.open(shards).clips()
        test_ids = sorted(c.clip_id for c in clips if c.split == "test") or sorted(c.clip_id for c in clips)[-2:]

        t = _stage("train, sample, eval", 2)
        checkpoints = _train_sample_evaluate(pool, shards, out, results, test_ids, train_steps or DEMO_TRAIN_STEPS,
                                             sync_steps or DEMO_SYNC_STEPS, seed)
        timings["train, sample, eval"] = time.perf_counter() - t
        cpu["train, sample, eval"] = cpu_seconds() - c0 - sum(cpu.values())

    t = _stage("leaderboard", 3)
    site = out / "site"
    build_leaderboard(results, site)
    timings["leaderboard"] = time.perf_counter() - t
    cpu["leaderboard"] = cpu_seconds() - c0 - sum(cpu.values())

    t = _stage("card", 4)
    card = write_card(shards)
    timings["card"] = time.perf_counter() - t
    cpu["card"] = cpu_seconds() - c0 - sum(cpu.values())

    where = {"site": str(site / "index.html"), "leaderboard_md": str(site / "leaderboard.md"),
             "shards": str(shards), "card": str(card), "results": str(results), "submissions": str(out / "submissions"),
             "checkpoints": {k: str(v) for k, v in checkpoints.items()},
             "timings_s": {k: round(v, 1) for k, v in timings.items()},
             "cpu_s": {k: round(v, 1) for k, v in cpu.items()}, "total_cpu_s": round(cpu_seconds() - c0, 1)}
    atomic_write_text(out / "demo_summary.json", json.dumps(where, indent=2))
    return where


def _train_sample_evaluate(pool, shards: Path, out: Path, results: Path, test_ids: list[str], steps: int,
                           sync_steps: int, seed: int) -> dict:
    """Train, sample and score everything, keeping both cores busy; returns {model: checkpoint}.

    The sync expert first, here (both crop models use it). Then every reference model trains and samples its
    test clips on a worker (one torch thread each, longest first) while this process writes the ground
    truth and the baselines and scores them inline. A model finished while every worker still trains is
    scored inline too; once a worker is free, the rest are scored on the cluster, two at a time (the workers
    score one submission's videos while this process merges another's). Inline and cluster scoring give the
    same numbers."""
    from concurrent.futures import ThreadPoolExecutor

    from refmodel.sync_training import train_sync_expert

    from .demo_oneshot import train_and_sample_oneshot

    runs, subs = out / "runs", out / "submissions"
    expert = runs / "sync_expert.pt"
    if not expert.exists():
        train_sync_expert(shards, expert, "tiny", steps=sync_steps, seed=seed, progress=True)
    futures = {name: pool.submit(train_and_sample_model, name, shards, runs, subs, test_ids, steps, expert, seed,
                                 key=f"demo-train-{name}") for name in REFERENCE_MODELS}
    futures["oneshot3dmm"] = pool.submit(train_and_sample_oneshot, shards, out, test_ids, seed=seed,
                                         key="demo-train-oneshot3dmm")
    print(f"    training {', '.join(futures)} on the workers; ground truth and baselines are written and "
          "scored here meanwhile", file=sys.stderr, flush=True)
    baselines = _baseline_submissions(shards, subs, test_ids)
    for name, note in BASELINE_NOTES.items():
        print(f"    {name}: {note}", file=sys.stderr)
    for item in sorted(baselines.items()):
        _evaluate(item, shards, results, expert, "inline")

    names = {f.key: name for name, f in futures.items()}
    n_workers = max(1, len(pool.client.scheduler_info()["workers"])) if pool.client is not None else 1
    checkpoints, jobs = {}, []
    with ThreadPoolExecutor(max_workers=2, thread_name_prefix="demo-eval") as threads:
        for future in pool.as_completed(list(futures.values())):
            name, result = names[future.key], future.result()
            if result is None:  # oneshot3dmm without 3DMM columns (said on stderr)
                continue
            checkpoints[name], sampled = result
            print(f"    {name}: trained and sampled", file=sys.stderr, flush=True)
            if sum(not f.done() for f in futures.values()) >= n_workers:  # every worker still trains
                for item in sorted(sampled.items()):
                    _evaluate(item, shards, results, expert, "inline")
            else:
                jobs += [threads.submit(_evaluate, item, shards, results, expert, pool.client)
                         for item in sorted(sampled.items())]
        for job in jobs:
            job.result()  # re-raises a scoring error
    return checkpoints


def train_and_sample_model(name: str, shards: Path, runs: Path, subs: Path, test_ids: list[str], steps: int,
                           expert: Path, seed: int) -> tuple[Path, dict]:
    """Train reference model ``name`` at ``tiny`` with ``steps`` and the shared expert, then sample its
    reconstruction and cross submissions; (checkpoint, {(mode, name): (kind, folder, note)})."""
    from refmodel import models
    from refmodel.sample import load_generator, sample_videos

    train = models.function(models.get(name).train)
    ckpt = train(shards, runs / name, config="tiny", steps=steps, seed=seed, sync_expert=expert, progress=False)
    gen = load_generator(ckpt)
    label = f"{gen.name}-tiny"
    note = f"{gen.name} reference model, tiny config, {gen.step} steps"
    sample_videos(ckpt, shards, subs / label, clip_ids=test_ids, seed=seed, generator=gen, progress=False)
    out = {("reconstruction", label): ("model", subs / label, note)}
    drivers = cross_drivers(test_ids)
    for clip, driver in drivers.items():
        sample_videos(ckpt, shards, subs / "cross" / label, clip_ids=[clip], audio_from=driver, seed=seed,
                      generator=gen, progress=False)
    if drivers:
        out[("cross", label)] = ("model", subs / "cross" / label, note)
    return ckpt, out


def _evaluate(item, shards: Path, results: Path, expert: Path, scheduler) -> None:
    """Score one demo submission ``((mode, name), (kind, folder, note))`` into ``results/mode/name``."""
    from evalkit.runner import evaluate

    (mode, name), (kind, sub_dir, note) = item
    evaluate(shards, sub_dir, results / mode / name, mode=mode, scheduler=scheduler,
             allow_uncalibrated_fid=True, sync_expert=expert, split="test", fid_stride=DEMO_FID_STRIDE,
             csim_stride=DEMO_CSIM_STRIDE, cpbd_stride=DEMO_CPBD_STRIDE,
             benchmark_name="talkbench demo: synthetic speakers, test split",
             submission_meta={"name": name, "model": name, "kind": kind,
                              "notes": f"talkbench demo (synthetic data){'; ' + note if note else ''}"})


def cross_drivers(test_ids: list[str]) -> dict[str, str]:
    """Every test clip driven by the next test clip's audio (id order, cyclic)."""
    ids = sorted(test_ids)
    return {c: ids[(i + 1) % len(ids)] for i, c in enumerate(ids)} if len(ids) > 1 else {}


def _baseline_submissions(shards: Path, subs: Path, test_ids: list[str]) -> dict:
    """{(mode, name): (kind, folder, note)}: ground truth, and each baseline in reconstruction and cross mode."""
    from refmodel.baselines import write_baseline

    out = {("reconstruction", "ground-truth"):
           ("ground-truth", _ground_truth_submission(shards, test_ids, subs / "ground-truth"), "")}
    drivers = cross_drivers(test_ids)
    for name in ("copy-reference", "mean-fill"):
        write_baseline(name, shards, subs / name, clip_ids=test_ids, progress=False)
        out[("reconstruction", name)] = ("baseline", subs / name, BASELINE_NOTES[name])
        for clip, driver in drivers.items():
            write_baseline(name, shards, subs / "cross" / name, clip_ids=[clip], audio_from=driver, progress=False)
        if drivers:
            out[("cross", name)] = ("baseline", subs / "cross" / name, BASELINE_NOTES[name])
    if drivers:
        out[("cross", "source-video")] = ("baseline", _source_video_submission(shards, drivers, subs / "cross" /
                                                                               "source-video"),
                                          BASELINE_NOTES["source-video"])
    return out


def _source_video_submission(prep_out: Path, drivers: dict[str, str], out_dir: Path) -> Path:
    """Each clip's own video (decoded at 25 fps) with its driver's audio muxed, cut to the shorter."""
    from prep import media
    from prep.output import PrepOutput
    from talkbase.timebase import SAMPLES_PER_FRAME

    prep = PrepOutput.open(prep_out)
    clips = {c.clip_id: c for c in prep.clips(clip_ids=sorted(set(drivers) | set(drivers.values())))}
    for clip_id, driver in drivers.items():
        own = media.decode_clip(prep.verified_source(clips[clip_id]))
        other = media.decode_clip(prep.verified_source(clips[driver]))
        n = min(own.num_frames, other.num_frames)
        media.write_video(out_dir / f"{clip_id}.mp4", own.frames[:n], other.audio[:n * SAMPLES_PER_FRAME])
    return out_dir
