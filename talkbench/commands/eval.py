"""``talkbench eval``: score a submission directory against reference shards (wraps ``evalkit.runner.evaluate``).

Cheap to import: everything heavy is imported inside the handler.
"""
from __future__ import annotations

import sys

ARROW = {True: "↑", False: "↓"}


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "eval", help="score a submission against reference shards",
        description="Score DIR/<clip_id>.mp4 videos against a talkbench prep output; writes "
                    "RESULTS_DIR/results.json and per_video.parquet. `--list-metrics` shows every metric.")
    p.add_argument("--list-metrics", action="store_true",
                   help="list every metric (version, direction, modes, weights and whether they are present) and exit")
    p.add_argument("--reference", metavar="PREP_OUT",
                   help="talkbench prep output directory; without it every video under --submission is scored "
                        "with no reference (reference-free mode)")
    p.add_argument("--submission", metavar="DIR", help="directory of <clip_id>.mp4 videos (any videos without "
                                                        "--reference)")
    p.add_argument("--out", metavar="RESULTS_DIR", help="where results.json goes")
    p.add_argument("--mode", choices=["reconstruction", "cross", "reference-free"], default=None,
                   help="the default follows --reference: reconstruction with it (same audio as the reference, "
                        "all metrics), reference-free without it (the videos alone: LSE, sync, sharpness, motion "
                        "statistics); cross: other audio than the reference (no frame-by-frame metrics)")
    p.add_argument("--pairs", default=None, metavar="FILE",
                   help="cross mode: which clip's audio drives which clip's video, Wav2Lip's test_filelists format "
                        "('AUDIO_CLIP VIDEO_CLIP' per line) or a CSV with video,audio columns; each submission's "
                        "audio is checked against the paired clip's")
    p.add_argument("--submission-kind", choices=["frames", "crops"], default="frames",
                   help="frames: full frames like the source video (default); crops: square aligned face crops "
                        "(any size, e.g. 256 or 512) in the reference's alignment, scored against the reference's "
                        "aligned crops")
    p.add_argument("--no-audio-check", action="store_true",
                   help="do not check that each submission carries the audio it claims (its own clip's in "
                        "reconstruction mode, the paired clip's with --pairs)")
    p.add_argument("--metrics", default=None, metavar="NAMES",
                   help="comma-separated subset (any case; LSE-C = lse_c); default: every metric of the mode")
    p.add_argument("--split", default=None, help="score only reference clips of this split (e.g. test)")
    p.add_argument("--crop", choices=["aligned", "full"], default="aligned",
                   help="image region for PSNR/SSIM/FID: aligned face crop or full frame")
    p.add_argument("--lse-crop", choices=["aligned", "syncnet-pipeline"], default="aligned",
                   help="SyncNet input: the reference's aligned crop, or syncnet_python's tracked 1.4x crop")
    p.add_argument("--lse-detector", choices=["dlib", "s3fd"], default="dlib",
                   help="face detector of the syncnet-pipeline crop (s3fd: upstream's, needs sfd_face.pth)")
    p.add_argument("--lse-preset", default="fast", metavar="NAME",
                   help="which upstream LSE script to reproduce: fast (default: talkbench's direct crops, no codec "
                        "round trips), syncnet_python, wav2lip-real, wav2lip-lrs, latentsync (docs/LSE_PRESETS.md)")
    p.add_argument("--lse-track-aggregation", choices=["mean", "best"], default="mean",
                   help="tracked presets: mean over a video's face tracks, or the best track (highest LSE-C)")
    p.add_argument("--ci-resamples", type=int, default=None, metavar="N",
                   help="bootstrap resamples over videos for every metric's 95%% interval (1000; 0: none)")
    p.add_argument("--ci-seed", type=int, default=None, metavar="SEED", help="bootstrap seed (0)")
    p.add_argument("--s3fd", default=None, metavar="PATH", help="sfd_face.pth (else TALKBENCH_S3FD / the cache dir)")
    p.add_argument("--lmd-preset", choices=["ratnerf", "atvgnet"], default="ratnerf",
                   help="per-frame LMD: mean (ratnerf) or sum (atvgnet) of point distances")
    p.add_argument("--csim-stride", type=int, default=None, metavar="K", help="embed every k-th frame for CSIM (5)")
    p.add_argument("--fid-stride", type=int, default=None, metavar="K", help="every k-th frame into FID (1)")
    p.add_argument("--name", default=None, help="submission name (leaderboard row)")
    p.add_argument("--model", default=None, help="model name")
    p.add_argument("--date", default=None, help="YYYY-MM-DD")
    p.add_argument("--link", default=None, help="http(s) URL of the paper or code")
    p.add_argument("--notes", default=None, help="one line shown with the row")
    p.add_argument("--kind", choices=["model", "ground-truth", "baseline"], default="model",
                   help="what the submission is (ground truth and baselines are listed, marked as such)")
    p.add_argument("--benchmark-name", default=None,
                   help="default: the reference directory's name (reference-free: the submission folder's name, "
                        "which with the set of file names keys its leaderboard table)")
    p.add_argument("--cpbd-stride", type=int, default=None, metavar="K", help="CPBD on every k-th face frame (1)")
    p.add_argument("--syncnet", default=None, metavar="PATH", help="syncnet_v2.model (else env / cache)")
    p.add_argument("--inception", default=None, metavar="PATH",
                   help="pt_inception-2015-12-05-6726825d.pth (else env / cache)")
    p.add_argument("--allow-uncalibrated-fid", action="store_true",
                   help="without official Inception weights, compute FID with a seeded random network, "
                        "labelled uncalibrated")
    p.add_argument("--sync-expert", default=None, metavar="PATH", help="in-domain sync expert checkpoint")
    p.add_argument("--lpips-net", choices=["alex", "vgg"], default="alex", help="LPIPS backbone (alex: the lpips default)")
    p.add_argument("--alexnet", default=None, metavar="PATH", help="alexnet-owt-7be5be79.pth for LPIPS "
                                                                   "(else TALKBENCH_ALEXNET / the cache / torch hub)")
    p.add_argument("--vgg16", default=None, metavar="PATH", help="vgg16-397923af.pth for LPIPS-vgg")
    p.add_argument("--arcface", default=None, metavar="PATH",
                   help="InsightFace w600k_r50.onnx for ArcFace-CSIM (else TALKBENCH_ARCFACE / the cache / "
                        "~/.insightface/models/buffalo_l)")
    p.add_argument("--i3d", default=None, metavar="PATH", help="i3d_torchscript.pt for FVD (else TALKBENCH_I3D / cache)")
    p.add_argument("--device", default="cpu", choices=None, metavar="DEVICE",
                   help="where SyncNet / Inception / S3FD / the sync expert run: cpu (default), cuda, cuda:N, mps "
                        "(GPU numbers can differ from CPU ones in the last digits; the device is recorded)")
    p.add_argument("--follow-symlinks-inside", action="append", default=[], metavar="DIR",
                   help="follow submission symlinks that point into DIR (repeatable; you vouch for DIR). "
                        "Without it a symlink leaving the submission folder is skipped")
    p.add_argument("--scheduler", default=None, metavar="ADDR",
                   help="Dask scheduler address (default: a local cluster on 127.0.0.1); 'inline' for this process")
    p.add_argument("--workers", type=int, default=None, help="local cluster workers (default: CPU count)")
    p.add_argument("--host", default=None,
                   help="interface the local cluster listens on (default 127.0.0.1; e.g. 0.0.0.0 on purpose)")
    p.add_argument("--dashboard-address", default=None, metavar="HOST:PORT",
                   help="where the Dask dashboard listens (default: HOST:0, a free port on --host)")
    p.add_argument("--fid-cache", default=None, metavar="DIR", help="FID reference-statistics cache dir")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=run)


