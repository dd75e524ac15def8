"""evalkit: score talking-face submissions (PSNR, SSIM, LMD, FID, LSE-C/D, dlib-CSIM, in-house sync).

Everything is imported lazily (``import evalkit`` pulls in no torch/dask/dlib), so the CLI stays fast.

``evalkit.lse`` is both a submodule and the documented function ``lse(frames, audio, model)``. Python
binds an imported submodule onto its package, which would shadow a re-exported function of the same
name, so ``evalkit.lse`` is the submodule made callable: ``evalkit.lse(frames, audio, model)`` calls
``evalkit.lse.lse`` and ``evalkit.lse.offset_distances`` etc. keep working.
"""
from __future__ import annotations

import importlib
import sys
import types

_LAZY = {
    # networks (evalkit.inception / evalkit.syncnet)
    "load_inception": "evalkit.inception",
    "load_syncnet": "evalkit.syncnet",
    # pipeline
    "evaluate": "evalkit.runner",
    "validate_submission": "evalkit.submission",
    "SubmissionVideo": "evalkit.submission",
    "load_results": "evalkit.results",
    "RESULTS_SCHEMA_VERSION": "evalkit.results",
    "EvalConfig": "evalkit.protocol",
    "SubmissionLimits": "evalkit.protocol",
    "PROTOCOL_VERSION": "evalkit.protocol",
    # metric classes
    "PSNR": "evalkit.image_metrics",
    "SSIM": "evalkit.image_metrics",
    "LMD": "evalkit.lmd",
    "CSIM": "evalkit.csim",
    "FID": "evalkit.fid",
    "frechet_distance": "evalkit.fid",
}

__all__ = sorted(_LAZY) + ["lse"]


def __getattr__(name: str):
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'evalkit' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__():
    return sorted(set(globals()) | set(__all__))


class _CallableModule(types.ModuleType):
    """A module that, called, calls its own function of the same name (``evalkit.lse(...)``)."""

    def __call__(self, *args, **kwargs):
        return getattr(self, self.__name__.rsplit(".", 1)[-1])(*args, **kwargs)


class _Package(types.ModuleType):
    @property
    def lse(self):
        mod = importlib.import_module("evalkit.lse")
        if not isinstance(mod, _CallableModule):
            mod.__class__ = _CallableModule
        return mod

    @lse.setter
    def lse(self, value):
        # the import system binds the submodule here after ``import evalkit.lse``; the getter returns it
        pass


sys.modules[__name__].__class__ = _Package
