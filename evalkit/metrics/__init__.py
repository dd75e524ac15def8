"""The metric registry: every module of this package (except ``base``) is one metric's home and exports
``SPECS``. Adding a metric is adding a module here (and its tests); ``talkbench eval --list-metrics``,
``--metrics``, the worker, the merge and the results file all follow from its spec."""
from __future__ import annotations

import importlib
import pkgutil
from functools import lru_cache

from .base import MetricSpec

@lru_cache(maxsize=1)
def _registry() -> dict[str, MetricSpec]:
    found: dict[str, MetricSpec] = {}
    for mod in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
        if mod.name == "base" or mod.name.startswith("_"):
            continue
        for spec in importlib.import_module(f"{__name__}.{mod.name}").SPECS:
            if spec.name in found:
                raise RuntimeError(f"metric {spec.name!r} defined twice ({mod.name})")
            found[spec.name] = spec
    return dict(sorted(found.items(), key=lambda kv: (kv[1].order, kv[0])))


def all_specs() -> list[MetricSpec]:
    return list(_registry().values())


def get(name: str) -> MetricSpec:
    spec = _registry().get(canonical(name))
    if spec is None:
        raise KeyError(f"unknown metric {name!r}; known: {', '.join(_registry())}")
    return spec


def canonical(name: str) -> str:
    """``PSNR``, ``LSE-C``, ``lse_c`` and ``lse-c`` all name ``lse_c``."""
    return str(name).strip().lower().replace("-", "_")


def select(names, mode: str) -> tuple[str, ...]:
    """Canonical names of the requested metrics in registry order (all of ``mode``'s when none are named).

    Raises ValueError for an unknown name (listing the known ones) or one that does not apply to ``mode``.
    """
    reg = _registry()
    if not names:
        return tuple(n for n, s in reg.items() if mode in s.modes)
    wanted = [canonical(n) for n in names]
    unknown = [n for n, c in zip(names, wanted) if c not in reg]
    if unknown:
        raise ValueError(f"unknown metric(s) {unknown}; known: {', '.join(reg)} (see --list-metrics)")
    wrong = [c for c in wanted if mode not in reg[c].modes]
    if wrong:
        allowed = [n for n, s in reg.items() if mode in s.modes]
        raise ValueError(f"metric(s) {wrong} do not apply in {mode} mode (it allows {', '.join(allowed)})")
    return tuple(n for n in reg if n in set(wanted))


__all__ = ["MetricSpec", "all_specs", "get", "select", "canonical"]
