"""SyncNet (Chung & Zisserman 2016, ``syncnet_v2.model``) with syncnet_python's exact state-dict layout.

The module tree mirrors syncnet_python's ``SyncNetModel.S`` (``netcnnaud``, ``netfcaud``, ``netcnnlip``,
``netfclip`` as ``nn.Sequential`` with the same indices), so the official weights load key for key and
``forward_aud`` / ``forward_lip`` take the same tensors and return the same 1024-d embeddings:

- ``forward_aud(x)``: x (N, 1, 13, 20) float, 20 MFCC steps (python_speech_features, int16 input);
- ``forward_lip(x)``: x (N, 3, 5, 224, 224) float BGR 0–255 (5 consecutive frames).

``lip_window_embeddings`` is the fast path used for scoring: after the first layer every lip layer has a
temporal kernel of 1 and the temporal size is 1, so the network is exactly a 2-D CNN over the 5 frames
stacked as 15 channels. It runs as conv2d (channels-last) with the eval-mode batch norms folded into the
convolutions: the same function, float32 rounding differs at the 1e-6 relative level. The FLOPs are
the same as upstream's (each window's first layer sees its 5 frames once either way), so on CPU the
gain is the memory layout, not arithmetic.

Weights. syncnet_python's own loader iterates ``torch.load(path).items()`` and copies each tensor into
``S().state_dict()``, so the official file is a plain dict of tensors and loads with
``torch.load(weights_only=True)`` (upstream now does exactly that). Accepted here: such a state dict; a
dict wrapping it under ``state_dict`` or ``model``; keys prefixed ``__S__.`` (a ``SyncNetInstance``'s state
dict) or ``module.``. Only ``num_batches_tracked`` buffers may be missing (files written before PyTorch 0.4
lack them; they do not affect eval-mode numerics). A full pickled ``nn.Module`` is refused (unpickling
arbitrary objects is unsafe): re-save its ``state_dict()``.
"""
from __future__ import annotations

import logging

import torch
from torch import nn


log = logging.getLogger(__name__)

EMBED_DIM = 1024
WINDOW = 5  # video frames per SyncNet window
MFCC_STEPS = 20  # MFCC steps per window (4 per frame at 100 Hz / 25 fps)


