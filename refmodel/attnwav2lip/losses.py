"""Perceptual losses of AttnWav2Lip: LPIPS (AlexNet) when its weights are present, MS-SSIM otherwise.

**LPIPS** (Zhang et al. 2018, the ``lpips`` package's v0.1 "alex" model): AlexNet's five ReLU feature maps of
both images (inputs scaled by LPIPS's fixed shift/scale), each unit-normalised over channels, squared
difference, a learnt non-negative 1×1 weighting per layer, spatial mean, summed over layers. It needs two
weight files that cannot be downloaded here: torchvision's ImageNet AlexNet (``alexnet-owt-7be5be79.pth``,
keys ``features.{0,3,6,8,10}.*``) and LPIPS's linear layers (``alex.pth``, keys ``lin{0..4}.model.1.weight``).
They are found through ``talkbase.weights`` (model ``lpips-alex``: explicit path, ``$TALKBENCH_LPIPS_DIR``,
the cache dir), read weights-only, layout-checked, and their sha256 recorded. Without them there is **no
LPIPS**: random features under its name would be a different loss. (evalkit's LPIPS *metric*, another issue,
holds the same backbone for scoring; this loss should reuse it once both exist.)

**MS-SSIM** (Wang et al. 2003) is the honest substitute: no weights, a structural-similarity loss over
scales. On the lower half of a 64-px crop (32 × 64) three scales fit a 7-tap Gaussian window (σ 1.5;
the standard 11-tap, 5-scale form needs ≥ 161 px), with the standard scale weights renormalised; negative
contrast-structure terms are clipped at 0 (``relu``) so fractional powers stay defined. The model trained
with it is named ``attnwav2lip-msssim``.
"""
from __future__ import annotations

import logging

import torch
import torch.nn as nn
import torch.nn.functional as F

log = logging.getLogger(__name__)

MS_SSIM_WEIGHTS = (0.0448, 0.2856, 0.3001, 0.2363, 0.1333)
LPIPS_MODEL = "lpips-alex"
ALEXNET_FILE = "alexnet-owt-7be5be79.pth"
LPIPS_LIN_FILE = "alex.pth"


def _gauss(size: int, sigma: float, device, dtype) -> torch.Tensor:
    x = torch.arange(size, device=device, dtype=dtype) - (size - 1) / 2
    g = torch.exp(-x * x / (2 * sigma * sigma))
    return g / g.sum()


def _ssim_parts(x, y, win: int, sigma: float, c1: float, c2: float):
    """(mean SSIM, mean contrast-structure) per image over valid windows; x, y (N, C, H, W) in [0, 1]."""
    ch = x.shape[1]
    g = _gauss(win, sigma, x.device, x.dtype)
    kx = g.view(1, 1, 1, -1).expand(ch, 1, 1, win)
    ky = g.view(1, 1, -1, 1).expand(ch, 1, win, 1)

    def blur(z):
        return F.conv2d(F.conv2d(z, kx, groups=ch), ky, groups=ch)

    mx, my = blur(x), blur(y)
    sxx, syy, sxy = blur(x * x) - mx * mx, blur(y * y) - my * my, blur(x * y) - mx * my
    cs = (2 * sxy + c2) / (sxx + syy + c2)
    ssim = (2 * mx * my + c1) / (mx * mx + my * my + c1) * cs
    return ssim.mean((1, 2, 3)), cs.mean((1, 2, 3))


def ms_ssim(x: torch.Tensor, y: torch.Tensor, scales: int | None = None, win: int = 7, sigma: float = 1.5) -> torch.Tensor:
    """MS-SSIM per image (N,) of images in [-1, 1] (computed on [0, 1]); ``scales`` default: as many as
    keep every scale at least ``win`` px (at most 5)."""
    x, y = (x + 1) / 2, (y + 1) / 2
    c1, c2 = 0.01 ** 2, 0.03 ** 2
    side = min(x.shape[-2:])
    if scales is None:
        scales = 1
        while scales < 5 and side // (2 ** scales) >= win:
            scales += 1
    if side // (2 ** (scales - 1)) < win:
        raise ValueError(f"{scales} scales of a {side}-px image do not fit a {win}-px window")
    w = torch.tensor(MS_SSIM_WEIGHTS[:scales], device=x.device, dtype=x.dtype)
    w = w / w.sum()
    out = torch.ones(x.shape[0], device=x.device, dtype=x.dtype)
    for i in range(scales):
        ssim, cs = _ssim_parts(x, y, win, sigma, c1, c2)
        last = i == scales - 1
        out = out * F.relu(ssim if last else cs) ** w[i]
        if not last:
            x, y = F.avg_pool2d(x, 2), F.avg_pool2d(y, 2)
    return out


