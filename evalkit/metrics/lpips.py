"""LPIPS (Zhang et al. 2018, v0.1): learned perceptual distance between reference and generated frames.

Lower is better. Per frame of the scored region (the aligned face crop at ``crop_size``, or full frames with
``--crop full``; as PSNR / SSIM), ``lpips.LPIPS(net=lpips_net, version="0.1")(ref, gen, normalize=True)``
computed by :mod:`evalkit.nets.lpips` (our AlexNet / VGG16 code in torchvision's layout, the lpips v0.1
heads); the video value is the mean over frames, the dataset value the mean over videos.
"""
from __future__ import annotations

import numpy as np

from .base import VideoMeanMetric, frame_mean_spec
from .psnr import region_protocol

VERSION = "lpips-1"


def lpips(ref: np.ndarray, gen: np.ndarray, model) -> float:
    """Mean LPIPS of one video's (N, H, W, 3) uint8 RGB frame pairs under an :class:`evalkit.nets.lpips.LPIPS`."""
    return float(model.distances(ref, gen).mean())


class LPIPSMetric(VideoMeanMetric):
    """LPIPS per video from per-frame distances: ``add_frame_values`` per chunk, ``end_video()``."""

    higher_is_better = False


def _protocol(config) -> dict:
    from ..nets.lpips import SCALE, SHIFT

    return {**region_protocol(VERSION, config), "impl": "lpips.LPIPS v0.1 (lpips=True, spatial=False), "
            "evalkit.nets.lpips", "net": config.lpips_net, "input": "RGB uint8 / 255 * 2 - 1 (normalize=True)",
            "scaling_layer": {"shift": list(SHIFT), "scale": list(SCALE)},
            "layers": "5 ReLU taps, channel-unit-normalised (eps 1e-10), squared difference, 1x1 linear heads",
            "reduce": "spatial average per layer, sum over layers", "dtype": "float32",
            "per_frame": "LPIPS(reference frame, generated frame)"}


def _weights(config) -> tuple[str, ...]:
    from ..nets.lpips import NETS

    return (NETS[config.lpips_net], "lpips")


def _feed(metric: LPIPSMetric, chunk) -> None:
    values, pos = chunk.lpips
    vals = np.full(chunk.size, np.nan)
    if len(pos):
        vals[pos] = values
    metric.add_frame_values(vals)


SPECS = (frame_mean_spec(
    name="lpips", label="LPIPS", version=VERSION, unit="", higher_is_better=False, modes=("reconstruction",),
    needs=("lpips",), description="learned perceptual image patch similarity (v0.1) of the region, per frame",
    protocol=_protocol, new=lambda config: LPIPSMetric(), feed=_feed, weights=_weights, decimals=4,
    valid_range=(0.0, None), order=35),)

__all__ = ["LPIPSMetric", "lpips", "SPECS"]
