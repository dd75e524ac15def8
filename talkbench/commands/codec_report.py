"""`talkbench codec-report PREP_OUT --out DIR`: the ground truth re-encoded with each codec, scored as ground-truth
submissions, and a table of how much each metric moves from the codec alone (wraps
``evalkit.codec_report.codec_report``). Cheap to import."""
from __future__ import annotations

import sys


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "codec-report", help="score the ground truth re-encoded with several codecs (the metrics' noise floor)",
        description="Re-encode every reference clip (H.264 CRF 18/23/28, HEVC, AAC vs lossless audio), score each "
                    "set as a ground-truth submission (DIR/<variant>/results.json, listed by the leaderboard as "
                    "ground-truth rows) and print how much each metric moves from the codec alone.")
    p.add_argument("reference", metavar="PREP_OUT", help="talkbench prep output directory")
    p.add_argument("--out", required=True, metavar="DIR", help="where each variant's videos and results.json go")
    p.add_argument("--variants", default=None, metavar="NAMES",
                   help="comma-separated subset of h264-crf18-aac, h264-crf23-aac, h264-crf28-aac, "
                        "h264-crf18-alac, hevc-crf28-aac (default: all that PyAV's FFmpeg can encode)")
    p.add_argument("--metrics", default=None, metavar="NAMES", help="comma-separated metrics (default: all)")
    p.add_argument("--scheduler", default=None, metavar="ADDR", help="Dask scheduler address, or 'inline'")
    p.add_argument("--syncnet", default=None, metavar="PATH", help="syncnet_v2.model (else env / cache)")
    p.add_argument("--allow-uncalibrated-fid", action="store_true", help="FID from a seeded random Inception")
    p.add_argument("--lse-preset", default="fast", metavar="NAME", help="LSE preset (see talkbench eval)")
    p.set_defaults(func=run)


def run(args) -> int:
    from evalkit.codec_report import codec_report, format_report
    from evalkit.runner import EvaluationError

    split = lambda s: [x.strip() for x in s.split(",") if x.strip()] if s else None  # noqa: E731
    try:
        report = codec_report(args.reference, args.out, variants=split(args.variants), metrics=split(args.metrics),
                              scheduler=args.scheduler, syncnet_path=args.syncnet,
                              allow_uncalibrated_fid=args.allow_uncalibrated_fid, lse_preset=args.lse_preset)
    except (EvaluationError, ValueError, FileNotFoundError) as e:
        print(f"talkbench codec-report: {e}", file=sys.stderr)
        return 2
    print(format_report(report))
    print(f"report: {args.out}/codec_report.md")
    return 0


__all__ = ["register", "run"]