def list_metrics_text(syncnet=None, inception=None, s3fd=None, sync_expert=None, lpips_net="alex",
                      **weight_paths) -> str:
    """The ``--list-metrics`` table: name, version, direction, modes, weights and whether each is present."""
    from evalkit.metrics import all_specs
    from evalkit.weights import ABSENT, WeightPaths, resolve_weights
    from evalkit.config import EvalConfig

    cfg = EvalConfig(allow_uncalibrated_fid=True, lpips_net=lpips_net)
    specs = all_specs()
    names = {w for s in specs for w in s.weights(cfg)} | {"s3fd"}
    paths = WeightPaths(syncnet=syncnet, inception=inception, s3fd=s3fd, sync_expert=sync_expert,
                        **{k: v for k, v in weight_paths.items() if v})
    resolved, unusable = resolve_weights(names, cfg, paths)
    lines = [f"{'metric':<14} {'label':<18} {'version':<15} {'dir':<3} {'modes':<37} weights"]
    for s in specs:
        ws = []
        for w in s.weights(cfg) + (("s3fd",) if s.name.startswith("lse") else ()):
            info = resolved.get(w)
            if w in unusable:
                state = f"absent ({ABSENT[w]})" if unusable[w].startswith(ABSENT[w]) else "unusable"
            elif info is not None and info.path is None:
                state = "absent (random, uncalibrated)"
            else:
                state = "present, official" if info.calibrated else "present, unverified"
            ws.append(f"{w}{' (syncnet-pipeline --lse-detector s3fd)' if w == 's3fd' else ''}: {state}")
        lines.append(f"{s.name:<14} {s.label:<18} {s.version:<15} {ARROW[s.higher_is_better]:<3} "
                     f"{','.join(s.modes):<37} {'; '.join(ws) or '- (weights-free)'}")
    return "\n".join(lines)


