"""SSIM between reference and generated frames of one declared region (torchmetrics numerics).

Gaussian window (``kernel_size`` 11, sigma 1.5, K1 0.01, K2 0.03) on 0-255 RGB data, mean over RGB and over
the *valid* area: torchmetrics computes the map on a reflect-padded image, so the ``kernel_size // 2``
border, whose values depend on the padding, is dropped (as Wang et al.'s reference code and skimage do).
"""
from __future__ import annotations

import numpy as np
import torch

from .base import VideoMeanMetric, frame_mean_spec
from .psnr import DATA_RANGE, check_pair, feed_region, region_protocol, to_nchw

VERSION = "ssim-1"
K1, K2 = 0.01, 0.03


def ssim_frames(ref: np.ndarray, gen: np.ndarray, kernel_size: int = 11, sigma: float = 1.5) -> np.ndarray:
    """Per-frame SSIM (gaussian window), mean over RGB and the valid area."""
    from torchmetrics.functional.image import structural_similarity_index_measure

    check_pair(ref, gen)
    if len(ref) == 0:
        return np.zeros(0)
    r = kernel_size // 2
    if min(np.shape(ref)[1:3]) <= 2 * r:
        raise ValueError(f"frames {np.shape(ref)[1:3]} too small for a {kernel_size}-px SSIM window")
    _, full = structural_similarity_index_measure(
        to_nchw(gen, torch.float32), to_nchw(ref, torch.float32), gaussian_kernel=True, sigma=sigma,
        kernel_size=kernel_size, reduction="none", data_range=DATA_RANGE, return_full_image=True, k1=K1, k2=K2)
    valid = full[..., r:full.shape[-2] - r, r:full.shape[-1] - r]
    return valid.mean(dim=(1, 2, 3)).numpy().astype(np.float64)


def ssim(ref: np.ndarray, gen: np.ndarray, kernel_size: int = 11, sigma: float = 1.5) -> float:
    """Mean per-frame SSIM of one video (functional twin of :class:`SSIM`)."""
    return float(np.mean(ssim_frames(ref, gen, kernel_size, sigma)))


class SSIM(VideoMeanMetric):
    """SSIM: ``update(ref_frames, gen_frames)`` per chunk, ``end_video()`` per video."""

    higher_is_better = True

    def __init__(self, kernel_size: int = 11, sigma: float = 1.5, **kwargs):
        super().__init__(**kwargs)
        self.kernel_size = kernel_size
        self.sigma = sigma

    def frame_values(self, ref, gen) -> np.ndarray:
        return ssim_frames(ref, gen, self.kernel_size, self.sigma)


def _protocol(config) -> dict:
    return {**region_protocol(VERSION, config), "dtype": "uint8 -> float32", "gaussian_kernel": True,
            "kernel_size": config.ssim_kernel, "sigma": config.ssim_sigma, "k1": K1, "k2": K2,
            "channels": "mean over RGB", "border": "valid (kernel//2 cropped)"}


SPECS = (frame_mean_spec(
    name="ssim", label="SSIM", version=VERSION, unit="", higher_is_better=True, modes=("reconstruction",),
    needs=("region_pairs",), description="structural similarity of the region, per frame", protocol=_protocol,
    new=lambda config: SSIM(config.ssim_kernel, config.ssim_sigma), feed=feed_region, decimals=4,
    valid_range=(-1.0, 1.0), order=20),)

__all__ = ["SSIM", "ssim", "ssim_frames", "SPECS"]