class SyncNet(nn.Module):
    """syncnet_python's ``S`` network: module names and Sequential indices are the state-dict contract."""

    def __init__(self, embed_dim: int = EMBED_DIM):
        super().__init__()
        self.netcnnaud = nn.Sequential(
            nn.Conv2d(1, 64, kernel_size=3, stride=1, padding=1), nn.BatchNorm2d(64), nn.ReLU(inplace=True),
            nn.MaxPool2d(kernel_size=1, stride=1),
            nn.Conv2d(64, 192, kernel_size=3, stride=1, padding=1), nn.BatchNorm2d(192), nn.ReLU(inplace=True),
            nn.MaxPool2d(kernel_size=3, stride=(1, 2)),
            nn.Conv2d(192, 384, kernel_size=3, padding=1), nn.BatchNorm2d(384), nn.ReLU(inplace=True),
            nn.Conv2d(384, 256, kernel_size=3, padding=1), nn.BatchNorm2d(256), nn.ReLU(inplace=True),
            nn.Conv2d(256, 256, kernel_size=3, padding=1), nn.BatchNorm2d(256), nn.ReLU(inplace=True),
            nn.MaxPool2d(kernel_size=3, stride=2),
            nn.Conv2d(256, 512, kernel_size=(5, 4), padding=0), nn.BatchNorm2d(512), nn.ReLU(),
        )
        self.netfcaud = _fc_head(embed_dim)
        self.netfclip = _fc_head(embed_dim)
        self.netcnnlip = nn.Sequential(
            nn.Conv3d(3, 96, kernel_size=(5, 7, 7), stride=(1, 2, 2), padding=0), nn.BatchNorm3d(96),
            nn.ReLU(inplace=True), nn.MaxPool3d(kernel_size=(1, 3, 3), stride=(1, 2, 2)),
            nn.Conv3d(96, 256, kernel_size=(1, 5, 5), stride=(1, 2, 2), padding=(0, 1, 1)), nn.BatchNorm3d(256),
            nn.ReLU(inplace=True), nn.MaxPool3d(kernel_size=(1, 3, 3), stride=(1, 2, 2), padding=(0, 1, 1)),
            nn.Conv3d(256, 256, kernel_size=(1, 3, 3), padding=(0, 1, 1)), nn.BatchNorm3d(256), nn.ReLU(inplace=True),
            nn.Conv3d(256, 256, kernel_size=(1, 3, 3), padding=(0, 1, 1)), nn.BatchNorm3d(256), nn.ReLU(inplace=True),
            nn.Conv3d(256, 256, kernel_size=(1, 3, 3), padding=(0, 1, 1)), nn.BatchNorm3d(256), nn.ReLU(inplace=True),
            nn.MaxPool3d(kernel_size=(1, 3, 3), stride=(1, 2, 2)),
            nn.Conv3d(256, 512, kernel_size=(1, 6, 6), padding=0), nn.BatchNorm3d(512), nn.ReLU(inplace=True),
        )
        self.weights_sha256: str | None = None
        self.weights_path: str | None = None
        self.calibrated = False  # True for weights loaded from a file (see load_syncnet)

    def forward_aud(self, x: torch.Tensor) -> torch.Tensor:
        """(N, 1, 13, 20) MFCC windows → (N, 1024)."""
        mid = self.netcnnaud(x)
        return self.netfcaud(mid.reshape(mid.shape[0], -1))

    def forward_lip(self, x: torch.Tensor) -> torch.Tensor:
        """(N, 3, 5, 224, 224) BGR 0–255 windows → (N, 1024)."""
        mid = self.netcnnlip(x)
        return self.netfclip(mid.reshape(mid.shape[0], -1))

    @torch.no_grad()
    def lip_net_2d(self) -> nn.Sequential:
        """The lip CNN as an equivalent 2-D network over 15-channel inputs (channel ``c * 5 + t`` is
        colour ``c`` of frame ``t``, the conv3d weight's (in, kt) order), each eval-mode batch norm folded
        into the convolution before it. Built from this module's current parameters."""
        layers: list[nn.Module] = []
        for m in self.netcnnlip:
            if isinstance(m, nn.Conv3d):
                w = m.weight  # (out, in, kt, kh, kw)
                conv = nn.Conv2d(w.shape[1] * w.shape[2], w.shape[0], kernel_size=tuple(w.shape[3:]),
                                 stride=m.stride[1:], padding=m.padding[1:], device="meta")
                conv.weight = nn.Parameter(w.reshape(w.shape[0], -1, *w.shape[3:]).clone(), requires_grad=False)
                conv.bias = nn.Parameter(m.bias.clone(), requires_grad=False)
                layers.append(conv)
            elif isinstance(m, nn.BatchNorm3d):
                conv = layers[-1]
                scale = m.weight / torch.sqrt(m.running_var + m.eps)
                conv.weight.mul_(scale[:, None, None, None])
                conv.bias.copy_((conv.bias - m.running_mean) * scale + m.bias)
            elif isinstance(m, nn.MaxPool3d):
                layers.append(nn.MaxPool2d(kernel_size=_spatial(m.kernel_size), stride=_spatial(m.stride),
                                           padding=_spatial(m.padding)))
            else:
                layers.append(nn.ReLU(inplace=True))
        return nn.Sequential(*layers).eval()

    @torch.inference_mode()
    def lip_window_embeddings(self, frames: torch.Tensor, num_windows: int | None = None,
                              batch_size: int = 32) -> torch.Tensor:
        """Embeddings of every 5-frame window ``frames[i:i+5]`` for ``i < num_windows``.

        ``frames``: (T, 3, H, W) BGR 0–255, float or uint8 (converted per batch, so a long clip is never
        held as float). Equals ``forward_lip`` on the stacked windows up to float32 rounding.
        """
        if num_windows is None:
            num_windows = frames.shape[0] - WINDOW + 1
        net = self.lip_net_2d()
        device = self.netcnnlip[0].weight.device
        out = []
        for i0 in range(0, num_windows, batch_size):
            i1 = min(num_windows, i0 + batch_size)
            chunk = frames[i0:i1 + WINDOW - 1].to(device)  # each frame moved once, as stored (uint8)
            # (n, 3, 5, H, W) → (n, 15, H, W): channel c*5+t, matching the conv3d weight's (in, kt) order
            x = torch.stack([chunk[t:t + i1 - i0] for t in range(WINDOW)], dim=2).flatten(1, 2).float()
            mid = net(x.contiguous(memory_format=torch.channels_last))
            out.append(self.netfclip(mid.reshape(mid.shape[0], -1)))
        return torch.cat(out) if out else frames.new_zeros((0, EMBED_DIM))

    @torch.inference_mode()
    def lip_embeddings_of(self, windows: torch.Tensor, batch_size: int = 32, net=None) -> torch.Tensor:
        """Embeddings of explicit 5-frame windows (n, 5, 3, H, W) BGR 0–255 (float or uint8): the same
        2-D network as :meth:`lip_window_embeddings` (pass ``net = lip_net_2d()`` to reuse it), for
        windows that need not be consecutive."""
        net = net if net is not None else self.lip_net_2d()
        device = self.netcnnlip[0].weight.device
        out = []
        for i0 in range(0, windows.shape[0], batch_size):
            x = windows[i0:i0 + batch_size].to(device).permute(0, 2, 1, 3, 4).flatten(1, 2).float()
            mid = net(x.contiguous(memory_format=torch.channels_last))
            out.append(self.netfclip(mid.reshape(mid.shape[0], -1)))
        return torch.cat(out) if out else windows.new_zeros((0, EMBED_DIM), dtype=torch.float32)

    @torch.inference_mode()
    def aud_window_embeddings(self, mfcc: torch.Tensor, num_windows: int, batch_size: int = 256) -> torch.Tensor:
        """Embeddings of the MFCC windows ``mfcc[:, 4i:4i+20]`` for ``i < num_windows``; mfcc (13, M)."""
        windows = mfcc.unfold(1, MFCC_STEPS, WINDOW - 1)[:, :num_windows]  # (13, n, 20), step 4
        windows = windows.permute(1, 0, 2).unsqueeze(1)  # (n, 1, 13, 20)
        if windows.shape[0] < num_windows:
            raise ValueError(f"MFCC too short for {num_windows} windows ({mfcc.shape[1]} steps)")
        device = self.netcnnaud[0].weight.device
        out = [self.forward_aud(windows[i:i + batch_size].contiguous().to(device))
               for i in range(0, num_windows, batch_size)]
        return torch.cat(out) if out else mfcc.new_zeros((0, EMBED_DIM))