def format_summary(results: dict) -> str:
    """The metric table (↑ higher is better, ↓ lower), the scored / skipped line and why videos were skipped."""
    lines = [f"{'metric':<14} {'':<16} {'':1} {'value':>12} {'± stderr':>10}  {'n':>5}  note"]
    for name in results.get("metric_order") or results["metrics"]:
        m = results["metrics"][name]
        label = m.get("label", name)
        if m["value"] is None:
            val, err, note = "—", "", f"skipped: {m['skipped_reason']}"
        else:
            val = f"{m['value']:.4f}"
            err = "" if m["stderr"] is None else f"{m['stderr']:.4f}"
            note = "" if m["calibrated"] else "UNVERIFIED weights" if m.get("weights_status") == "unverified" \
                else "UNCALIBRATED"
            if m.get("warning"):
                note = (note + "; " if note else "") + "low N"
        lines.append(f"{name:<14} {label:<16} {ARROW[m['higher_is_better']]:1} {val:>12} {err:>10}  {m['n_scored']:>5}  "
                     f"{note}")
    n = results["n_videos"]
    of = "videos" if (results.get("submission") or {}).get("mode") == "reference-free" else "reference clips"
    lines.append(f"{n['scored']} scored, {n['skipped']} skipped (of {n['expected']} {of})"
                 + (f"; {n.get('extra', 0)} unknown files ignored" if n.get("extra") else ""))
    for s in results.get("skipped") or []:
        if s.get("code") != "unknown_clip":
            lines.append(f"  skipped {s['clip_id']} [{s.get('code')}]: {s['reason']}")
    if (n.get("skip_codes") or {}).get("unsafe_path"):
        lines.append("  hint: symlinks that leave the submission folder are not followed: copy the videos in "
                     "(cp -L), or pass --follow-symlinks-inside DIR for the folder they point into")
    if not n["scored"]:
        lines.append("nothing was scored: see the reasons above (exit status 1)")
    return "\n".join(lines)


