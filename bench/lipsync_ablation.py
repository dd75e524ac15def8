"""Ablation of what makes the tiny reference models follow the audio (refmodel/README.md, "Lip sync").

On a synthetic set (``talkbench.demo_data.synthesize_dataset``: the mouth opening is a known function of
the audio), each variant trains on the ``train`` clips (all their frames) for the same number of steps
with the same seed and one shared sync expert, then ``refmodel.evaluate.evaluate_heldout`` scores the
unseen ``test`` clips whole: r between the generated mouth opening and the true one (own audio, shuffled
audio, another clip's audio), amplitude ratio, PSNR/LMD, with 95 % block-bootstrap intervals. Variants
are cumulative (each adds one change to the previous) unless named otherwise.

    python bench/lipsync_ablation.py --out /tmp/ablation --steps 500 [--variants v0 v1 ...]
    (--prep PREP reuses a prep output; default: synthesize 3 speakers x 3 clips x 6 s, seed 1, and prep it)

Writes ``OUT/<variant>/eval.json`` and ``OUT/ablation.json`` (wall and process CPU seconds per variant).
"""
from __future__ import annotations

import argparse
import json
import logging
import resource
import time
from pathlib import Path

# cumulative changes to the tiny config, in the order the README's table lists them
V0 = {"diffusion.anchor": "reference", "diffusion.sigma_data": 0.3, "diffusion.sample_steps": 1,
      "diffusion.train_t_min": 0, "ref_mouth_drop": 0.0, "mouth_weight": 0.0, "model.audio_encoder": "pooled",
      "model.audio_path": "time", "sync_weighting": "abar", "audio_drop": 0.0, "diffusion.guidance": 1.0}
STEPS = [
    ("v0-old-tiny", {}),
    ("v1-t700", {"diffusion.train_t_min": 700}),
    ("v2-image-anchor-blank-ref", {"diffusion.anchor": "image", "diffusion.sigma_data": 0.5, "ref_mouth_drop": 1.0}),
    ("v3-mouth-weight", {"mouth_weight": 4.0}),
    ("v4-audio-film-temporal", {"model.audio_encoder": "temporal", "model.audio_path": "film"}),
    ("v5-sync-uniform", {"sync_weighting": "uniform"}),
    ("v6-cfg", {"audio_drop": 0.1, "diffusion.guidance": 2.0}),
]


def variants() -> dict[str, dict]:
    out, cur = {}, dict(V0)
    for name, change in STEPS:
        cur = {**cur, **change}
        out[name] = dict(cur)
    return out


def cpu_seconds() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    c = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime + c.ru_utime + c.ru_stime


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", required=True)
    p.add_argument("--prep", default=None)
    p.add_argument("--steps", type=int, default=500)
    p.add_argument("--sync-steps", type=int, default=600)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--variants", nargs="*", default=None)
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="extra override for every variant")
    p.add_argument("--model", default="diff2lip")
    p.add_argument("--threads", type=int, default=2, help="torch intra-op threads (the budget is 2 cores)")
    a = p.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    import torch

    from refmodel import models
    from refmodel.evaluate import evaluate_heldout, summary_lines
    from refmodel.sync_training import train_sync_expert

    torch.set_num_threads(a.threads)
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    prep = Path(a.prep) if a.prep else out / "prep"
    if not (prep / "manifest.json").exists():
        from prep.config import PrepConfig
        from prep.faces import FaceConfig
        from prep.job import run_prep
        from talkbench.demo_data import synthesize_dataset

        synthesize_dataset(out / "videos", n_identities=3, clips_per_identity=3, seconds=6.0, seed=1)
        run_prep(out / "videos" / "speakers.csv", prep, PrepConfig(faces=FaceConfig(fit_3dmm=False)),
                 scheduler="inline", progress=False)
    expert = out / "sync_expert.pt"
    if not expert.exists():
        t0, c0 = time.time(), cpu_seconds()
        train_sync_expert(prep, expert, "tiny", steps=a.sync_steps, seed=a.seed, holdout_fraction=0.2)
        print(f"sync expert: {time.time() - t0:.0f} s wall, {cpu_seconds() - c0:.0f} CPU-s")
    extra = {}
    for item in a.set:
        k, _, v = item.partition("=")
        try:
            extra[k] = json.loads(v)
        except json.JSONDecodeError:
            extra[k] = v
    table = json.loads((out / "ablation.json").read_text()) if (out / "ablation.json").exists() else {}
    allv = variants() if a.model == "diff2lip" else {"default": {}}
    train = models.function(models.get(a.model).train)
    for name in a.variants or list(allv):
        overrides = {**allv.get(name, {}), **extra, "train_split": "train", "holdout_fraction": 0.0,
                     "checkpoint_every": 100000, "log_every": 100}
        run = out / name
        t0, c0 = time.time(), cpu_seconds()
        ckpt = train(prep, run, config="tiny", steps=a.steps, seed=a.seed, resume=False, overrides=overrides,
                     sync_expert=expert, progress=True)
        wall, cpu = time.time() - t0, cpu_seconds() - c0
        res = evaluate_heldout(ckpt, prep, frames="all", split="test", sync_expert=expert)
        res.update(train_wall_s=round(wall, 1), train_cpu_s=round(cpu, 1), overrides=overrides)
        (run / "eval.json").write_text(json.dumps(res, indent=2) + "\n")
        print("\n".join(summary_lines(res)), f"\n  train {wall:.0f} s wall, {cpu:.0f} CPU-s", flush=True)
        ls = res["lipsync"]
        table[name] = {"steps": a.steps, "train_wall_s": round(wall, 1), "train_cpu_s": round(cpu, 1),
                       **{k: ls[k]["r"] for k in ("true_audio", "shuffled_vs_true_opening",
                                                  "shuffled_vs_shuffled_opening", "cross_vs_driver") if k in ls},
                       "amplitude": ls["true_audio"]["amplitude"], "psnr": res["methods"]["model"]["psnr"],
                       "lmd": res["methods"]["model"]["lmd"]}
        (out / "ablation.json").write_text(json.dumps(table, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
