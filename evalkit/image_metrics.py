"""PSNR and SSIM between reference and generated frames (torchmetrics numerics), per frame and per video.

Inputs are (N, H, W, 3) uint8 RGB frames of one declared region (the aligned face crop or the full
frame); values are computed on 0-255 data (``data_range=255``), RGB, per frame, then averaged over the
frames of a video and over videos. The class and the functional form share ``psnr_frames`` /
``ssim_frames``, so they cannot disagree.
"""
from __future__ import annotations

import numpy as np
import torch

from .metric_base import VideoMeanMetric

DATA_RANGE = 255.0


def _to_nchw(frames: np.ndarray, dtype) -> torch.Tensor:
    a = np.asarray(frames)
    if a.ndim == 3:
        a = a[None]
    if a.ndim != 4 or a.shape[-1] != 3:
        raise ValueError(f"expected (N, H, W, 3) RGB frames, got shape {a.shape}")
    return torch.from_numpy(np.ascontiguousarray(a)).permute(0, 3, 1, 2).to(dtype)


def _check_pair(ref: np.ndarray, gen: np.ndarray) -> None:
    if np.shape(ref) != np.shape(gen):
        raise ValueError(f"reference and generated frames differ in shape: {np.shape(ref)} vs {np.shape(gen)}")


def psnr_frames(ref: np.ndarray, gen: np.ndarray, cap_db: float | None = 100.0) -> np.ndarray:
    """Per-frame PSNR in dB over H, W and RGB (float64). Identical frames give ``cap_db`` (not +inf)."""
    from torchmetrics.functional.image import peak_signal_noise_ratio

    _check_pair(ref, gen)
    if len(ref) == 0:
        return np.zeros(0)
    v = peak_signal_noise_ratio(_to_nchw(gen, torch.float64), _to_nchw(ref, torch.float64),
                                data_range=DATA_RANGE, reduction="none", dim=(1, 2, 3))
    v = v.reshape(-1).numpy().astype(np.float64)
    if cap_db is not None:
        v = np.minimum(v, float(cap_db))
    return v


def ssim_frames(ref: np.ndarray, gen: np.ndarray, kernel_size: int = 11, sigma: float = 1.5) -> np.ndarray:
    """Per-frame SSIM (gaussian window, K1=0.01, K2=0.03), mean over RGB and the *valid* area.

    torchmetrics computes the SSIM map on a reflect-padded image; we take its full map and drop the
    ``kernel_size // 2`` border, whose values depend on the padding, so the mean is over the pixels
    whose window lies inside the image (as in Wang et al.'s reference code and skimage).
    """
    from torchmetrics.functional.image import structural_similarity_index_measure

    _check_pair(ref, gen)
    if len(ref) == 0:
        return np.zeros(0)
    r = kernel_size // 2
    if min(np.shape(ref)[1:3]) <= 2 * r:
        raise ValueError(f"frames {np.shape(ref)[1:3]} too small for a {kernel_size}-px SSIM window")
    _, full = structural_similarity_index_measure(
        _to_nchw(gen, torch.float32), _to_nchw(ref, torch.float32), gaussian_kernel=True, sigma=sigma,
        kernel_size=kernel_size, reduction="none", data_range=DATA_RANGE, return_full_image=True)
    valid = full[..., r:full.shape[-2] - r, r:full.shape[-1] - r]
    return valid.mean(dim=(1, 2, 3)).numpy().astype(np.float64)


def psnr(ref: np.ndarray, gen: np.ndarray, cap_db: float | None = 100.0) -> float:
    """Mean per-frame PSNR of one video (functional twin of :class:`PSNR`)."""
    return float(np.mean(psnr_frames(ref, gen, cap_db)))


def ssim(ref: np.ndarray, gen: np.ndarray, kernel_size: int = 11, sigma: float = 1.5) -> float:
    """Mean per-frame SSIM of one video (functional twin of :class:`SSIM`)."""
    return float(np.mean(ssim_frames(ref, gen, kernel_size, sigma)))


class PSNR(VideoMeanMetric):
    """PSNR (dB): ``update(ref_frames, gen_frames)`` per chunk, ``end_video()`` per video."""

    higher_is_better = True

    def __init__(self, cap_db: float | None = 100.0, **kwargs):
        super().__init__(**kwargs)
        self.cap_db = cap_db

    def frame_values(self, ref, gen) -> np.ndarray:
        return psnr_frames(ref, gen, self.cap_db)


class SSIM(VideoMeanMetric):
    """SSIM: ``update(ref_frames, gen_frames)`` per chunk, ``end_video()`` per video."""

    higher_is_better = True

    def __init__(self, kernel_size: int = 11, sigma: float = 1.5, **kwargs):
        super().__init__(**kwargs)
        self.kernel_size = kernel_size
        self.sigma = sigma

    def frame_values(self, ref, gen) -> np.ndarray:
        return ssim_frames(ref, gen, self.kernel_size, self.sigma)


__all__ = ["PSNR", "SSIM", "psnr", "ssim", "psnr_frames", "ssim_frames", "DATA_RANGE"]
