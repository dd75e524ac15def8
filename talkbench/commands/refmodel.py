"""``talkbench train`` and ``talkbench sample``: thin wrappers over ``refmodel.train.train``,
``refmodel.sample.sample_videos`` and ``refmodel.baselines.write_baseline``. Cheap to import."""
from __future__ import annotations

import json
import logging
import sys

log = logging.getLogger(__name__)

BASELINE_NAMES = ("copy-reference", "mean-fill", "clip-mean")


def _set_override(values: list[str]) -> dict:
    out = {}
    for item in values or []:
        key, sep, raw = item.partition("=")
        if not sep:
            raise SystemExit(f"--set expects KEY=VALUE, got {item!r}")
        try:
            out[key] = json.loads(raw)
        except json.JSONDecodeError:
            out[key] = raw
    return out


def register(subparsers) -> None:
    from refmodel.models import MODELS

    p = subparsers.add_parser("train", help="train a reference model on shards",
                              description="Train (or resume) a reference model on a prep output: "
                                          + "; ".join(f"{m.name}: {m.description}" for m in MODELS.values()) + ".")
    p.add_argument("prep_out", metavar="PREP_OUT", help="prep output directory (manifest.json, clips/, frames/)")
    p.add_argument("--out", required=True, metavar="RUN_DIR", help="run directory (checkpoint.pt, loss.jsonl)")
    p.add_argument("--model", default="diff2lip", choices=sorted(MODELS),
                   help="reference model (refmodel.models.MODELS; default diff2lip)")
    p.add_argument("--config", default="tiny", help="tiny (64 px, 2 CPU cores, <= 20 min) or base (128 px, one GPU)")
    p.add_argument("--steps", type=int, default=None, help="total optimisation steps (default: the config's)")
    p.add_argument("--seed", type=int, default=0, help="seed of initialisation and data order (default 0)")
    g = p.add_mutually_exclusive_group()
    g.add_argument("--resume", dest="resume", action="store_true", default=True,
                   help="continue from RUN_DIR/checkpoint.pt when present (default)")
    g.add_argument("--no-resume", dest="resume", action="store_false", help="start afresh")
    p.add_argument("--sync-expert", default=None, help="use this trained sync expert instead of training one")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override a config field, e.g. --set batch_size=2 --set sync.steps=100")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=_train)

    s = subparsers.add_parser("sample", help="generate submission videos with the reference model or a baseline",
                              description="Write <clip_id>.mp4 submissions (driving audio muxed) for clips of a "
                                          "prep output, with a checkpoint or a baseline.")
    s.add_argument("checkpoint", nargs="?", metavar="CHECKPOINT", help="checkpoint.pt or its run directory")
    s.add_argument("prep_out", metavar="PREP_OUT")
    s.add_argument("--baseline", choices=BASELINE_NAMES, default=None, help="write a baseline instead of sampling")
    s.add_argument("--out", required=True, metavar="DIR", help="folder for the <clip_id>.mp4 submission videos")
    s.add_argument("--clips", nargs="+", default=None, metavar="CLIP_ID", help="only these clips")
    s.add_argument("--audio-from", default=None, metavar="CLIP",
                   help="drive every clip with this clip's audio (or an audio file); default: own audio")
    s.add_argument("--steps", type=int, default=None, help="DDIM steps (default: the checkpoint config's)")
    s.add_argument("--seed", type=int, default=0, help="sampling noise seed (default 0)")
    s.add_argument("--device", default="auto", help="cpu, cuda, cuda:N or auto (a GPU when there is one; default)")
    s.add_argument("--no-progress", action="store_true", help="no progress bar")
    s.set_defaults(func=_sample)


def _train(args) -> int:
    from refmodel import models
    from refmodel.train import read_loss_log

    try:
        train = models.function(models.get(args.model).train)
    except ValueError as e:
        print(f"talkbench train: {e}", file=sys.stderr)
        return 2
    ckpt = train(args.prep_out, args.out, config=args.config, steps=args.steps, seed=args.seed,
                 resume=args.resume, overrides=_set_override(args.set), sync_expert=args.sync_expert,
                 progress=not args.no_progress)
    import os

    if os.environ.get("RANK", "0") != "0":  # torchrun: one summary, from rank 0
        return 0
    hist = read_loss_log(args.out)
    if hist:
        first = sum(h["total"] for h in hist[:10]) / min(10, len(hist))
        last = sum(h["total"] for h in hist[-10:]) / min(10, len(hist))
        print(f"loss {first:.4f} -> {last:.4f} over {hist[-1]['step']} steps")
    print(ckpt)
    return 0


def _sample(args) -> int:
    if args.baseline:
        if args.checkpoint is not None:
            print("give either CHECKPOINT or --baseline, not both", file=sys.stderr)
            return 2
        from refmodel.baselines import write_baseline

        paths = write_baseline(args.baseline, args.prep_out, args.out, clip_ids=args.clips,
                               audio_from=args.audio_from, progress=not args.no_progress)
    else:
        if args.checkpoint is None:
            print("give a CHECKPOINT or --baseline NAME", file=sys.stderr)
            return 2
        from refmodel import models
        from talkbase.weights import WeightsUnreadable

        try:
            sample_videos = models.function(models.model_of_checkpoint(args.checkpoint).sample)
        except (FileNotFoundError, WeightsUnreadable, ValueError) as e:
            print(f"talkbench sample: error: {' '.join(str(e).split())}", file=sys.stderr)
            return 2
        paths = sample_videos(args.checkpoint, args.prep_out, args.out, clip_ids=args.clips,
                              audio_from=args.audio_from, steps=args.steps, seed=args.seed, device=args.device,
                              progress=not args.no_progress)
    for p in paths:
        print(p)
    return 0


__all__ = ["register"]
