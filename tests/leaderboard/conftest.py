"""Leaderboard fixtures: the results-file factory (``lb_results``) and one built site shared by the tests."""
from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest


def _load_factory():
    """``lb_results`` by path, registered under its name: test modules ``import lb_results`` in any import mode."""
    name = "lb_results"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, Path(__file__).with_name(f"{name}.py"))
        mod = importlib.util.module_from_spec(spec)
        sys.modules[name] = mod
        spec.loader.exec_module(mod)
    return sys.modules[name]


lb_results = _load_factory()


@pytest.fixture(scope="session")
def lb_site(tmp_path_factory):
    """(results root, site folder, build summary) of :func:`lb_results.make_results_root`, built once."""
    from leaderboard import build_leaderboard

    root = lb_results.make_results_root(tmp_path_factory.mktemp("results"))
    out = tmp_path_factory.mktemp("site")
    summary = build_leaderboard(root, out)
    return root, out, summary
