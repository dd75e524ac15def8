"""Training-loader throughput at 64×64, as a ratio against a decode-only baseline measured in the same run.

    python bench/loader_throughput.py [--prep-out DIR] [--seconds 10] [--workers 2] [--json out.json]

Reports samples/s (a sample = a 5-frame window + reference + mel windows, what one training item is) for
  * decode-only: every frame row's crop decoded at full size with ``prep.output.decode_crop`` (frames/s);
  * ``ShardFrameDataset`` in one process, first epoch (cold: Parquet read + reduced-size JPEG decode);
  * the same, steady state (decoded row groups cached between epochs);
  * a ``DataLoader`` with ``--workers`` worker processes (disjoint shards), steady state.
Goal: >= 2,000 samples/s on 2 cores. Without ``--prep-out`` a shard set is built from the two 480p shared
clips (fixed-box crops, 256 px JPEG like the prep job's), copied ``--copies`` times under new clip ids.
"""
from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

IMAGE_SIZE = 64
BATCH = 64


def build_shards(videos: Path, copies: int) -> Path:
    from refmodel.testing import KNOWN_BOXES, ClipSpec, build_fixed_crop_shards

    out = Path(tempfile.mkdtemp(prefix="tb-loader-"))
    specs = [ClipSpec(videos / f"{name}.mp4", box, clip_id=f"{name}-{k}")
             for k in range(copies) for name, box in KNOWN_BOXES.items()]
    return build_fixed_crop_shards(specs, out / "prep", frames_per_shard=512)


def decode_only(prep_out: Path) -> tuple[int, float]:
    from prep.output import PrepOutput, decode_crop

    t0, n = time.perf_counter(), 0
    for batch in PrepOutput.open(prep_out).frame_batches(["crop"]):
        for b in batch.column("crop").to_pylist():
            decode_crop(b)
            n += 1
    return n, time.perf_counter() - t0


def dataset(prep_out: Path, infinite: bool):
    from refmodel.data import ShardFrameDataset

    return ShardFrameDataset(prep_out, image_size=IMAGE_SIZE, seed=0, window=5, batch_size=BATCH,
                             infinite=infinite, num_offset_negatives=0)


def count(iterator, seconds: float) -> tuple[int, float]:
    t0, n = time.perf_counter(), 0
    for batch in iterator:
        n += len(batch["clip_id"])
        if time.perf_counter() - t0 >= seconds:
            break
    return n, time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--prep-out", default=None)
    ap.add_argument("--videos", default=str(REPO.parent / "shared" / "data" / "videos"))
    ap.add_argument("--copies", type=int, default=4)
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--json", help="write the numbers here too")
    args = ap.parse_args()
    from refmodel.data import make_loader
    from talkbase.threads import limit_process_threads

    limit_process_threads(1)
    tmp = None
    prep_out = Path(args.prep_out) if args.prep_out else None
    if prep_out is None:
        prep_out = build_shards(Path(args.videos), args.copies)
        tmp = prep_out.parent
    try:
        n_dec, t_dec = decode_only(prep_out)
        decode_rate = n_dec / t_dec
        ds = dataset(prep_out, infinite=False)
        n_cold, t_cold = count(iter(ds), float("inf"))
        ds_warm = dataset(prep_out, infinite=True)
        n_warm, t_warm = count(iter(ds_warm), args.seconds)
        loader = make_loader(dataset(prep_out, infinite=True), num_workers=args.workers)
        it = iter(loader)
        next(it)  # worker start-up and first (cold) epoch are not the steady state
        n_par, t_par = count(it, args.seconds)
        res = {
            "rows": n_dec, "image_size": IMAGE_SIZE, "window": 5, "batch": BATCH,
            "decode_only_frames_per_s": round(decode_rate, 1),
            "loader_cold_samples_per_s": round(n_cold / t_cold, 1),
            "loader_cached_samples_per_s": round(n_warm / t_warm, 1),
            f"loader_{args.workers}_workers_samples_per_s": round(n_par / t_par, 1),
            "ratio_cold_vs_decode_only": round(n_cold / t_cold / decode_rate, 2),
            "ratio_cached_vs_decode_only": round(n_warm / t_warm / decode_rate, 2),
            f"ratio_{args.workers}_workers_vs_decode_only": round(n_par / t_par / decode_rate, 2),
            "goal_samples_per_s": 2000,
        }
    finally:
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)
    text = json.dumps(res, indent=2)
    print(text)
    if args.json:
        Path(args.json).write_text(text + "\n")


if __name__ == "__main__":
    main()
