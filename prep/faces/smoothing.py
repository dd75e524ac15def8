"""Causal temporal smoothing (one-euro filter) and the jitter measure.

The one-euro filter (Casiez et al., CHI 2012) is a first-order low-pass whose cutoff rises with the
signal's speed: at rest it removes detector noise (low cutoff), in fast motion it follows with little
lag (high cutoff). It only looks at the past, so a clip processed chunk by chunk is smoothed exactly as
the whole clip at once. Speeds are divided by a per-update ``scale`` (the face size), so the same
parameters work for 100 px and 600 px faces.
"""
from __future__ import annotations

import math

import numpy as np


def _alpha(cutoff, dt: float):
    tau = 1.0 / (2.0 * math.pi * cutoff)
    return 1.0 / (1.0 + tau / dt)


class OneEuroFilter:
    """Element-wise one-euro filter over arrays of a fixed shape, sampled at ``fps``.

    ``min_cutoff`` (Hz) sets smoothing at rest; ``beta`` (per scale-unit/s) how fast the cutoff rises
    with speed; ``d_cutoff`` (Hz) smooths the speed estimate. When the last axis has size 2 it is
    treated as (x, y) points: both coordinates share one speed (the point's), so smoothing is
    rotation invariant.
    """

    def __init__(self, min_cutoff: float = 1.0, beta: float = 0.0, d_cutoff: float = 1.0, fps: float = 25.0):
        self.min_cutoff, self.beta, self.d_cutoff = float(min_cutoff), float(beta), float(d_cutoff)
        self.dt = 1.0 / float(fps)
        self.reset()

    def reset(self) -> None:
        """Forget the past (a new track starts)."""
        self._x = None
        self._dx = None

    def __call__(self, x: np.ndarray, scale: float = 1.0) -> np.ndarray:
        x = np.asarray(x, np.float64)
        if self._x is None:
            self._x, self._dx = x.copy(), np.zeros_like(x)
            return x.copy()
        dx = (x - self._x) / self.dt
        self._dx = self._dx + _alpha(self.d_cutoff, self.dt) * (dx - self._dx)
        speed = np.abs(self._dx)
        if x.ndim and x.shape[-1] == 2:
            speed = np.broadcast_to(np.linalg.norm(self._dx, axis=-1, keepdims=True), x.shape)
        cutoff = self.min_cutoff + self.beta * speed / max(float(scale), 1e-9)
        self._x = self._x + _alpha(cutoff, self.dt) * (x - self._x)
        return self._x.copy()


def jitter(points: np.ndarray, valid: np.ndarray | None = None) -> float:
    """Mean frame-to-frame motion of points: mean over consecutive valid frame pairs and points of
    ``|p[t] - p[t-1]|`` (units of ``points``). ``points`` is (T, N, 2); NaN when no valid pair."""
    points = np.asarray(points, np.float64)
    ok = np.ones(len(points), bool) if valid is None else np.asarray(valid, bool)
    pair = ok[1:] & ok[:-1]
    if not pair.any():
        return float("nan")
    step = np.linalg.norm(points[1:] - points[:-1], axis=-1)[pair]
    return float(step.mean())


__all__ = ["OneEuroFilter", "jitter"]