def run(args) -> int:
    from evalkit.runner import EvaluationError, evaluate
    from prep.errors import TalkbenchError

    if args.list_metrics:
        print(list_metrics_text(args.syncnet, args.inception, args.s3fd, args.sync_expert, args.lpips_net,
                                **_weight_paths(args)))
        return 0
    free = not args.reference
    mode = args.mode or ("reference-free" if free else "reconstruction")
    missing = [f"--{k}" for k in ("submission", "out") if not getattr(args, k)]
    if missing:
        print(f"talkbench eval: {', '.join(missing)} required (or --list-metrics)", file=sys.stderr)
        return 2
    if free != (mode == "reference-free"):
        why = "needs --reference PREP_OUT" if free else "takes no --reference"
        print(f"talkbench eval: --mode {mode} {why}", file=sys.stderr)
        return 2
    if free and not (args.benchmark_name or "").strip():  # the set is named after its folder unless named
        from pathlib import Path

        args.benchmark_name = Path(args.submission).resolve().name or "videos"
    metrics = [m.strip() for m in args.metrics.split(",") if m.strip()] if args.metrics else None
    options = {"lse_detector": args.lse_detector, "lse_preset": args.lse_preset,
               "lse_track_aggregation": args.lse_track_aggregation, "weight_paths": _weight_paths(args),
               "device": args.device}
    for key in ("csim_stride", "fid_stride", "cpbd_stride", "ci_resamples", "ci_seed"):
        if getattr(args, key) is not None:
            options[key] = getattr(args, key)
    meta = {"name": args.name, "model": args.model, "date": args.date, "link": args.link,
            "notes": args.notes, "kind": args.kind}
    if free:
        return _run_free(args, metrics, options, meta)
    options.update(lmd_preset=args.lmd_preset, lpips_net=args.lpips_net, audio_check=not args.no_audio_check,
                   submission_kind=args.submission_kind)
    try:
        results = evaluate(args.reference, args.submission, args.out, mode=mode, metrics=metrics,
                           scheduler=args.scheduler, n_workers=args.workers, syncnet_path=args.syncnet,
                           inception_path=args.inception, allow_uncalibrated_fid=args.allow_uncalibrated_fid,
                           sync_expert=args.sync_expert, submission_meta=meta, crop=args.crop,
                           lse_crop=args.lse_crop, s3fd_path=args.s3fd, benchmark_name=args.benchmark_name,
                           fid_cache_dir=args.fid_cache, split=args.split, progress=not args.no_progress,
                           follow_symlinks_inside=args.follow_symlinks_inside, pairs=args.pairs, host=args.host,
                           dashboard_address=args.dashboard_address, **options)
    except (EvaluationError, ValueError, FileNotFoundError, NotADirectoryError, TalkbenchError) as e:
        print(f"talkbench eval: error: {' '.join(str(e).split())}", file=sys.stderr)
        return 2
    return _report(results, args.out)


def _weight_paths(args) -> dict:
    return {k: getattr(args, k) for k in ("alexnet", "vgg16", "arcface", "i3d") if getattr(args, k, None)}


def _report(results: dict, out) -> int:
    print(format_summary(results))
    print(f"results: {out}/results.json")
    return 0 if results["n_videos"]["scored"] > 0 else 1


def _run_free(args, metrics, options, meta) -> int:
    from evalkit.free import evaluate_reference_free
    from evalkit.weights import EvaluationError
    from prep.errors import TalkbenchError

    try:
        results = evaluate_reference_free(args.submission, args.out, args.benchmark_name, metrics=metrics,
                                          scheduler=args.scheduler, n_workers=args.workers,
                                          syncnet_path=args.syncnet, s3fd_path=args.s3fd,
                                          sync_expert=args.sync_expert, submission_meta=meta, lse_crop=args.lse_crop,
                                          progress=not args.no_progress, **options)
    except (EvaluationError, ValueError, FileNotFoundError, NotADirectoryError, TalkbenchError) as e:
        print(f"talkbench eval: error: {' '.join(str(e).split())}", file=sys.stderr)
        return 2
    return _report(results, args.out)


__all__ = ["register", "run", "format_summary", "list_metrics_text"]
