"""``talkbench demo OUT``: thin wrapper over :func:`talkbench.demo.run_demo`."""
from __future__ import annotations

import time

from talkbench.demo import DEMO_SYNC_STEPS, DEMO_TRAIN_STEPS, run_demo

DESCRIPTION = ("The whole suite offline on a dataset it synthesizes itself: synthesize (real face photos, "
               "audio-driven mouths), prep, train the reference models, sample, eval, leaderboard, data card.")


def register(sub) -> None:
    p = sub.add_parser("demo", help="offline end-to-end demo on a synthetic dataset",
                       description=DESCRIPTION)
    p.add_argument("out", nargs="?", default="demo_out", help="output folder (default: demo_out)")
    p.add_argument("--identities", type=int, default=3, help="synthetic speakers (default 3)")
    p.add_argument("--clips-per-identity", type=int, default=2, help="clips per speaker (default 2)")
    p.add_argument("--seconds", type=float, default=4.0, help="length of each synthetic clip")
    p.add_argument("--train-steps", type=int, help=f"training steps of each reference model (default {DEMO_TRAIN_STEPS})")
    p.add_argument("--sync-steps", type=int, help=f"steps of the sync expert both models use (default {DEMO_SYNC_STEPS})")
    p.add_argument("--workers", type=int, help="Dask workers (default: one per core)")
    p.add_argument("--seed", type=int, default=0, help="seed of the synthetic data and the training (default 0)")
    p.add_argument("--clean", action="store_true", help="delete OUT first")
    p.set_defaults(func=main)


def main(args) -> int:
    t0 = time.perf_counter()
    where = run_demo(args.out, n_identities=args.identities, clips_per_identity=args.clips_per_identity,
                     seconds=args.seconds, train_steps=args.train_steps, sync_steps=args.sync_steps,
                     seed=args.seed, workers=args.workers,
                     clean=args.clean)
    print(f"\ntalkbench demo finished in {time.perf_counter() - t0:.0f}s. Look at:")
    for k in ("site", "leaderboard_md", "card", "shards", "results"):
        print(f"  {k:15s} {where[k]}")
    return 0
