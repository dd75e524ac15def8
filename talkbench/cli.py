"""The `talkbench` console script. Each subcommand is a thin wrapper over one public library function.

Subcommands live next to the code they wrap (``prep/cli.py``, ``evalkit/cli.py``, ...): each of those
modules has ``register(subparsers)`` and must stay cheap to import (heavy imports inside handlers).
"""
from __future__ import annotations

import argparse
import importlib
import logging
import os
import sys

from . import __version__

# (command, module providing register(), one-line help used if that module is missing)
COMMANDS = [
    ("prep", "prep.cli", "videos -> Parquet shards (Dask)"),
    ("eval", "evalkit.cli", "score a submission against reference shards"),
    ("train", "refmodel.cli", "train the reference diffusion model on shards"),
    ("sample", "refmodel.cli", "generate submission videos with the reference model or a baseline"),
    ("leaderboard", "leaderboard.cli", "regenerate the leaderboard site from stored results"),
    ("card", "data_cards.cli", "write or check a Hugging Face dataset card for a prep output"),
    ("demo", "talkbench.demo", "offline end-to-end demo on a synthetic dataset"),
    ("models", "talkbench.models_cli", "list, verify or fetch model weights"),
]


def _not_built(name: str, reason: str):
    def run(args) -> int:
        print(f"talkbench {name}: not built yet in this version ({reason})", file=sys.stderr)
        return 2
    return run


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="talkbench", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=f"talkbench {__version__}")
    parser.add_argument("-v", "--verbose", action="count", default=0, help="more logging (-vv for debug)")
    parser.add_argument("-q", "--quiet", action="store_true", help="only warnings and errors")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    registered = set()
    for name, module, help_ in COMMANDS:
        if name in registered:
            continue
        try:
            mod = importlib.import_module(module)
            register = getattr(mod, "register")
        except (ImportError, AttributeError) as e:
            p = sub.add_parser(name, help=f"{help_} [not built yet]")
            p.set_defaults(func=_not_built(name, f"{module}: {e}"))
            registered.add(name)
            continue
        before = set(sub.choices)
        register(sub)
        registered |= set(sub.choices) - before
        if name not in sub.choices:
            p = sub.add_parser(name, help=f"{help_} [not built yet]")
            p.set_defaults(func=_not_built(name, f"{module} does not register it"))
            registered.add(name)
    return parser


def configure_logging(verbose: int, quiet: bool) -> None:
    level = logging.WARNING if quiet else (logging.INFO if verbose <= 1 else logging.DEBUG)
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s",
                        datefmt="%H:%M:%S")
    if verbose < 2:  # Dask and friends are chatty at INFO; -vv shows them
        # distributed configures its own loggers when imported (and in every worker): tell it via config
        os.environ.setdefault("DASK_LOGGING__DISTRIBUTED", "warning")
        for noisy in ("distributed", "bokeh", "tornado", "asyncio", "matplotlib", "PIL", "numba"):
            logging.getLogger(noisy).setLevel(logging.WARNING)


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    configure_logging(args.verbose, args.quiet)
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
