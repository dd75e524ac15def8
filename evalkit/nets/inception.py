"""The FID InceptionV3 (pool3, 2048-d) without torchvision.

Architecture and state-dict keys are those of pytorch-fid's ``fid_inception_v3()``: torchvision's
Inception3 (``num_classes=1008``, no aux head) with the TF-port patches — InceptionA/C and the first
InceptionE average-pool without counting padding, the second InceptionE max-pools — so
``pt_inception-2015-12-05-6726825d.pth`` loads key for key (``fc.*`` included, though unused for pool3).

``forward`` is ``InceptionV3([3], resize_input=True, normalize_input=True)``: (N, 3, H, W) RGB in [0, 1]
→ bilinear resize to 299×299 (``align_corners=False``) → ``2x − 1`` → pool3 → (N, 2048).

``fused()`` returns an inference copy with each batch norm folded into its convolution (fewer memory
passes, channels-last friendly): same function, float32 rounding differs at the 1e-6 relative level.
"""
from __future__ import annotations

import copy
import logging

import torch
import torch.nn.functional as F
from torch import nn

from talkbase.weights import WeightsMismatch, check_layout

log = logging.getLogger(__name__)

WEIGHTS_FILE = "pt_inception-2015-12-05-6726825d.pth"
INPUT_SIZE = 299
FEATURE_DIM = 2048
BN_EPS = 0.001


class BasicConv2d(nn.Module):
    """conv (no bias) → batch norm (eps 1e-3) → ReLU; after ``fuse()`` the conv carries the BN."""

    def __init__(self, in_channels: int, out_channels: int, **conv_kwargs):
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, bias=False, **conv_kwargs)
        self.bn: nn.Module = nn.BatchNorm2d(out_channels, eps=BN_EPS)

    def forward(self, x):
        return F.relu(self.bn(self.conv(x)), inplace=True)

    @torch.no_grad()
    def fuse(self) -> None:
        """Fold the eval-mode batch norm into the convolution, in place."""
        bn = self.bn
        scale = bn.weight / torch.sqrt(bn.running_var + bn.eps)
        self.conv.weight = nn.Parameter(self.conv.weight * scale[:, None, None, None], requires_grad=False)
        self.conv.bias = nn.Parameter(bn.bias - bn.running_mean * scale, requires_grad=False)
        self.bn = nn.Identity()


def _avg_pool_no_pad(x):
    # TF's average pool ignores the zero padding in its divisor (the FID patch)
    return F.avg_pool2d(x, kernel_size=3, stride=1, padding=1, count_include_pad=False)


class InceptionA(nn.Module):
    def __init__(self, in_channels: int, pool_features: int):
        super().__init__()
        self.branch1x1 = BasicConv2d(in_channels, 64, kernel_size=1)
        self.branch5x5_1 = BasicConv2d(in_channels, 48, kernel_size=1)
        self.branch5x5_2 = BasicConv2d(48, 64, kernel_size=5, padding=2)
        self.branch3x3dbl_1 = BasicConv2d(in_channels, 64, kernel_size=1)
        self.branch3x3dbl_2 = BasicConv2d(64, 96, kernel_size=3, padding=1)
        self.branch3x3dbl_3 = BasicConv2d(96, 96, kernel_size=3, padding=1)
        self.branch_pool = BasicConv2d(in_channels, pool_features, kernel_size=1)

    def forward(self, x):
        b5 = self.branch5x5_2(self.branch5x5_1(x))
        b3 = self.branch3x3dbl_3(self.branch3x3dbl_2(self.branch3x3dbl_1(x)))
        return torch.cat([self.branch1x1(x), b5, b3, self.branch_pool(_avg_pool_no_pad(x))], 1)


