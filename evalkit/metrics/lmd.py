"""LMD: landmark distance between generated and reference frames, mouth (points 48-67) or full face.

Landmarks are (N, 68, 2) in the pixels of an aligned crop of a declared size (so numbers do not depend
on the source resolution). Each landmark set is centred on its own mean over the scored points before
comparing, which removes a global shift of the face (the sync/shape error is what is measured).

Presets (per frame, then mean over frames, then over videos):

- ``ratnerf``: mean over the points of the Euclidean distance.
- ``atvgnet``: sum over the points of the Euclidean distance (ATVGnet reports mouth LMD this way).
"""
from __future__ import annotations

import numpy as np

from ..geometry import CROP_PROTOCOL
from .base import VideoMeanMetric, base_protocol, frame_mean_spec

POINTS = {"mouth": np.arange(48, 68), "face": np.arange(0, 68)}
PRESETS = ("ratnerf", "atvgnet")
VERSION = "lmd-1"


def lmd_frames(ref: np.ndarray, gen: np.ndarray, points: str = "mouth", preset: str = "ratnerf") -> np.ndarray:
    """Per-frame LMD of (N, 68, 2) landmark arrays; NaN where either frame has no (finite) landmarks."""
    if preset not in PRESETS:
        raise ValueError(f"unknown LMD preset {preset!r}; one of {PRESETS}")
    if points not in POINTS:
        raise ValueError(f"points must be one of {sorted(POINTS)}, got {points!r}")
    ref = np.asarray(ref, dtype=np.float64)
    gen = np.asarray(gen, dtype=np.float64)
    if ref.shape != gen.shape or ref.ndim != 3 or ref.shape[1:] != (68, 2):
        raise ValueError(f"expected two (N, 68, 2) arrays, got {ref.shape} and {gen.shape}")
    idx = POINTS[points]
    r, g = ref[:, idx], gen[:, idx]
    r = r - r.mean(axis=1, keepdims=True)
    g = g - g.mean(axis=1, keepdims=True)
    d = np.linalg.norm(g - r, axis=2)  # (N, P)
    per_frame = d.mean(axis=1) if preset == "ratnerf" else d.sum(axis=1)
    return np.where(np.isfinite(per_frame), per_frame, np.nan)


def lmd(ref: np.ndarray, gen: np.ndarray, points: str = "mouth", preset: str = "ratnerf") -> float:
    """LMD of one video: mean of ``lmd_frames`` over frames with landmarks on both sides (NaN if none)."""
    v = lmd_frames(ref, gen, points, preset)
    v = v[np.isfinite(v)]
    return float(v.mean()) if v.size else float("nan")


class LMD(VideoMeanMetric):
    """LMD over videos: ``update(ref_landmarks, gen_landmarks)`` per chunk, ``end_video()`` per video."""

    higher_is_better = False

    def __init__(self, points: str = "mouth", preset: str = "ratnerf", **kwargs):
        super().__init__(**kwargs)
        if preset not in PRESETS or points not in POINTS:
            raise ValueError(f"bad LMD settings points={points!r} preset={preset!r}")
        self.points = points
        self.preset = preset

    def frame_values(self, ref, gen) -> np.ndarray:
        return lmd_frames(ref, gen, self.points, self.preset)


def _protocol(points: str):
    def protocol(config) -> dict:
        preset = config.lmd_preset
        return {**base_protocol(VERSION, config), **CROP_PROTOCOL, "crop_size": config.crop_size,
                "points": "48-67 (mouth)" if points == "mouth" else "0-67 (face)", "preset": preset,
                "per_frame": ("mean over points of |(g - mean g) - (r - mean r)|" if preset == "ratnerf"
                              else "sum over points of |(g - mean g) - (r - mean r)|"),
                "centring": "each landmark set minus its own mean over the scored points",
                "landmarks": "dlib 68-point shape predictor on reference and generated frames, given the "
                             "reference face box", "units": f"pixels of a {config.crop_size} px aligned crop"}
    return protocol


def _feed(metric: LMD, chunk) -> None:
    ref, gen = chunk.landmarks
    metric.update(ref, gen)


SPECS = tuple(frame_mean_spec(
    name=f"lmd_{points}", label=f"LMD ({points})", version=VERSION, unit="crop px", higher_is_better=False,
    modes=("reconstruction",), needs=("landmarks",),
    description=f"landmark distance, {'mouth points 48-67' if points == 'mouth' else 'all 68 points'}, centred",
    protocol=_protocol(points), new=lambda config, points=points: LMD(points, config.lmd_preset), feed=_feed,
    weights=lambda config: ("dlib",), headline=points == "mouth", valid_range=(0.0, None),
    order=30 if points == "mouth" else 31)
    for points in ("mouth", "face"))

__all__ = ["LMD", "lmd", "lmd_frames", "POINTS", "PRESETS", "SPECS"]
