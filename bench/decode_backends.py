"""decord against PyAV for prep's decode: decode + 25 fps timestamp resampling, 1 thread and threaded.

*PyAV*: :func:`prep.media.iter_frames` as prep calls it (``thread_type="AUTO"``, FFmpeg's automatic thread
count; PyAV's ``to_ndarray`` converts to RGB with swscale's automatic thread count too), and the same on one
thread: the codec context's ``thread_count`` set to 1 before the first decode and ``to_ndarray(..., threads=1)``
(the bench wraps ``prep.media._open`` and ``prep.media.rgb_array``; prep itself is unchanged). *decord*: ``VideoReader(path, ctx=cpu(0),
num_threads=1 | 0 (auto))``; the 25 fps output indices are computed from ``get_frame_timestamp`` the way
``prep.media._iter_converted`` maps output instants to source frames (output frame ``i`` shows the last source
frame whose time, measured from the first frame, is <= ``i / 25`` + 1e-6; there are as many output frames as
instants before the last frame's end), then ``get_batch`` in chunks of 16 (iter_frames' chunk size) to
(N, H, W, 3) uint8 RGB numpy arrays.

Timed runs alternate pyav, decord, pyav, decord... per clip and thread setting; each reports output frames per
wall second and per CPU second (all threads of the process), and the speed ratio decord / pyav per pair with a
bootstrap 95% interval of its geometric mean over the pairs. One untimed pass per clip checks exactness frame
for frame: output frame counts, the source frame *indices* each backend picks, the fraction of output frames
that are bit-identical, and the max / mean absolute pixel difference (threaded PyAV as prep runs it vs decord
with 1 and auto threads).

    python bench/decode_backends.py [--videos ../shared/data/videos] [--repeats 3] [--clips w2l_input3 ...]
                                    [--json OUT]
"""
from __future__ import annotations

import argparse
import itertools
import json
import sys
import time
from contextlib import contextmanager
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from prep import media  # noqa: E402
from talkbase.threads import keep_freed_memory  # noqa: E402

CLIPS = ("w2l_input3", "w2l_input4", "latentsync_demo1", "latentsync_demo2")
CHUNK = 16
EPS = 1e-6  # prep.media._EPS