class InceptionB(nn.Module):
    def __init__(self, in_channels: int):
        super().__init__()
        self.branch3x3 = BasicConv2d(in_channels, 384, kernel_size=3, stride=2)
        self.branch3x3dbl_1 = BasicConv2d(in_channels, 64, kernel_size=1)
        self.branch3x3dbl_2 = BasicConv2d(64, 96, kernel_size=3, padding=1)
        self.branch3x3dbl_3 = BasicConv2d(96, 96, kernel_size=3, stride=2)

    def forward(self, x):
        b3 = self.branch3x3dbl_3(self.branch3x3dbl_2(self.branch3x3dbl_1(x)))
        return torch.cat([self.branch3x3(x), b3, F.max_pool2d(x, kernel_size=3, stride=2)], 1)


class InceptionC(nn.Module):
    def __init__(self, in_channels: int, channels_7x7: int):
        super().__init__()
        c7 = channels_7x7
        self.branch1x1 = BasicConv2d(in_channels, 192, kernel_size=1)
        self.branch7x7_1 = BasicConv2d(in_channels, c7, kernel_size=1)
        self.branch7x7_2 = BasicConv2d(c7, c7, kernel_size=(1, 7), padding=(0, 3))
        self.branch7x7_3 = BasicConv2d(c7, 192, kernel_size=(7, 1), padding=(3, 0))
        self.branch7x7dbl_1 = BasicConv2d(in_channels, c7, kernel_size=1)
        self.branch7x7dbl_2 = BasicConv2d(c7, c7, kernel_size=(7, 1), padding=(3, 0))
        self.branch7x7dbl_3 = BasicConv2d(c7, c7, kernel_size=(1, 7), padding=(0, 3))
        self.branch7x7dbl_4 = BasicConv2d(c7, c7, kernel_size=(7, 1), padding=(3, 0))
        self.branch7x7dbl_5 = BasicConv2d(c7, 192, kernel_size=(1, 7), padding=(0, 3))
        self.branch_pool = BasicConv2d(in_channels, 192, kernel_size=1)

    def forward(self, x):
        b7 = self.branch7x7_3(self.branch7x7_2(self.branch7x7_1(x)))
        bd = x
        for layer in (self.branch7x7dbl_1, self.branch7x7dbl_2, self.branch7x7dbl_3,
                      self.branch7x7dbl_4, self.branch7x7dbl_5):
            bd = layer(bd)
        return torch.cat([self.branch1x1(x), b7, bd, self.branch_pool(_avg_pool_no_pad(x))], 1)


class InceptionD(nn.Module):
    def __init__(self, in_channels: int):
        super().__init__()
        self.branch3x3_1 = BasicConv2d(in_channels, 192, kernel_size=1)
        self.branch3x3_2 = BasicConv2d(192, 320, kernel_size=3, stride=2)
        self.branch7x7x3_1 = BasicConv2d(in_channels, 192, kernel_size=1)
        self.branch7x7x3_2 = BasicConv2d(192, 192, kernel_size=(1, 7), padding=(0, 3))
        self.branch7x7x3_3 = BasicConv2d(192, 192, kernel_size=(7, 1), padding=(3, 0))
        self.branch7x7x3_4 = BasicConv2d(192, 192, kernel_size=3, stride=2)

    def forward(self, x):
        b3 = self.branch3x3_2(self.branch3x3_1(x))
        b7 = self.branch7x7x3_4(self.branch7x7x3_3(self.branch7x7x3_2(self.branch7x7x3_1(x))))
        return torch.cat([b3, b7, F.max_pool2d(x, kernel_size=3, stride=2)], 1)


