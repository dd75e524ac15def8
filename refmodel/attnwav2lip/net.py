"""The AttnWav2Lip generator: a U-Net with residual CBAM blocks and AdaIN audio alignment.

Input: the masked target crop (lower half zeroed) ⊕ a reference frame of the same clip (6 channels), and
the (80, 16) Wav2Lip mel window of the target frame. Encoder: one level per ``channel_mult`` entry (a 3×3
conv, stride 2 after the first level, then a residual CBAM block). Audio: 1-D convs over time with the mel
bins as channels, flattened (the position of a sound inside the 0.2-s window is kept), to a vector ``a``.
Bottleneck: the deepest features ⊕ ``a`` tiled over space (Wav2Lip's concatenation), a 1×1 conv, alignment,
a residual CBAM block. Decoder: per level, nearest upsampling + 3×3 conv, the encoder skip concatenated,
a 3×3 conv, alignment (on maps up to ``align_max_size``), a residual CBAM block. Output: a 3×3 conv and a
sigmoid — the image, of which the lower half is used.

- CBAM (Woo et al. 2018): channel attention ``σ(MLP(avgpool x) + MLP(maxpool x))`` then spatial attention
  ``σ(conv7×7([mean_c x, max_c x]))``, both multiplying the features.
- Semantic alignment (the paper's AdaIN-style module): ``IN(h)·(1 + γ(a)) + β(a)``, instance norm without
  affine parameters and a zero-initialised linear map from the audio vector, so the untrained module is
  a plain instance norm and the audio learns to move the normalised features.
"""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..unet import TemporalAudioEncoder
from .config import W2LModelConfig


def _groups(ch: int) -> int:
    for g in (8, 4, 2, 1):
        if ch % g == 0 and ch // g >= 2:
            return g
    return 1


class CBAM(nn.Module):
    """Convolutional block attention: channel then spatial attention."""

    def __init__(self, ch: int, reduction: int = 4, kernel: int = 7):
        super().__init__()
        hidden = max(4, ch // reduction)
        self.mlp = nn.Sequential(nn.Conv2d(ch, hidden, 1), nn.ReLU(), nn.Conv2d(hidden, ch, 1))
        self.spatial = nn.Conv2d(2, 1, kernel, padding=kernel // 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        ca = torch.sigmoid(self.mlp(x.mean((2, 3), keepdim=True)) + self.mlp(x.amax((2, 3), keepdim=True)))
        x = x * ca
        sa = torch.sigmoid(self.spatial(torch.cat([x.mean(1, keepdim=True), x.amax(1, keepdim=True)], 1)))
        return x * sa


class ResCBAM(nn.Module):
    """x + CBAM(conv-norm-act-conv-norm(x)), then the activation."""

    def __init__(self, ch: int, reduction: int = 4):
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(ch, ch, 3, padding=1), nn.GroupNorm(_groups(ch), ch), nn.SiLU(),
                                  nn.Conv2d(ch, ch, 3, padding=1), nn.GroupNorm(_groups(ch), ch))
        self.cbam = CBAM(ch, reduction)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.silu(x + self.cbam(self.body(x)))


def conv_block(cin: int, cout: int, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, stride, 1), nn.GroupNorm(_groups(cout), cout), nn.SiLU())


class SemanticAlignment(nn.Module):
    """AdaIN from the audio vector: ``IN(h) * (1 + γ(a)) + β(a)``."""

    def __init__(self, ch: int, audio_dim: int):
        super().__init__()
        self.norm = nn.InstanceNorm2d(ch, affine=False)
        self.proj = nn.Linear(audio_dim, 2 * ch)
        nn.init.zeros_(self.proj.weight)
        nn.init.zeros_(self.proj.bias)

    def forward(self, h: torch.Tensor, a: torch.Tensor) -> torch.Tensor:
        gamma, beta = self.proj(a)[:, :, None, None].chunk(2, dim=1)
        return self.norm(h) * (1 + gamma) + beta


class AttnWav2Lip(nn.Module):
    """``forward(masked, reference, mel) -> image`` in [-1, 1] (all images (N, 3, S, S), mel (N, 80, 16))."""

    def __init__(self, cfg: W2LModelConfig):
        super().__init__()
        self.cfg = cfg
        chans = [cfg.base_channels * m for m in cfg.channel_mult]
        sizes = [cfg.image_size // (2 ** i) for i in range(len(chans))]
        if sizes[-1] < 2 or cfg.image_size % (2 ** (len(chans) - 1)):
            raise ValueError(f"image_size {cfg.image_size} does not halve {len(chans) - 1} times")
        self.audio = TemporalAudioEncoder(cfg.audio_channels, cfg.audio_dim)
        self.enc = nn.ModuleList()
        cin = 6
        for i, c in enumerate(chans):
            self.enc.append(nn.Sequential(conv_block(cin, c, 1 if i == 0 else 2), ResCBAM(c, cfg.cbam_reduction)))
            cin = c
        deep = chans[-1]
        self.fuse = conv_block(deep + cfg.audio_dim, deep)
        self.align_mid = SemanticAlignment(deep, cfg.audio_dim)
        self.mid = ResCBAM(deep, cfg.cbam_reduction)
        self.up, self.merge, self.align, self.dec = nn.ModuleList(), nn.ModuleList(), nn.ModuleList(), nn.ModuleList()
        cur = deep
        for i in range(len(chans) - 2, -1, -1):
            c = chans[i]
            self.up.append(conv_block(cur, c))
            self.merge.append(conv_block(2 * c, c))
            self.align.append(SemanticAlignment(c, cfg.audio_dim) if sizes[i] <= cfg.align_max_size else None)
            self.dec.append(ResCBAM(c, cfg.cbam_reduction))
            cur = c
        self.out = nn.Conv2d(cur, 3, 3, padding=1)

    def forward(self, masked: torch.Tensor, reference: torch.Tensor, mel: torch.Tensor) -> torch.Tensor:
        a = self.audio(mel)
        h = torch.cat([masked, reference], 1)
        skips = []
        for block in self.enc:
            h = block(h)
            skips.append(h)
        h = skips.pop()
        h = self.fuse(torch.cat([h, a[:, :, None, None].expand(-1, -1, *h.shape[-2:])], 1))
        h = self.mid(self.align_mid(h, a))
        for up, merge, align, dec in zip(self.up, self.merge, self.align, self.dec):
            h = up(F.interpolate(h, scale_factor=2, mode="nearest"))
            h = merge(torch.cat([h, skips.pop()], 1))
            if align is not None:
                h = align(h, a)
            h = dec(h)
        return torch.sigmoid(self.out(h)) * 2 - 1


__all__ = ["AttnWav2Lip", "CBAM", "ResCBAM", "SemanticAlignment"]