@contextmanager
def pyav_threads(n: int | None):
    """``prep.media`` decoding with the codec's ``thread_count`` and the RGB conversion's swscale threads set to
    ``n`` (None: as prep runs it, both automatic)."""
    if n is None:
        yield
        return
    orig, orig_rgb = media._open, media.rgb_array

    def opened(path):
        c = orig(path)
        if c.streams.video:
            c.streams.video[0].codec_context.thread_count = n
        return c

    def rgb_array(frame, rotation=0):  # swscale's own threads (PyAV's default: 0 = automatic)
        img = frame.to_ndarray(format="rgb24", threads=n)
        return np.ascontiguousarray(np.rot90(img, rotation // 90)) if rotation else img

    media._open, media.rgb_array = opened, rgb_array
    try:
        yield
    finally:
        media._open, media.rgb_array = orig, orig_rgb


def pyav_frames(path, threads=None):
    """Output frames of ``prep.media.iter_frames`` (chunks)."""
    with pyav_threads(threads):
        yield from (ch.frames for ch in media.iter_frames(path, fps=media.FPS, chunk_size=CHUNK))


def pyav_indices(path) -> np.ndarray:
    """The source frame (decode order of presented frames) each output frame of ``iter_frames`` shows."""
    n = itertools.count()
    return np.array([x for ch in media._iter_converted(path, media.FPS, CHUNK, 0, None, lambda f, r: next(n), list)
                     for x in ch.frames])


def decord_indices(vr, fps: float = media.FPS) -> np.ndarray:
    """prep.media's timestamp resampling on decord's frame timestamps (seconds, [start, end] per frame)."""
    ts = vr.get_frame_timestamp(np.arange(len(vr))).astype(np.float64)
    t = ts[:, 0] - ts[0, 0]
    end = ts[-1, 1] - ts[0, 0]
    if not end > t[-1]:  # no usable duration on the last frame: the average frame interval
        end = t[-1] + 1.0 / vr.get_avg_fps()
    n_out = media.num_output_frames(end, fps)
    return np.searchsorted(t, np.arange(n_out) / fps + EPS, side="right") - 1


def decord_frames(path, threads: int):
    from decord import VideoReader, cpu

    vr = VideoReader(str(path), ctx=cpu(0), num_threads=threads)
    idx = decord_indices(vr)
    for s in range(0, len(idx), CHUNK):
        yield vr.get_batch(idx[s:s + CHUNK].tolist()).asnumpy()


def timed(gen) -> tuple[int, float, float]:
    w, c = time.perf_counter(), time.process_time()
    n = sum(len(x) for x in gen)
    return n, time.perf_counter() - w, time.process_time() - c


def frames_of(gen):
    for chunk in gen:
        yield from chunk


def exactness(path, decord_threads: int) -> dict:
    from decord import VideoReader, cpu

    pi = pyav_indices(path)
    di = decord_indices(VideoReader(str(path), ctx=cpu(0), num_threads=decord_threads))
    n_same = n = 0
    max_diff, sum_diff = 0, 0.0
    n_a = n_b = 0
    for a, b in itertools.zip_longest(frames_of(pyav_frames(path)), frames_of(decord_frames(path, decord_threads))):
        n_a += a is not None
        n_b += b is not None
        if a is None or b is None:
            continue
        n += 1
        if a.shape != b.shape:
            max_diff = 255
            continue
        d = np.abs(a.astype(np.int16) - b.astype(np.int16))
        m = int(d.max())
        n_same += m == 0
        max_diff = max(max_diff, m)
        sum_diff += float(d.mean())
    return {"decord_threads": decord_threads, "pyav_frames": n_a, "decord_frames": n_b, "count_equal": n_a == n_b,
            "indices_equal": bool(len(pi) == len(di) and np.array_equal(pi, di)),
            "indices_differ": int(np.sum(pi != di)) if len(pi) == len(di) else None,
            "bit_identical_fraction": n_same / n if n else 0.0, "max_abs_diff": max_diff,
            "mean_abs_diff": sum_diff / n if n else 0.0}


def bootstrap_ratio(t_pyav, t_decord, n_boot=10000, seed=0) -> tuple[float, float, float]:
    """Geometric mean of per-pair speed ratios decord / pyav (= pyav time / decord time), and its 95% interval."""
    r = np.log(np.asarray(t_pyav) / np.asarray(t_decord))
    rng = np.random.default_rng(seed)
    boots = r[rng.integers(0, len(r), (n_boot, len(r)))].mean(1)
    return float(np.exp(r.mean())), float(np.exp(np.percentile(boots, 2.5))), float(np.exp(np.percentile(boots, 97.5)))


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--videos", default=str(Path(__file__).resolve().parents[2] / "shared" / "data" / "videos"))
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--clips", nargs="*", default=list(CLIPS))
    ap.add_argument("--json")
    args = ap.parse_args(argv)
    import decord

    keep_freed_memory()  # as prep's processes run (both backends share the process)
    out = {"decord": decord.__version__, "av": __import__("av").__version__, "repeats": args.repeats, "clips": {}}
    for name in args.clips:
        path = Path(args.videos) / f"{name}.mp4"
        info = media.probe(path)
        rec = {"codec": info.video_codec, "size": f"{info.width}x{info.height}", "src_fps": info.src_fps,
               "exact": [exactness(path, 0), exactness(path, 1)], "timing": {}}
        print(f"{name} ({info.video_codec} {info.width}x{info.height} {info.src_fps:g} fps)", flush=True)
        for e in rec["exact"]:
            print(f"  exact (decord threads={e['decord_threads']}): frames {e['pyav_frames']} vs {e['decord_frames']}, "
                  f"indices equal {e['indices_equal']}, bit-identical {e['bit_identical_fraction']:.3f}, "
                  f"max |diff| {e['max_abs_diff']}, mean |diff| {e['mean_abs_diff']:.4f}", flush=True)
        for label, pt, dt in (("1 thread", 1, 1), ("threaded", None, 0)):
            runs = {"pyav": [], "decord": []}
            for _ in range(args.repeats):
                runs["pyav"].append(timed(pyav_frames(path, pt)))
                runs["decord"].append(timed(decord_frames(path, dt)))
            tp = [w for _, w, _ in runs["pyav"]]
            td = [w for _, w, _ in runs["decord"]]
            ratio, lo, hi = bootstrap_ratio(tp, td)
            cratio, clo, chi = bootstrap_ratio([c for *_, c in runs["pyav"]], [c for *_, c in runs["decord"]])
            n = runs["pyav"][0][0]
            row = {"frames": n, "pyav_wall_s": tp, "decord_wall_s": td,
                   "pyav_cpu_s": [c for *_, c in runs["pyav"]], "decord_cpu_s": [c for *_, c in runs["decord"]],
                   "pyav_fps": n / float(np.median(tp)), "decord_fps": n / float(np.median(td)),
                   "ratio_wall": ratio, "ratio_wall_ci95": [lo, hi], "ratio_cpu": cratio, "ratio_cpu_ci95": [clo, chi]}
            rec["timing"][label] = row
            print(f"  {label:8s}: pyav {row['pyav_fps']:6.1f} fps, decord {row['decord_fps']:6.1f} fps (median wall); "
                  f"decord/pyav {ratio:.2f}x [{lo:.2f}, {hi:.2f}] wall, {cratio:.2f}x [{clo:.2f}, {chi:.2f}] CPU",
                  flush=True)
        out["clips"][name] = rec
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=1))
    return out


if __name__ == "__main__":
    main()