class InceptionE(nn.Module):
    """``pool="avg"`` is pytorch-fid's FIDInceptionE_1 (Mixed_7b), ``"max"`` its FIDInceptionE_2 (Mixed_7c)."""

    def __init__(self, in_channels: int, pool: str):
        super().__init__()
        if pool not in ("avg", "max"):
            raise ValueError(pool)
        self.pool = pool
        self.branch1x1 = BasicConv2d(in_channels, 320, kernel_size=1)
        self.branch3x3_1 = BasicConv2d(in_channels, 384, kernel_size=1)
        self.branch3x3_2a = BasicConv2d(384, 384, kernel_size=(1, 3), padding=(0, 1))
        self.branch3x3_2b = BasicConv2d(384, 384, kernel_size=(3, 1), padding=(1, 0))
        self.branch3x3dbl_1 = BasicConv2d(in_channels, 448, kernel_size=1)
        self.branch3x3dbl_2 = BasicConv2d(448, 384, kernel_size=3, padding=1)
        self.branch3x3dbl_3a = BasicConv2d(384, 384, kernel_size=(1, 3), padding=(0, 1))
        self.branch3x3dbl_3b = BasicConv2d(384, 384, kernel_size=(3, 1), padding=(1, 0))
        self.branch_pool = BasicConv2d(in_channels, 192, kernel_size=1)

    def forward(self, x):
        b3 = self.branch3x3_1(x)
        b3 = torch.cat([self.branch3x3_2a(b3), self.branch3x3_2b(b3)], 1)
        bd = self.branch3x3dbl_2(self.branch3x3dbl_1(x))
        bd = torch.cat([self.branch3x3dbl_3a(bd), self.branch3x3dbl_3b(bd)], 1)
        if self.pool == "avg":
            pooled = _avg_pool_no_pad(x)
        else:  # the TF graph max-pools here (a quirk FID numbers depend on)
            pooled = F.max_pool2d(x, kernel_size=3, stride=1, padding=1)
        return torch.cat([self.branch1x1(x), b3, bd, self.branch_pool(pooled)], 1)


