"""The `talkbench` console script: data preparation and evaluation for talking-face / lip-sync generation.

Each subcommand (``talkbench/commands/``) is a thin wrapper over one public library function. Logging is
configured here and nowhere else.
"""
from __future__ import annotations

import argparse
import logging
import os
import sys

from talkbase import __version__

from .commands import MODULES

_NOISY = ("distributed", "bokeh", "tornado", "asyncio", "matplotlib", "PIL", "numba", "fsspec", "urllib3")


def _logging_options() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(add_help=False)
    g = p.add_argument_group("output")
    g.add_argument("-v", "--verbose", action="count", default=argparse.SUPPRESS,
                   help="more logging (-v info, -vv debug, with Dask's own logs)")
    g.add_argument("-q", "--quiet", action="store_true", default=argparse.SUPPRESS, help="only errors")
    return p


class _SubParsers(argparse._SubParsersAction):
    """Every subcommand accepts -v / -q too (before or after its name)."""

    def add_parser(self, name, **kwargs):
        kwargs.setdefault("parents", []).append(_logging_options())
        return super().add_parser(name, **kwargs)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="talkbench", description=__doc__.splitlines()[0],
                                     parents=[_logging_options()])
    parser.add_argument("--version", action="version", version=f"talkbench {__version__}")
    parser.register("action", "parsers", _SubParsers)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for module in MODULES:
        module.register(sub)
    return parser


def configure_logging(verbose: int, quiet: bool) -> None:
    """Warnings (one line, no timestamps) by default; ``-v`` info, ``-vv`` debug with timestamps."""
    level = logging.ERROR if quiet else (logging.WARNING, logging.INFO, logging.DEBUG)[min(verbose, 2)]
    fmt = "%(asctime)s %(levelname)s %(name)s: %(message)s" if verbose >= 2 else "%(levelname)s: %(message)s"
    logging.basicConfig(level=level, format=fmt, datefmt="%H:%M:%S")
    if verbose < 2:  # Dask and friends are chatty; -vv shows them
        # distributed configures its own loggers when imported (and in every worker): tell it via config
        os.environ.setdefault("DASK_LOGGING__DISTRIBUTED", "error")
        for noisy in _NOISY:
            logging.getLogger(noisy).setLevel(logging.ERROR)


# Set once, before anything loads OpenMP (torch, OpenCV): idle OpenMP threads sleep instead of spinning.
# Spinning threads of one process beside another busy process make every parallel region wait for a core that is
# busy elsewhere (bench/train_contention.py, beside one busy process: a tiny training step 37.7 s instead of 4.7 s).
THREAD_ENV = {"OMP_WAIT_POLICY": "PASSIVE", "KMP_BLOCKTIME": "0"}


def main(argv: list[str] | None = None) -> int:
    for key, value in THREAD_ENV.items():
        os.environ.setdefault(key, value)
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    configure_logging(getattr(args, "verbose", 0), getattr(args, "quiet", False))
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
