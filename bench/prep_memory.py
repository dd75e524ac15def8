"""Peak memory per Dask worker while preparing one long video, against a short one of the same source.

    python bench/prep_memory.py [--minutes 3] [--segment-frames 1500]

Builds a long clip by looping a shared real clip (480p, with its audio at 48 kHz), runs ``run_prep`` on a one-worker
LocalCluster, samples the worker process' RSS every 50 ms, and prints the peak for the long clip and for
the 7 s source clip (the baseline). Bounded memory means the ratio stays near 1 however long the video.
"""
from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import psutil

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from prep import media  # noqa: E402
from prep.config import PrepConfig  # noqa: E402
from prep.job import run_prep  # noqa: E402


def make_long(src: Path, dst: Path, minutes: float, audio_rate: int = 48_000) -> Path:
    """``src`` looped to ``minutes``, its audio at ``audio_rate`` (48 kHz: as the shared clips and most
    real videos are, so prep resamples it, as it must for them)."""
    from prep.resample import resample_poly

    frames = media.read_frames(src)
    wav = media.read_audio(src, len(frames))
    reps = int(np.ceil(minutes * 60 * 25 / len(frames)))

    def gen():
        for r in range(reps):
            yield from (frames if r % 2 == 0 else frames[::-1])  # ping-pong: no jump cut for the tracker

    audio = np.concatenate([wav if r % 2 == 0 else wav[::-1] for r in range(reps)])
    if audio_rate != media.SAMPLE_RATE:
        audio = np.clip(resample_poly(audio, audio_rate, media.SAMPLE_RATE, dtype=np.float32), -1, 1)
    return media.write_video(dst, gen(), audio, sample_rate=audio_rate, crf=28)


def peak_worker_rss(inp: Path, cfg: PrepConfig) -> tuple[float, int]:
    me = psutil.Process()
    peak = [0]
    stop = threading.Event()

    def poll():
        while not stop.is_set():
            for child in me.children(recursive=True):
                try:
                    if "python" in child.name():
                        peak[0] = max(peak[0], child.memory_info().rss)
                except psutil.Error:
                    pass
            time.sleep(0.05)

    th = threading.Thread(target=poll, daemon=True)
    th.start()
    out = Path(tempfile.mkdtemp(prefix="tb-mem-"))
    try:
        s = run_prep(inp, out / "o", cfg, n_workers=1, progress=False)
    finally:
        stop.set()
        th.join()
        shutil.rmtree(out, ignore_errors=True)
    return peak[0] / 2 ** 20, s.frames


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--clip", default=str(REPO.parent / "shared" / "data" / "videos" / "w2l_input4.mp4"))
    ap.add_argument("--minutes", type=float, default=3.0)
    ap.add_argument("--segment-frames", type=int, default=1500)
    ap.add_argument("--audio-rate", type=int, default=48_000, help="the long clip's audio sample rate")
    ap.add_argument("--bfm", default=str(REPO.parent / "shared" / "models" / "3ddfa_bfm"), help="3DMM basis folder")
    args = ap.parse_args()
    os.environ.setdefault("TALKBENCH_3DDFA_DIR", args.bfm)
    tmp = Path(tempfile.mkdtemp(prefix="tb-mem-in-"))
    (tmp / "short").mkdir()
    (tmp / "long").mkdir()
    shutil.copy(args.clip, tmp / "short" / "clip.mp4")
    make_long(Path(args.clip), tmp / "long" / "clip.mp4", args.minutes, args.audio_rate)
    cfg = PrepConfig(segment_frames=args.segment_frames)
    short_mb, short_frames = peak_worker_rss(tmp / "short", cfg)
    long_mb, long_frames = peak_worker_rss(tmp / "long", cfg)
    print(f"short clip: {short_frames} frames, peak worker RSS {short_mb:.0f} MiB")
    print(f"long clip:  {long_frames} frames, peak worker RSS {long_mb:.0f} MiB")
    print(f"ratio long/short peak RSS: {long_mb / short_mb:.2f} for {long_frames / short_frames:.0f}x the frames")
    shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