def _spatial(v):
    """The (h, w) part of a 3-D pooling parameter given as an int or a (t, h, w) tuple."""
    return (v, v) if isinstance(v, int) else tuple(v[1:])


def _fc_head(embed_dim: int) -> nn.Sequential:
    return nn.Sequential(nn.Linear(512, 512), nn.BatchNorm1d(512), nn.ReLU(), nn.Linear(512, embed_dim))


def random_state_dict(seed: int = 0) -> dict[str, torch.Tensor]:
    """A seeded random state dict in the official key layout (He-normal convs/linears, perturbed
    batch-norm statistics so eval-mode BN is not the identity). Deterministic across machines."""
    g = torch.Generator().manual_seed(seed)
    # input layers absorb the 0–255 pixel / ~±50 MFCC ranges and the heads shrink the output, so the
    # distances land near the official network's (≈ 5–15) instead of the thousands
    gains = {"netcnnlip.0.weight": 1 / 255, "netcnnaud.0.weight": 1 / 40, "netfclip.3.weight": 0.3,
             "netfcaud.3.weight": 0.3}
    sd = {}
    for key, t in SyncNet().state_dict().items():
        if key.endswith("num_batches_tracked"):
            sd[key] = torch.zeros_like(t)
        elif key.endswith("running_var"):
            sd[key] = 0.5 + torch.rand(t.shape, generator=g)
        elif key.endswith("running_mean") or (t.ndim == 1 and key.endswith("bias")):
            sd[key] = 0.1 * torch.randn(t.shape, generator=g)
        elif t.ndim == 1:  # BN weight
            sd[key] = 0.8 + 0.4 * torch.rand(t.shape, generator=g)
        else:
            fan_in = t[0].numel()
            sd[key] = torch.randn(t.shape, generator=g) * (2.0 / fan_in) ** 0.5 * gains.get(key, 1.0)
    return sd


def load_syncnet(path=None, allow_random: bool = False, seed: int = 0) -> SyncNet:
    """SyncNet in eval mode with ``syncnet_v2.model`` weights found by path / ``TALKBENCH_SYNCNET`` / cache.

    Raises ``talkbase.weights.WeightsNotFound`` when absent (``WeightsUnreadable`` for a file that is not a
    weights-only state dict in the official layout), unless ``allow_random`` — then a seeded random network
    with ``calibrated = False`` and ``weights_sha256 = None`` (its scores are not LSE numbers). A loaded
    file's sha256 is ``weights_sha256``; ``calibrated`` is True only when it is the pinned official hash.
    """
    from . import load_network

    return load_network(SyncNet(), "syncnet", path, allow_random, seed, random_state_dict)


__all__ = ["SyncNet", "load_syncnet", "random_state_dict", "EMBED_DIM", "WINDOW", "MFCC_STEPS"]
