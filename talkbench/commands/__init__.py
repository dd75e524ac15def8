"""The subcommands of ``talkbench``: each module has ``register(subparsers)`` and a handler that calls one
public library function. Modules here stay cheap to import (heavy imports inside the handlers)."""
from . import animate, card, codec_report, demo, eval, leaderboard, models, prep, refmodel

# in the order `talkbench --help` lists them (refmodel registers both `train` and `sample`)
MODULES = (prep, eval, codec_report, refmodel, animate, leaderboard, card, demo, models)

__all__ = ["MODULES"]
