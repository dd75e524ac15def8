"""Measure the emulated upstream frame I/O against FFmpeg's own command line, preset by preset.

    PYTHONPATH=$PWD:$PWD/tests/evalkit python bench/lse_presets_vs_cli.py [--frames 120] [PRESET ...]

Needs an ``ffmpeg`` binary (``pip install imageio-ffmpeg``). The same seeded random SyncNet (official layout) and
the dlib detector (standing in for S3FD, whose random weights find no face) run on both paths; the difference
is only the file I/O: the emulation (PyAV + OpenCV, ``evalkit.frame_io``) vs the real ``ffmpeg`` commands and
``cv2.imread`` of the written files (``tests/evalkit/upstream_cli.py``). Prints per track offset / LSE-D / LSE-C of
both, the LSE-D relative difference and each path's seconds (timings on a shared machine: ratios only).
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO), str(REPO / "tests" / "evalkit")]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("presets", nargs="*", default=["wav2lip-lrs", "syncnet_python", "latentsync"])
    ap.add_argument("--frames", type=int, default=120)
    ap.add_argument("--clip", default=str(REPO.parent / "shared" / "data" / "videos" / "w2l_input3.mp4"))
    ap.add_argument("--tmp", default="/tmp/talkbench-lse-vs-cli")
    args = ap.parse_args()

    import upstream_cli
    from prep.faces import get_backend
    from prep.media import decode_clip, write_video

    from evalkit import lse_upstream
    from evalkit.lse_presets import PRESETS
    from evalkit.nets.syncnet import SyncNet, random_state_dict

    tmp = Path(args.tmp)
    clip = decode_clip(args.clip)
    write_video(tmp / "clip.mp4", clip.frames[:args.frames], clip.audio[:args.frames * 640])
    model = SyncNet()
    model.load_state_dict(random_state_dict(0))
    model.eval()
    backend = get_backend("dlib")
    det = lambda rgb: backend.detect([rgb])[0]  # noqa: E731
    for name in args.presets:
        p = PRESETS[name]
        t0 = time.perf_counter()
        ours = lse_upstream.run_preset(tmp / "clip.mp4", p, model, det)
        t1 = time.perf_counter()
        cli = upstream_cli.run_preset_cli(tmp / "clip.mp4", tmp / name, p, model, det)
        t2 = time.perf_counter()
        print(f"{name}: emulated {t1 - t0:.1f} s, command line {t2 - t1:.1f} s (ratio {(t1 - t0) / (t2 - t1):.2f})")
        for a, b in zip(ours, cli):
            print(f"  track {a.track} frames {a.start}-{a.stop}: emulated offset {a.offset} LSE-D {a.lse_d:.4f} "
                  f"LSE-C {a.lse_c:.4f} | cli offset {b.offset} LSE-D {b.lse_d:.4f} LSE-C {b.lse_c:.4f} | "
                  f"LSE-D rel diff {abs(a.lse_d - b.lse_d) / b.lse_d:.2e}")


if __name__ == "__main__":
    main()
