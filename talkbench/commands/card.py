"""`talkbench card PREP_OUT [--check]` (cheap to import: the work happens in the handler)."""
from __future__ import annotations

import sys


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "card", help="write or check a Hugging Face dataset card for a prep output",
        description="Write PREP_OUT/README.md (Hugging Face dataset card computed from the shards), or with "
                    "--check verify an existing card against the manifest and shards (exit 1 on mismatch).")
    p.add_argument("prep_out", metavar="PREP_OUT")
    p.add_argument("--check", action="store_true", help="validate the existing card instead of writing it")
    p.add_argument("--license", default="other", help="Hub licence id (default: other = the sources' terms)")
    p.add_argument("--license-name", default=None, help="licence name when --license is 'other'")
    p.add_argument("--license-link", default=None, help="URL or file of the licence text")
    p.add_argument("--pretty-name", default=None, help="dataset title (default: the folder name)")
    p.add_argument("--source-dataset", action="append", default=None, dest="source_datasets",
                   help="a source_datasets entry, e.g. 'extended|lrs2' (repeatable; default: original)")
    p.set_defaults(func=run)


def run(args) -> int:
    from pathlib import Path

    if not (Path(args.prep_out) / "manifest.json").is_file():
        print(f"talkbench card: {args.prep_out}: no manifest.json (not a finished prep output)", file=sys.stderr)
        return 2
    if args.check:
        from data_cards.check import check_card

        problems = check_card(args.prep_out)
        for p in problems:
            print(f"card check: {p}", file=sys.stderr)
        n = len(problems)
        print(f"{args.prep_out}: card " + ("OK" if not n else
                                            f"does NOT match its shards ({n} problem{'s' if n != 1 else ''})"))
        return 1 if problems else 0
    from data_cards.card import write_card

    path = write_card(args.prep_out, license=args.license, license_name=args.license_name,
                      license_link=args.license_link, pretty_name=args.pretty_name,
                      source_datasets=args.source_datasets)
    print(f"wrote {path}")
    return 0