class AlexFeatures(nn.Module):
    """torchvision's AlexNet ``features`` (its state-dict layout), returning the five ReLU maps LPIPS taps."""

    TAPS = (1, 4, 7, 9, 11)

    def __init__(self):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(3, 64, 11, 4, 2), nn.ReLU(), nn.MaxPool2d(3, 2),
            nn.Conv2d(64, 192, 5, padding=2), nn.ReLU(), nn.MaxPool2d(3, 2),
            nn.Conv2d(192, 384, 3, padding=1), nn.ReLU(), nn.Conv2d(384, 256, 3, padding=1), nn.ReLU(),
            nn.Conv2d(256, 256, 3, padding=1), nn.ReLU(), nn.MaxPool2d(3, 2))

    def forward(self, x):
        out = []
        for i, layer in enumerate(self.features):
            x = layer(x)
            if i in self.TAPS:
                out.append(x)
            if i == self.TAPS[-1]:
                break
        return out


class _Lin(nn.Module):
    def __init__(self, ch: int):
        super().__init__()
        self.model = nn.Sequential(nn.Dropout(), nn.Conv2d(ch, 1, 1, bias=False))


class LPIPSLinear(nn.Module):
    """LPIPS v0.1's per-layer 1×1 weights (state-dict keys ``lin{k}.model.1.weight``)."""

    CHANNELS = (64, 192, 384, 256, 256)

    def __init__(self):
        super().__init__()
        for k, c in enumerate(self.CHANNELS):
            setattr(self, f"lin{k}", _Lin(c))

    def layers(self):
        return [getattr(self, f"lin{k}").model[1] for k in range(len(self.CHANNELS))]


class LPIPS(nn.Module):
    """LPIPS distance (N,) between images in [-1, 1]; frozen."""

    def __init__(self, features: AlexFeatures, lin: LPIPSLinear, provenance: dict | None = None):
        super().__init__()
        self.net, self.lin = features, lin
        self.register_buffer("shift", torch.tensor([-0.030, -0.088, -0.188]).view(1, 3, 1, 1))
        self.register_buffer("scale", torch.tensor([0.458, 0.448, 0.450]).view(1, 3, 1, 1))
        self.provenance = provenance or {}
        for p in self.parameters():
            p.requires_grad_(False)
        self.eval()

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        fx = self.net((x - self.shift) / self.scale)
        fy = self.net((y - self.shift) / self.scale)
        total = 0
        for a, b, conv in zip(fx, fy, self.lin.layers()):
            a = a / (a.pow(2).sum(1, keepdim=True).sqrt() + 1e-10)
            b = b / (b.pow(2).sum(1, keepdim=True).sqrt() + 1e-10)
            total = total + conv((a - b) ** 2).mean((1, 2, 3))
        return total


def load_lpips(path=None) -> LPIPS:
    """The LPIPS (alex) network from its two weight files (see the module docstring); ``path``: their
    folder. Raises ``talkbase.weights.WeightsNotFound`` when either is absent, ``WeightsUnreadable`` when
    one is not a weights-only state dict in the official layout."""
    from talkbase.weights import check_layout, load_torch_state

    feats, lin = AlexFeatures(), LPIPSLinear()
    state, alex_info = load_torch_state(LPIPS_MODEL, path, ALEXNET_FILE)
    check_layout(feats, {k: v for k, v in state.items() if k.startswith("features.")}, f"{alex_info.path} (AlexNet)")
    lstate, lin_info = load_torch_state(LPIPS_MODEL, path, LPIPS_LIN_FILE)
    check_layout(lin, lstate, f"{lin_info.path} (LPIPS linear layers)")
    prov = {f: {"path": i.path, "sha256": i.sha256, "official": i.official}
            for f, i in ((ALEXNET_FILE, alex_info), (LPIPS_LIN_FILE, lin_info))}
    return LPIPS(feats, lin, prov)


def resolve_perceptual(choice: str, path=None) -> str:
    """``lpips`` or ``msssim`` for a config's ``perceptual`` (``auto``: LPIPS when its weights are found)."""
    from talkbase.weights import WeightsNotFound

    if choice != "auto":
        return choice
    try:
        load_lpips(path)
        return "lpips"
    except WeightsNotFound as e:
        log.warning("LPIPS weights not found (%s): training with MS-SSIM, model named attnwav2lip-msssim",
                    str(e).splitlines()[0][:160])
        return "msssim"


def perceptual_name(choice: str) -> str:
    """The model's name for a resolved perceptual loss."""
    return {"lpips": "attnwav2lip", "msssim": "attnwav2lip-msssim"}[choice]


__all__ = ["ms_ssim", "LPIPS", "AlexFeatures", "LPIPSLinear", "load_lpips", "resolve_perceptual", "perceptual_name",
           "ALEXNET_FILE", "LPIPS_LIN_FILE", "LPIPS_MODEL"]
