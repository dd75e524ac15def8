"""`--help` of every subcommand: each option says what it does, and a default is printed once."""
from __future__ import annotations

import argparse
import re

import pytest

from talkbench.cli import build_parser


def _subparsers(parser):
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield name, sub
                yield from ((f"{name} {n}", s) for n, s in _subparsers(sub))


SUBCOMMANDS = dict(_subparsers(build_parser()))


@pytest.mark.parametrize("name", sorted(SUBCOMMANDS))
def test_every_option_has_help_and_defaults_are_not_repeated(name):
    sub = SUBCOMMANDS[name]
    missing = [a.option_strings[0] for a in sub._actions
               if a.option_strings and not a.help and not isinstance(a, argparse._HelpAction)]
    assert missing == [], f"talkbench {name}: options without help: {missing}"
    assert "(default: None)" not in sub.format_help()
    for action in sub._actions:
        entry = " ".join(sub._get_formatter()._format_action(action).split())
        assert len(re.findall(r"\bdefault\b", entry)) <= 1, f"talkbench {name}: {entry}"


def test_openmp_threads_sleep_when_idle_and_the_user_can_override_it():
    """Set before torch loads OpenMP (bench/train_contention.py: spinning threads beside a busy process)."""
    import os
    import subprocess
    import sys

    code = ("import sys, talkbench.cli as c; assert 'torch' not in sys.modules; "
            "c.main(['models', 'list']); import os, torch; print(os.environ['OMP_WAIT_POLICY'])")
    env = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"}
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    assert r.returncode == 0 and r.stdout.strip().splitlines()[-1] == "PASSIVE", r.stderr
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                       env=dict(env, OMP_WAIT_POLICY="ACTIVE"))
    assert r.stdout.strip().splitlines()[-1] == "ACTIVE"
