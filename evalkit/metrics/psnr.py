"""PSNR between reference and generated frames of one declared region (torchmetrics numerics).

Inputs are (N, H, W, 3) uint8 RGB frames of the region (the aligned face crop or the full frame); the
value is computed on 0-255 data (``data_range=255``) over H, W and RGB per frame, then averaged over the
frames of a video and over videos. Identical frames would give +inf and are capped at ``cap_db``.
"""
from __future__ import annotations

import numpy as np
import torch

from ..config import region_name
from ..geometry import CROP_PROTOCOL
from .base import VideoMeanMetric, base_protocol, frame_mean_spec

DATA_RANGE = 255.0
VERSION = "psnr-1"


def to_nchw(frames: np.ndarray, dtype) -> torch.Tensor:
    a = np.asarray(frames)
    if a.ndim == 3:
        a = a[None]
    if a.ndim != 4 or a.shape[-1] != 3:
        raise ValueError(f"expected (N, H, W, 3) RGB frames, got shape {a.shape}")
    return torch.from_numpy(np.ascontiguousarray(a)).permute(0, 3, 1, 2).to(dtype)


def check_pair(ref: np.ndarray, gen: np.ndarray) -> None:
    if np.shape(ref) != np.shape(gen):
        raise ValueError(f"reference and generated frames differ in shape: {np.shape(ref)} vs {np.shape(gen)}")


def psnr_frames(ref: np.ndarray, gen: np.ndarray, cap_db: float | None = 100.0) -> np.ndarray:
    """Per-frame PSNR in dB over H, W and RGB (float64). Identical frames give ``cap_db`` (not +inf)."""
    from torchmetrics.functional.image import peak_signal_noise_ratio

    check_pair(ref, gen)
    if len(ref) == 0:
        return np.zeros(0)
    v = peak_signal_noise_ratio(to_nchw(gen, torch.float64), to_nchw(ref, torch.float64),
                                data_range=DATA_RANGE, reduction="none", dim=(1, 2, 3))
    v = v.reshape(-1).numpy().astype(np.float64)
    return np.minimum(v, float(cap_db)) if cap_db is not None else v


def psnr(ref: np.ndarray, gen: np.ndarray, cap_db: float | None = 100.0) -> float:
    """Mean per-frame PSNR of one video (functional twin of :class:`PSNR`)."""
    return float(np.mean(psnr_frames(ref, gen, cap_db)))


class PSNR(VideoMeanMetric):
    """PSNR (dB): ``update(ref_frames, gen_frames)`` per chunk, ``end_video()`` per video."""

    higher_is_better = True

    def __init__(self, cap_db: float | None = 100.0, **kwargs):
        super().__init__(**kwargs)
        self.cap_db = cap_db

    def frame_values(self, ref, gen) -> np.ndarray:
        return psnr_frames(ref, gen, self.cap_db)


def region_protocol(version: str, config) -> dict:
    """Region settings shared by the pixel metrics (PSNR, SSIM)."""
    p = {**base_protocol(version, config), "region": region_name(config.region), "data_range": 255, "color": "RGB",
         "implementation": "torchmetrics.functional.image"}
    if config.region == "aligned":
        p.update(CROP_PROTOCOL, crop_size=config.crop_size, frames_scored="frames with a reference face")
    else:
        p["resize"] = "generated frame resized to the reference size (bilinear) when they differ"
    return p


def feed_region(metric: VideoMeanMetric, chunk) -> None:
    """Per-frame values of the chunk's region pairs; NaN for frames outside the region set (no face)."""
    ref, gen, pos = chunk.region_pairs
    vals = np.full(chunk.size, np.nan)
    if len(pos):
        vals[pos] = metric.frame_values(ref, gen)
    metric.add_frame_values(vals)


SPECS = (frame_mean_spec(
    name="psnr", label="PSNR", version=VERSION, unit="dB", higher_is_better=True, modes=("reconstruction",),
    needs=("region_pairs",), description="peak signal-to-noise ratio of the region, per frame",
    protocol=lambda config: {**region_protocol(VERSION, config), "dtype": "uint8 -> float64",
                                      "per_frame": "10*log10(255^2 / MSE over H,W,C)", "cap_db": config.psnr_cap_db},
    new=lambda config: PSNR(cap_db=config.psnr_cap_db), feed=feed_region, decimals=2, valid_range=(0.0, None), order=10),)

__all__ = ["PSNR", "psnr", "psnr_frames", "DATA_RANGE", "SPECS", "region_protocol", "feed_region"]
