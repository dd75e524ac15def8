"""Where an inline prep run's CPU goes: thread CPU time of prep's main steps, as shares of the run's CPU.

    python bench/prep_cpu_breakdown.py [--clips DIR]

Runs ``run_prep(scheduler="inline")`` over the clips twice in this process (the first run warms imports and
models, untimed) and times the second. Each step listed in ``STEPS`` is wrapped to add up its calling thread's
CPU time (``time.thread_time``), whichever thread runs it; steps nest (``FaceTracker.track`` includes
``DlibBackend.landmarks``), so the shares do not add up to 100 %. What no step covers (FFmpeg's decoding in the
decoder thread, Python between the steps) is the rest of the process's CPU. CPU time per call grows when both
cores are busy (shared caches, hyper-threads): compare shares within a run, not milliseconds across machines.
"""
from __future__ import annotations

import argparse
import collections
import functools
import importlib
import resource
import shutil
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

STEPS = [  # "module:Class.method" or "module:.function" (then rebound wherever prep imported it by name)
    "prep.faces.tracking:FaceTracker.track", "prep.faces.backends:DlibBackend.landmarks",
    "prep.faces.backends:DlibBackend.detect", "prep.faces.tracking:FaceTracker._detect_roi",
    "prep.faces.align:.similarity_from_landmarks", "prep.faces.tracking:.appearance",
    "prep.faces.scans:View.region", "prep.shots:ShotDetector.feed", "prep.frames:YUVFrame.small_bgr",
    "prep.frames:.convert_ahead", "prep.frames:YUVFrame._convert", "prep.faces.tracking:FaceTracker.crop",
    "prep.shards:.encode_crop", "prep.qa:.blur_score", "prep.finalize:.finalize_clip", "prep.threedmm:.fit_clip",
    "prep.shards:.frames_table", "prep.job:.write_outputs",
]

cpu = collections.Counter()
calls = collections.Counter()


def _timed(f, name):
    @functools.wraps(f)
    def wrapper(*a, **k):
        t = time.thread_time()
        try:
            return f(*a, **k)
        finally:
            cpu[name] += time.thread_time() - t
            calls[name] += 1
    return wrapper


def instrument(steps=STEPS) -> None:
    import prep.job  # noqa: F401 - loads the modules that import the steps by name
    import prep.pipeline  # noqa: F401
    import prep.tasks  # noqa: F401

    for spec in steps:
        mod, path = spec.split(":")
        owner_name, name = path.split(".")
        owner = getattr(importlib.import_module(mod), owner_name) if owner_name else importlib.import_module(mod)
        f = getattr(owner, name)
        w = _timed(f, path.lstrip("."))
        setattr(owner, name, w)
        if not owner_name:
            for m in list(sys.modules.values()):
                if getattr(m, "__name__", "").startswith("prep") and getattr(m, name, None) is f:
                    setattr(m, name, w)


def _process_cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--clips", default=str(REPO.parent / "shared" / "data" / "videos"))
    args = ap.parse_args()
    instrument()
    from prep.config import PrepConfig
    from prep.job import run_prep

    src = Path(tempfile.mkdtemp(prefix="tb-cpu-in-"))
    for p in sorted(Path(args.clips).glob("*.mp4")):
        (src / p.name).symlink_to(p.resolve())
    out = Path(tempfile.mkdtemp(prefix="tb-cpu-out-"))
    try:
        run_prep(src, out / "warm", PrepConfig(), scheduler="inline", progress=False)
        cpu.clear()
        calls.clear()
        w0, c0 = time.perf_counter(), _process_cpu()
        frames = run_prep(src, out / "timed", PrepConfig(), scheduler="inline", progress=False).frames
        wall, total = time.perf_counter() - w0, _process_cpu() - c0
    finally:
        shutil.rmtree(out, ignore_errors=True)
        shutil.rmtree(src, ignore_errors=True)
    print(f"{frames} frames, {wall:.2f} s wall, {total:.2f} CPU-s ({1000 * total / frames:.2f} CPU-ms/frame, "
          f"{total / wall:.2f} cores busy)")
    print(f"{'share':>6} {'ms/frame':>9} {'calls':>6} {'ms/call':>8}  step")
    for name, t in cpu.most_common():
        print(f"{100 * t / total:5.1f}% {1000 * t / frames:9.2f} {calls[name]:6d} {1000 * t / calls[name]:8.3f}  {name}")


if __name__ == "__main__":
    main()
