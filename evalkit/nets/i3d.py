"""The I3D feature extractor FVD is computed with: StyleGAN-V's TorchScript ``i3d_torchscript.pt``.

The commonly used FVD detector (StyleGAN-V, DIGAN, and the ports that copied them) is a TorchScript export
of the Kinetics-400 I3D, called as ``detector(x, rescale=False, resize=False, return_features=True)`` with
``x`` a (N, 3, T, 224, 224) float tensor in [-1, 1]; it returns (N, 400) features (the logits layer before
the softmax). This module loads such a file by path / ``TALKBENCH_I3D`` / the cache dir
(:mod:`talkbase.weights`; sha256 recorded) and checks that interface once. A TorchScript file is TorchScript
code: load only a file you obtained yourself (the detector is the operator's choice, never a submitter's).
"""
from __future__ import annotations

import logging

import numpy as np
import torch

from talkbase.weights import WeightsUnreadable, find

log = logging.getLogger(__name__)

FEATURE_DIM = 400
RESOLUTION = 224
DETECTOR_KWARGS = {"rescale": False, "resize": False, "return_features": True}


class I3D:
    """A loaded FVD detector: ``features(clips)`` with (N, 3, T, 224, 224) float32 in [-1, 1] → (N, 400) float64."""

    def __init__(self, module, path: str, sha256: str, official: bool):
        self.module = module
        self.weights_path, self.weights_sha256, self.calibrated = path, sha256, bool(official)

    @torch.inference_mode()
    def features(self, clips: torch.Tensor) -> np.ndarray:
        out = self.module(clips.float(), **DETECTOR_KWARGS)
        out = out.detach().cpu().double().numpy()
        if out.ndim != 2 or out.shape[0] != clips.shape[0]:
            raise ValueError(f"I3D returned shape {out.shape} for {tuple(clips.shape)} clips")
        return out


def load_i3d(path=None, check: bool = False, clip_length: int = 16) -> I3D:
    """The TorchScript I3D of ``path`` / env / cache. ``check`` runs one zero clip through it and requires the
    (1, 400) feature interface (done once, by the driver)."""
    info = find("i3d", path)
    import warnings

    try:
        with warnings.catch_warnings():  # TorchScript is deprecated upstream; the FVD detector is TorchScript
            warnings.simplefilter("ignore", DeprecationWarning)
            module = torch.jit.load(info.path, map_location="cpu").eval()
    except Exception as e:  # noqa: BLE001 - torch raises many types for a file that is not TorchScript
        raise WeightsUnreadable(f"{info.path}: not a TorchScript file ({type(e).__name__}: "
                                f"{str(e).splitlines()[0][:200]})") from None
    net = I3D(module, info.path, info.sha256, info.official)
    if check:
        try:
            f = net.features(torch.zeros(1, 3, clip_length, RESOLUTION, RESOLUTION))
        except Exception as e:  # noqa: BLE001
            raise WeightsUnreadable(f"{info.path}: not the FVD I3D interface ({type(e).__name__}: {e})") from None
        if f.shape != (1, FEATURE_DIM):
            raise WeightsUnreadable(f"{info.path}: I3D features have shape {f.shape}, expected (1, {FEATURE_DIM})")
    return net


def preprocess(frames: np.ndarray, resolution: int = RESOLUTION) -> torch.Tensor:
    """StyleGAN-V's ``preprocess_single`` per frame: uint8 (T, H, W, 3) RGB → (3, T, 224, 224) float32 in
    [-1, 1]: ``/255``, the shorter side bilinearly to 224 (``F.interpolate``, ``align_corners=False``, no
    antialias), centre crop, ``(x − 0.5) · 2``."""
    import math

    import torch.nn.functional as F

    video = torch.from_numpy(np.ascontiguousarray(frames)).permute(3, 0, 1, 2).float().div(255)  # C, T, H, W
    _, _, h, w = video.shape
    scale = resolution / min(h, w)
    size = (resolution, math.ceil(w * scale)) if h < w else (math.ceil(h * scale), resolution)
    video = F.interpolate(video, size=size, mode="bilinear", align_corners=False)
    _, _, h, w = video.shape
    y0, x0 = (h - resolution) // 2, (w - resolution) // 2
    video = video[:, :, y0:y0 + resolution, x0:x0 + resolution]
    return ((video - 0.5) * 2).contiguous()


__all__ = ["I3D", "load_i3d", "preprocess", "FEATURE_DIM", "RESOLUTION", "DETECTOR_KWARGS"]
