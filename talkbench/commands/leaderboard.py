"""`talkbench leaderboard RESULTS_ROOT --out SITE` (cheap to import: the work happens in the handler)."""
from __future__ import annotations

import sys


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "leaderboard", help="regenerate the leaderboard site from stored results",
        description="Read every results.json under RESULTS_ROOT (validated against the submission registry "
                    "when there is one) and write leaderboard.md, leaderboard.csv and a static index.html.")
    p.add_argument("results_root", metavar="RESULTS_ROOT")
    p.add_argument("--out", required=True, metavar="SITE", help="output folder for the site")
    p.add_argument("--registry", default=None,
                   help="submission registry JSON (default: RESULTS_ROOT/registry.json when present)")
    p.add_argument("--strict", action="store_true", help="exit 1 if any results file was rejected")
    p.set_defaults(func=run)


def run(args) -> int:
    from leaderboard import build_leaderboard
    from leaderboard.registry import ResultsError
    from talkbase.escape import clean_text

    try:
        s = build_leaderboard(args.results_root, args.out, registry=args.registry)
    except (FileNotFoundError, ResultsError) as e:
        print(f"talkbench leaderboard: {e}", file=sys.stderr)
        return 2
    print(f"{s['benchmarks']} benchmark(s), {s['accepted']} results accepted ({s['ranked']} ranked, "
          f"{s['not_ranked']} not ranked), {len(s['rejected'])} rejected")
    for r in s["rejected"]:
        print(f"  rejected {clean_text(r['path'], 200)}: {clean_text(r['reason'], 300)}")
    print(f"site: {s['html']}\nmarkdown: {s['markdown']}\ncsv: {s['csv']}")
    return 1 if args.strict and s["rejected"] else 0
