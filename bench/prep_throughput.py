"""Prep throughput on the shared clips, as ratios against decode-only measured in the same run.

    python bench/prep_throughput.py --json prep_bench.json          # the documented command (~15 min idle)

Each measurement is repeated and interleaved with a decode-only pass over the same files (decode, run,
decode, run, ...), so machine load hits both alike; a ratio is taken per adjacent pair and reported as
the median with a bootstrap 95 % interval over the pairs (and the range). CPU seconds per frame count
every thread and child process (FFmpeg's frame threads, Dask workers).

* ``decode_only``: ``prep.media.iter_frames`` (its defaults: 16-frame chunks, RGB) over the clips, in this
  process with glibc's allocator as is -- the reference of the issue's goals; ``decode_only_tuned_malloc``:
  the same decode in a fresh process after ``keep_freed_memory()`` (as prep's processes run), i.e. how
  far the reference is from the decoder's floor (start-up of that process included).
* ``inline_steady``: ``run_prep(scheduler="inline")`` in this process after a warm-up (models loaded):
  decode, shots, face tracking, crops + JPEG, mel/MFCC, 3DMM, QA, shard writing. Goal >= 0.6x.
* ``process``: the whole ``talkbench prep IN OUT --scheduler inline --no-progress`` process, start-up
  included (the acceptance check). Goal >= 0.5x.
* ``dask``: a 2-worker LocalCluster (``--workers``) on >= 5 minutes of video (the clips repeated under
  distinct names), start-up included, frames/s per core. Goal >= 0.5x.
* ``process_<clip>``: the whole process on each clip alone, against decode-only of that clip: the ratio
  depends on the clip, since decoding gets cheaper with resolution and most of prep's per-frame work (one
  landmark fit per frame, the crop, its JPEG) does not.
* ``per_frame_detection`` (``--baseline``): inline with the detector on every frame.

Every mode also reports frames per CPU-second against decode-only's (``cpu_ratio_vs_decode_only``): the
decode-only process keeps ~1.5 cores busy (FFmpeg's frame threads), so the wall ratio per core of a job
that fills every core compares one core's work with ~1.5 cores'; the CPU ratio compares like with like.
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from prep import media  # noqa: E402
from prep.config import PrepConfig  # noqa: E402
from prep.faces import FaceConfig  # noqa: E402
from prep.job import run_prep  # noqa: E402


def _cpu() -> float:
    ch = resource.getrusage(resource.RUSAGE_CHILDREN)
    return time.process_time() + ch.ru_utime + ch.ru_stime


def timed(fn) -> dict:
    w0, c0 = time.perf_counter(), _cpu()
    frames = fn()
    return {"frames": frames, "wall": time.perf_counter() - w0, "cpu": _cpu() - c0}


_DECODE = """
import json, sys, time
sys.path.insert(0, sys.argv[1])
from prep import media
from talkbase.threads import keep_freed_memory
if sys.argv[2] == "tuned":
    keep_freed_memory()
w0, c0, n = time.perf_counter(), time.process_time(), 0
for p in sys.argv[3:]:
    for ch in media.iter_frames(p):
        n += len(ch.frames)