class FIDInceptionV3(nn.Module):
    """pool3 feature extractor; attribute names are the weight file's key prefixes."""

    def __init__(self):
        super().__init__()
        self.Conv2d_1a_3x3 = BasicConv2d(3, 32, kernel_size=3, stride=2)
        self.Conv2d_2a_3x3 = BasicConv2d(32, 32, kernel_size=3)
        self.Conv2d_2b_3x3 = BasicConv2d(32, 64, kernel_size=3, padding=1)
        self.Conv2d_3b_1x1 = BasicConv2d(64, 80, kernel_size=1)
        self.Conv2d_4a_3x3 = BasicConv2d(80, 192, kernel_size=3)
        self.Mixed_5b = InceptionA(192, pool_features=32)
        self.Mixed_5c = InceptionA(256, pool_features=64)
        self.Mixed_5d = InceptionA(288, pool_features=64)
        self.Mixed_6a = InceptionB(288)
        self.Mixed_6b = InceptionC(768, channels_7x7=128)
        self.Mixed_6c = InceptionC(768, channels_7x7=160)
        self.Mixed_6d = InceptionC(768, channels_7x7=160)
        self.Mixed_6e = InceptionC(768, channels_7x7=192)
        self.Mixed_7a = InceptionD(768)
        self.Mixed_7b = InceptionE(1280, pool="avg")
        self.Mixed_7c = InceptionE(2048, pool="max")
        self.fc = nn.Linear(2048, 1008)  # in the weight file; not used for pool3
        self.weights_sha256: str | None = None
        self.weights_path: str | None = None
        self.calibrated = False  # True only with the official weights
        self.is_fused = False

    def pool3(self, x: torch.Tensor) -> torch.Tensor:
        """(N, 3, H, W) already in [-1, 1] and at the working size → (N, 2048)."""
        x = self.Conv2d_2b_3x3(self.Conv2d_2a_3x3(self.Conv2d_1a_3x3(x)))
        x = F.max_pool2d(x, kernel_size=3, stride=2)
        x = self.Conv2d_4a_3x3(self.Conv2d_3b_1x1(x))
        x = F.max_pool2d(x, kernel_size=3, stride=2)
        for block in (self.Mixed_5b, self.Mixed_5c, self.Mixed_5d, self.Mixed_6a, self.Mixed_6b,
                      self.Mixed_6c, self.Mixed_6d, self.Mixed_6e, self.Mixed_7a, self.Mixed_7b, self.Mixed_7c):
            x = block(x)
        return F.adaptive_avg_pool2d(x, (1, 1)).flatten(1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(N, 3, H, W) RGB in [0, 1] → (N, 2048) pool3 features (pytorch-fid's resize + normalisation)."""
        if x.ndim != 4 or x.shape[1] != 3:
            raise ValueError(f"expected (N, 3, H, W), got {tuple(x.shape)}")
        x = F.interpolate(x, size=(INPUT_SIZE, INPUT_SIZE), mode="bilinear", align_corners=False)
        return self.pool3(2 * x - 1)

    def fused(self) -> "FIDInceptionV3":
        """An eval-mode copy with batch norms folded into the convolutions (for fast extraction).

        Cached on this module until any of its tensors changes in place (``load_state_dict`` does)."""
        key = tuple(t._version for t in self.state_dict().values())
        cached = self.__dict__.pop("_fused_cache", None)
        if cached is not None and cached[0] == key:
            self.__dict__["_fused_cache"] = cached
            return cached[1]
        with torch.no_grad():
            out = copy.deepcopy(self).eval()
            for m in out.modules():
                if isinstance(m, BasicConv2d):
                    m.fuse()
        out.is_fused = True
        self.__dict__["_fused_cache"] = (key, out)  # plain attribute: not a submodule, not in state_dict
        return out


def random_state_dict(seed: int = 0) -> dict[str, torch.Tensor]:
    """Seeded random weights in the official key layout: He-normal convolutions and perturbed
    batch-norm statistics/affines (so BN is exercised), deterministic across machines."""
    g = torch.Generator().manual_seed(seed)
    sd = {}
    for key, t in FIDInceptionV3().state_dict().items():
        if key.endswith("num_batches_tracked"):
            sd[key] = torch.zeros_like(t)
        elif key.endswith("running_var"):
            sd[key] = 0.5 + torch.rand(t.shape, generator=g)
        elif key.endswith("running_mean") or key.endswith("bias"):
            sd[key] = 0.1 * torch.randn(t.shape, generator=g)
        elif key.endswith("bn.weight"):
            sd[key] = 0.8 + 0.4 * torch.rand(t.shape, generator=g)
        else:
            sd[key] = torch.randn(t.shape, generator=g) * (2.0 / t[0].numel()) ** 0.5
    return sd


def load_inception(path=None, allow_random: bool = False, seed: int = 0,
                   require_official: bool = False) -> FIDInceptionV3:
    """The FID Inception in eval mode, weights found by path / ``TALKBENCH_INCEPTION`` / cache.

    ``calibrated`` is True only when the file's sha256 starts with the official ``6726825d``; any other
    file in the same key layout loads with ``calibrated = False`` and a warning (``require_official``
    raises ``talkbase.weights.WeightsMismatch`` instead). Absent → ``WeightsNotFound`` unless
    ``allow_random``: a seeded random network, ``calibrated = False``. Uncalibrated FIDs must be labelled
    as such. ``weights_sha256`` is the full sha256 of the file loaded (None when random).
    """
    from . import load_network

    def check(net, state, info):
        if not info.official:
            if require_official:
                raise WeightsMismatch(f"{info.path}: sha256 {info.sha256} is not the official 6726825d…")
            log.warning("%s is not pytorch-fid's official Inception (sha256 %s): FID will be uncalibrated",
                        info.path, info.sha256)
        check_layout(net, state, f"{info.path} (Inception, pytorch-fid layout)")

    return load_network(FIDInceptionV3(), "inception", path, allow_random, seed, random_state_dict, check)


__all__ = ["FIDInceptionV3", "load_inception", "random_state_dict", "WEIGHTS_FILE", "FEATURE_DIM", "INPUT_SIZE"]
