"""``talkbench eval``: score a submission directory against reference shards (wraps ``evalkit.evaluate``).

Cheap to import: everything heavy is imported inside the handler.
"""
from __future__ import annotations

import sys

ARROW = {True: "↑", False: "↓"}


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "eval", help="score a submission against reference shards",
        description="Score DIR/<clip_id>.mp4 videos against a talkbench prep output; writes "
                    "RESULTS_DIR/results.json and per_video.parquet.")
    p.add_argument("--reference", required=True, metavar="PREP_OUT", help="talkbench prep output directory")
    p.add_argument("--submission", required=True, metavar="DIR", help="directory of <clip_id>.mp4 videos")
    p.add_argument("--out", required=True, metavar="RESULTS_DIR", help="where results.json goes")
    p.add_argument("--mode", choices=["reconstruction", "cross"], default="reconstruction",
                   help="reconstruction: same audio as the reference (all metrics); cross: other audio "
                        "(FID, LSE, CSIM, in-house sync)")
    p.add_argument("--metrics", default=None,
                   help="comma-separated subset: psnr,ssim,lmd_mouth,lmd_face,fid,lse_d,lse_c,csim,sync_inhouse")
    p.add_argument("--split", default=None, help="score only reference clips of this split (e.g. test)")
    p.add_argument("--crop", choices=["aligned", "full"], default="aligned",
                   help="image region for PSNR/SSIM/FID: aligned face crop (default) or full frame")
    p.add_argument("--lse-crop", choices=["aligned", "syncnet-pipeline"], default="aligned")
    p.add_argument("--lse-detector", choices=["dlib", "s3fd"], default="dlib",
                   help="face detector of the syncnet-pipeline crop (s3fd: upstream's, needs sfd_face.pth)")
    p.add_argument("--s3fd", default=None, help="sfd_face.pth (else TALKBENCH_S3FD / the cache dir)")
    p.add_argument("--lmd-preset", choices=["ratnerf", "atvgnet"], default="ratnerf")
    p.add_argument("--csim-stride", type=int, default=None, help="embed every k-th frame for CSIM")
    p.add_argument("--fid-stride", type=int, default=None, help="every k-th frame into FID (default 1)")
    p.add_argument("--name", default=None, help="submission name (leaderboard row)")
    p.add_argument("--model", default=None, help="model name")
    p.add_argument("--date", default=None, help="YYYY-MM-DD")
    p.add_argument("--link", default=None)
    p.add_argument("--notes", default=None)
    p.add_argument("--kind", choices=["model", "ground-truth", "baseline"], default="model")
    p.add_argument("--benchmark-name", default=None, help="default: the reference directory's name")
    p.add_argument("--syncnet", default=None, metavar="PATH", help="syncnet_v2.model (else env / cache)")
    p.add_argument("--inception", default=None, metavar="PATH",
                   help="pt_inception-2015-12-05-6726825d.pth (else env / cache)")
    p.add_argument("--allow-uncalibrated-fid", action="store_true",
                   help="without official Inception weights, compute FID with a seeded random network, "
                        "labelled uncalibrated")
    p.add_argument("--sync-expert", default=None, metavar="PATH", help="in-house sync expert checkpoint")
    p.add_argument("--scheduler", default=None, metavar="ADDR",
                   help="Dask scheduler address (default: a local cluster); 'synchronous' for in-process")
    p.add_argument("--workers", type=int, default=None, help="local cluster workers (default: CPU count)")
    p.add_argument("--fid-cache", default=None, metavar="DIR", help="FID reference-statistics cache dir")
    p.set_defaults(func=run)


def format_summary(results: dict) -> str:
    """The metric table (↑ higher is better, ↓ lower) and the scored / skipped line."""
    lines = [f"{'metric':<14} {'':1} {'value':>12} {'± stderr':>10}  {'n':>5}  note"]
    for name, m in results["metrics"].items():
        if m["value"] is None:
            val, err, note = "—", "", f"skipped: {m['skipped_reason']}"
        else:
            val = f"{m['value']:.4f}"
            err = "" if m["stderr"] is None else f"{m['stderr']:.4f}"
            note = "" if m["calibrated"] else "UNCALIBRATED"
            if m.get("warning"):
                note = (note + "; " if note else "") + "low N"
        lines.append(f"{name:<14} {ARROW[m['higher_is_better']]:1} {val:>12} {err:>10}  {m['n_scored']:>5}  {note}")
    n = results["n_videos"]
    lines.append(f"{n['scored']} scored, {n['skipped']} skipped (of {n['expected']} reference clips)"
                 + (f"; {n.get('extra', 0)} unknown files ignored" if n.get("extra") else ""))
    by_code = n.get("skip_codes") or {}
    if by_code:
        lines.append("skipped: " + ", ".join(f"{k} {v}" for k, v in by_code.items()))
    return "\n".join(lines)


def run(args) -> int:
    from .runner import EvaluationError, evaluate

    metrics = [m.strip() for m in args.metrics.split(",") if m.strip()] if args.metrics else None
    options = {"lmd_preset": args.lmd_preset}
    if args.csim_stride:
        options["csim_stride"] = args.csim_stride
    if args.fid_stride:
        options["fid_stride"] = args.fid_stride
    meta = {"name": args.name, "model": args.model, "date": args.date, "link": args.link,
            "notes": args.notes, "kind": args.kind}
    try:
        results = evaluate(args.reference, args.submission, args.out, mode=args.mode, metrics=metrics,
                           scheduler=args.scheduler, n_workers=args.workers, syncnet_path=args.syncnet,
                           inception_path=args.inception, allow_uncalibrated_fid=args.allow_uncalibrated_fid,
                           sync_expert=args.sync_expert, submission_meta=meta, crop=args.crop,
                           lse_crop=args.lse_crop, lse_detector=args.lse_detector, s3fd_path=args.s3fd,
                           benchmark_name=args.benchmark_name,
                           fid_cache_dir=args.fid_cache, split=args.split, **options)
    except (EvaluationError, ValueError, FileNotFoundError, NotADirectoryError) as e:
        print(f"talkbench eval: {e}", file=sys.stderr)
        return 2
    print(format_summary(results))
    print(f"results: {args.out}/results.json")
    return 0


__all__ = ["register", "run", "format_summary"]