print(json.dumps({"frames": n, "wall": time.perf_counter() - w0, "cpu": time.process_time() - c0}))
"""


def decode_only(paths, tuned: bool = False) -> dict:
    """``iter_frames`` over ``paths`` in a fresh process (glibc's allocator as is, or tuned): its own timing
    of the decode loop (interpreter start-up and imports excluded)."""
    r = subprocess.run([sys.executable, "-c", _DECODE, str(REPO), "tuned" if tuned else "plain", *map(str, paths)],
                       capture_output=True, text=True, check=True)
    return json.loads(r.stdout.strip().splitlines()[-1])


def inline(src, cfg) -> int:
    out = Path(tempfile.mkdtemp(prefix="tb-bench-"))
    try:
        return run_prep(src, out / "o", cfg, scheduler="inline", progress=False).frames
    finally:
        shutil.rmtree(out, ignore_errors=True)


def dask(src, cfg, workers) -> int:
    out = Path(tempfile.mkdtemp(prefix="tb-bench-"))
    try:
        return run_prep(src, out / "o", cfg, n_workers=workers, progress=False).frames
    finally:
        shutil.rmtree(out, ignore_errors=True)


def process(src, frames: int) -> int:
    out = Path(tempfile.mkdtemp(prefix="tb-bench-"))
    try:
        r = subprocess.run([sys.executable, "-m", "talkbench.cli", "prep", str(src), str(out / "o"), "--scheduler",
                            "inline", "--no-progress"], capture_output=True, text=True,
                           env=dict(os.environ, PYTHONPATH=str(REPO)))
        if r.returncode != 0:
            raise RuntimeError(r.stderr)
        return frames
    finally:
        shutil.rmtree(out, ignore_errors=True)


def bootstrap(x, n=10_000, seed=0) -> list[float]:
    x = np.asarray(x, float)
    if len(x) < 2:
        return [float(x[0])] * 2 if len(x) else [float("nan")] * 2
    med = np.median(np.random.default_rng(seed).choice(x, (n, len(x))), axis=1)
    return [float(np.percentile(med, 2.5)), float(np.percentile(med, 97.5))]


def paired(name, fn, base, repeats, res, per_core=1):
    """``repeats`` x (decode-only, fn) back to back; ratios of frame rates per pair. ``base()`` returns its
    own timing dict; ``fn`` is timed here."""
    runs, bases = [], []
    for i in range(repeats):
        bases.append(base())
        runs.append(fn() if getattr(fn, "timed", False) else timed(fn))
        print(f"  {name} {i + 1}/{repeats}: {runs[-1]['frames'] / runs[-1]['wall'] / per_core:.1f} fps/core vs "
              f"decode-only {bases[-1]['frames'] / bases[-1]['wall']:.1f} fps", file=sys.stderr, flush=True)
    ratios = [(r["frames"] / r["wall"] / per_core) / (b["frames"] / b["wall"]) for r, b in zip(runs, bases)]
    # frames per CPU-second against decode-only's (which keeps ~1.5 cores busy with its frame threads)
    cpu_ratios = [(b["cpu"] / b["frames"]) / (r["cpu"] / r["frames"]) for r, b in zip(runs, bases)]
    res[name] = {"ratio_vs_decode_only": float(np.median(ratios)), "ratio_ci95": bootstrap(ratios),
                 "cpu_ratio_vs_decode_only": float(np.median(cpu_ratios)), "cpu_ratio_ci95": bootstrap(cpu_ratios),
                 "ratio_range": [float(min(ratios)), float(max(ratios))], "ratios": ratios,
                 "fps_per_core": float(np.median([r["frames"] / r["wall"] / per_core for r in runs])),
                 "decode_only_fps": float(np.median([b["frames"] / b["wall"] for b in bases])),
                 "cpu_ms_per_frame": float(np.median([1000 * r["cpu"] / r["frames"] for r in runs])),
                 "decode_only_cpu_ms_per_frame": float(np.median([1000 * b["cpu"] / b["frames"] for b in bases])),
                 "frames": runs[0]["frames"], "repeats": repeats}


def link_inputs(paths, copies: int) -> Path:
    src = Path(tempfile.mkdtemp(prefix="tb-bench-in-"))
    for k in range(copies):
        for p in paths:
            (src / f"{p.stem}-{k:02d}{p.suffix}").symlink_to(p.resolve())
    return src


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--clips", default=str(REPO.parent / "shared" / "data" / "videos"))
    ap.add_argument("--repeats", type=int, default=5, help="pairs for the in-process ratio")
    ap.add_argument("--process-repeats", type=int, default=3)
    ap.add_argument("--dask-repeats", type=int, default=2)
    ap.add_argument("--per-clip-repeats", type=int, default=2, help="pairs per clip for process_<clip>")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--dask-minutes", type=float, default=5.0, help="video in the Dask job")
    ap.add_argument("--skip", default="", help="comma list of inline,process,per_clip,dask to skip")
    ap.add_argument("--baseline", action="store_true", help="also the per-frame-detection baseline")
    ap.add_argument("--json", help="write the numbers here too")
    ap.add_argument("--bfm", default=str(REPO.parent / "shared" / "models" / "3ddfa_bfm"), help="3DMM basis folder")
    args = ap.parse_args()
    os.environ.setdefault("TALKBENCH_3DDFA_DIR", args.bfm)
    skip = set(filter(None, args.skip.split(",")))
    paths = sorted(Path(args.clips).glob("*.mp4"))
    if not paths:
        sys.exit(f"no .mp4 clips in {args.clips}")
    src = link_inputs(paths, 1)
    cfg = PrepConfig()
    res = {"clips": [p.name for p in paths], "cpu_count": os.cpu_count(), "loadavg_start": os.getloadavg()}
    # warm-up (untimed): imports, model loading, first decoder set-up -- paid once per process, so
    # inline_steady is steady state; the process and Dask runs pay their own start-up inside the timing
    warm = Path(tempfile.mkdtemp(prefix="tb-bench-warm-"))
    media.write_video(warm / "w.mp4", media.read_frames(paths[-1], stop=30), media.read_audio(paths[-1], 30))
    inline(warm, cfg)  # note: this tunes glibc's allocator in this process (prep does in its processes)
    shutil.rmtree(warm, ignore_errors=True)
    base = lambda: decode_only(paths)  # noqa: E731
    n_frames = base()["frames"]
    tuned = lambda: decode_only(paths, tuned=True)  # noqa: E731
    tuned.timed = True
    paired("decode_only_tuned_malloc", tuned, base, args.repeats, res)
    if "inline" not in skip:
        paired("inline_steady", lambda: inline(src, cfg), base, args.repeats, res)
    if "process" not in skip:
        paired("process", lambda: process(src, n_frames), base, args.process_repeats, res)
    if "per_clip" not in skip:
        for p in paths:
            one = link_inputs([p], 1)
            n_one = decode_only([p])["frames"]
            paired(f"process_{p.stem}", lambda: process(one, n_one), lambda: decode_only([p]),  # noqa: B023
                   args.per_clip_repeats, res)
            shutil.rmtree(one, ignore_errors=True)
    if "dask" not in skip:
        copies = max(1, int(np.ceil(args.dask_minutes * 60 * media.FPS / n_frames)))
        big = link_inputs(paths, copies)
        res["dask_video_minutes"] = copies * n_frames / media.FPS / 60
        paired("dask", lambda: dask(big, cfg, args.workers), base, args.dask_repeats, res, per_core=args.workers)
        shutil.rmtree(big, ignore_errors=True)
    if args.baseline:
        per_frame = PrepConfig(faces=FaceConfig(detect_every=1, full_detect_every=1))
        paired("per_frame_detection", lambda: inline(src, per_frame), base, 1, res)
    shutil.rmtree(src, ignore_errors=True)
    res["loadavg_end"] = os.getloadavg()
    for k, v in res.items():
        if isinstance(v, dict):
            print(f"{k:22s} {v['ratio_vs_decode_only']:.3f}x decode-only (95% CI {v['ratio_ci95'][0]:.3f}-"
                  f"{v['ratio_ci95'][1]:.3f}, range {v['ratio_range'][0]:.3f}-{v['ratio_range'][1]:.3f}, "
                  f"n={v['repeats']}); {v['fps_per_core']:.1f} fps/core vs {v['decode_only_fps']:.1f}; "
                  f"{v['cpu_ms_per_frame']:.1f} vs {v['decode_only_cpu_ms_per_frame']:.1f} CPU-ms/frame, frames per "
                  f"CPU-s {v['cpu_ratio_vs_decode_only']:.3f}x decode-only's (95% CI {v['cpu_ratio_ci95'][0]:.3f}-"
                  f"{v['cpu_ratio_ci95'][1]:.3f})")
        else:
            print(f"{k:22s} {v}")
    if args.json:
        Path(args.json).write_text(json.dumps(res, indent=2))


if __name__ == "__main__":
    main()
