"""The demo's one-shot stage: train ``oneshot3dmm`` at ``tiny`` with the demo's budget, sample the test clips
(one reference frame each, teacher-forced pose: the reconstruction protocol), score them with evalkit and
write the results beside the other submissions' so the leaderboard lists the model. Skipped, with the
reason, when the shards have no 3DMM columns (the basis is not bundled)."""
from __future__ import annotations

import sys
import time
from pathlib import Path

NAME = "oneshot3dmm-tiny"
# the demo's budget (per stage): enough for every part to train for real, small enough for the demo's
# 10-minute target on 2 cores; the acceptance budget is the config's own (refmodel/README.md)
DEMO_OVERRIDES = {"ae.steps": 400, "lipsync.steps": 300, "motion.steps": 300, "render.steps": 200}


def run_oneshot_stage(shards, out, clip_ids, *, seed: int = 0, workers=None, sync_expert=None,
                      fid_stride: int = 5, benchmark_name: str | None = None) -> float:
    """Train, sample and evaluate the one-shot model into ``out/runs``, ``out/submissions``, ``out/results``;
    returns the seconds it took (0 when skipped)."""
    from evalkit.runner import evaluate
    from prep.output import PrepOutput
    from refmodel.oneshot.sample import sample_videos
    from refmodel.oneshot.train import train

    t0 = time.perf_counter()
    if not PrepOutput.open(shards).has_3dmm:
        print("    oneshot3dmm skipped: the shards have no 3DMM columns (`talkbench models fetch 3ddfa`)",
              file=sys.stderr)
        return 0.0
    out = Path(out)
    print("    oneshot3dmm: train (tiny, demo budget), sample, eval", file=sys.stderr)
    ckpt = train(shards, out / "runs" / "oneshot3dmm", "tiny", seed=seed, overrides=DEMO_OVERRIDES, progress=False)
    sub = out / "submissions" / NAME
    sample_videos(ckpt, shards, sub, clip_ids=clip_ids, seed=seed, progress=False)
    evaluate(shards, sub, out / "results" / "reconstruction" / NAME, mode="reconstruction", n_workers=workers,
             allow_uncalibrated_fid=True, sync_expert=sync_expert, split="test", fid_stride=fid_stride,
             benchmark_name=benchmark_name,
             submission_meta={"name": NAME, "model": "oneshot3dmm", "kind": "model",
                              "notes": "talkbench demo (synthetic data): one reference frame per clip, "
                                       "teacher-forced pose and blinks, lips from the audio"})
    return time.perf_counter() - t0


__all__ = ["run_oneshot_stage", "DEMO_OVERRIDES", "NAME"]
