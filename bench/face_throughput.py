"""Face processing throughput on 720p: tracking vs the per-frame-detection baseline, in the same run.

    python bench/face_throughput.py [--clips DIR] [--frames 250] [--short-side 720] [--json out.json]

The 1080x1920 shared clips are decoded once and resized to 720x1280 (720p portrait) before timing.
Timed per clip: ``FaceTracker.process`` over all frames (detection, landmarks, smoothing, 256 px crops)
with the default ``FaceConfig`` (re-detect every 5 frames in a window around the face, full scan every
25) and with the baseline config (full-frame detection on every frame and landmarks from that frame's
detector box; smoothing and crops identical).
Decoding, resizing and model loading are outside the timings. Prints frames/s of both, the ratio
tracked / baseline per clip and overall (goal >= 3x), and the per-clip 3DMM fit time for reference.
Exit status 1 when the overall ratio is below ``--min-ratio``.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("TALKBENCH_SHARED", REPO.parent / "shared"))
sys.path.insert(0, str(REPO))

import cv2  # noqa: E402
import numpy as np  # noqa: E402

from prep.faces import FaceConfig, FaceTracker, get_backend  # noqa: E402
from prep.media import FrameChunk, iter_frames  # noqa: E402

DEFAULT_CLIPS = ("latentsync_demo1.mp4", "latentsync_demo2.mp4")


def load_720p(path: Path, max_frames: int, short_side: int) -> np.ndarray:
    """The first ``max_frames`` frames at 25 fps, resized so the short side is ``short_side``."""
    out = []
    for ch in iter_frames(path, chunk_size=32, stop=max_frames):
        for f in ch.frames:
            h, w = f.shape[:2]
            s = short_side / min(h, w)
            out.append(cv2.resize(f, (int(round(w * s)), int(round(h * s))), interpolation=cv2.INTER_AREA))
    return np.stack(out)


def timed(frames: np.ndarray, config: FaceConfig, backend) -> tuple[float, dict, list]:
    tracker = FaceTracker(config, backend=backend)
    rows = []
    t0 = time.perf_counter()
    for s in range(0, len(frames), 32):
        rows += tracker.process(FrameChunk(s, frames[s:s + 32]))
    return time.perf_counter() - t0, tracker.summary(), rows


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--clips", default=str(SHARED / "data" / "videos"))
    ap.add_argument("--names", nargs="*", default=list(DEFAULT_CLIPS), help="clip file names in --clips")
    ap.add_argument("--frames", type=int, default=250, help="frames per clip (from the start)")
    ap.add_argument("--short-side", type=int, default=720)
    ap.add_argument("--min-ratio", type=float, default=3.0)
    ap.add_argument("--bfm", help="3DDFA basis folder; times the 3DMM fit too when given or found")
    ap.add_argument("--json", help="write the numbers here too")
    args = ap.parse_args()

    tracked_cfg = FaceConfig(fit_3dmm=False)
    # classic per-frame pipeline: full-frame detection on every frame, landmarks from that frame's box
    baseline_cfg = FaceConfig(fit_3dmm=False, detect_every=1, full_detect_every=1, reanchor_iou=1.0,
                              anchor_rate=1.0)
    backend = get_backend("dlib")  # loaded once, outside the timings
    import torch  # noqa: F401  (imported here so the first fit's timing excludes it)
    results, tot_tracked, tot_base, tot_frames = [], 0.0, 0.0, 0
    for name in args.names:
        path = Path(args.clips) / name
        frames = load_720p(path, args.frames, args.short_side)
        t_track, s_track, rows = timed(frames, tracked_cfg, backend)
        t_base, s_base, _ = timed(frames, baseline_cfg, backend)
        fit_s = None
        try:
            from prep.faces import fit_rows

            t0 = time.perf_counter()
            fit_rows(rows, (frames.shape[2], frames.shape[1]), bfm=args.bfm)
            fit_s = time.perf_counter() - t0
        except (FileNotFoundError, ValueError) as e:
            print(f"  (3DMM fit not timed: {e})")
        n = len(frames)
        r = {"clip": name, "frames": n, "size": f"{frames.shape[2]}x{frames.shape[1]}",
             "tracked_fps": n / t_track, "baseline_fps": n / t_base, "ratio": t_base / t_track,
             "tracked_face_fraction": s_track["face_fraction"], "baseline_face_fraction": s_base["face_fraction"],
             "face_size_px": s_track["face_size"], "detections_tracked": s_track["full_detections"]
             + s_track["window_detections"], "fit_3dmm_s": fit_s}
        results.append(r)
        tot_tracked, tot_base, tot_frames = tot_tracked + t_track, tot_base + t_base, tot_frames + n
        print(f"{name}: {n} frames {r['size']}, face {s_track['face_size']:.0f} px | tracked "
              f"{r['tracked_fps']:.1f} fps (face on {100 * r['tracked_face_fraction']:.0f}%) | per-frame "
              f"detection {r['baseline_fps']:.1f} fps (face on {100 * r['baseline_face_fraction']:.0f}%) | "
              f"ratio {r['ratio']:.2f}x" + (f" | 3DMM fit {fit_s:.2f} s" if fit_s is not None else ""))
    ratio = tot_base / tot_tracked
    print(f"overall: tracked {tot_frames / tot_tracked:.1f} fps vs per-frame detection "
          f"{tot_frames / tot_base:.1f} fps -> ratio {ratio:.2f}x (goal >= {args.min_ratio:g}x)")
    if args.json:
        Path(args.json).write_text(json.dumps({"clips": results, "ratio": ratio}, indent=2))
    return 0 if ratio >= args.min_ratio else 1


if __name__ == "__main__":
    sys.exit(main())
