"""The demo's one-shot model: train ``oneshot3dmm`` at ``tiny`` with the demo's budget and sample the test clips
(one reference frame each, teacher-forced pose: the reconstruction protocol); the demo scores the result
beside the other submissions, so the leaderboard lists the model. Skipped, with the reason, when the shards
have no 3DMM columns (the basis is not bundled)."""
from __future__ import annotations

import sys
from pathlib import Path

NAME = "oneshot3dmm-tiny"
# the demo's budget (per stage): enough for every part to train for real, small enough for the demo's
# time on 2 cores; the acceptance budget is the config's own (refmodel/README.md)
DEMO_OVERRIDES = {"ae.steps": 400, "lipsync.steps": 300, "motion.steps": 300, "render.steps": 200}
NOTE = "one reference frame per clip, teacher-forced pose and blinks, lips from the audio"


def train_and_sample_oneshot(shards, out, clip_ids, *, seed: int = 0) -> tuple[Path, dict] | None:
    """Train into ``out/runs/oneshot3dmm`` and sample ``clip_ids`` into ``out/submissions/oneshot3dmm-tiny``;
    (checkpoint, {("reconstruction", NAME): ("model", folder, NOTE)}), as the demo's crop models return, or
    None (said on stderr) when the shards have no 3DMM columns."""
    from prep.output import PrepOutput
    from refmodel.oneshot.sample import sample_videos
    from refmodel.oneshot.train import train

    if not PrepOutput.open(shards).has_3dmm:
        print("    oneshot3dmm skipped: the shards have no 3DMM columns (`talkbench models fetch 3ddfa`)",
              file=sys.stderr)
        return None
    out = Path(out)
    print("    oneshot3dmm: train (tiny, demo budget) and sample", file=sys.stderr)
    ckpt = train(shards, out / "runs" / "oneshot3dmm", "tiny", seed=seed, overrides=DEMO_OVERRIDES, progress=False)
    sub = out / "submissions" / NAME
    sample_videos(ckpt, shards, sub, clip_ids=clip_ids, seed=seed, progress=False)
    return ckpt, {("reconstruction", NAME): ("model", sub, NOTE)}


__all__ = ["train_and_sample_oneshot", "DEMO_OVERRIDES", "NAME", "NOTE"]
