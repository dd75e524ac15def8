"""The denoiser: a UNet over (noisy masked target ⊕ masked frame ⊕ reference) conditioned on time and audio.

Conditioning follows Diff2Lip / LPIPS-AttnWav2Lip: an audio encoder turns the (80, 16) mel window into a
vector; every residual block normalises its features and applies a per-channel scale and shift (adaptive
group norm, the AdaIN-style scale-shift of the seed papers). ``ModelConfig.audio_path``: ``time`` adds the
audio vector to the sinusoidal time embedding (one scale/shift from both); ``film`` gives the audio its own
scale/shift in every block, after the time one. ``audio_encoder``: ``pooled`` (2-D convs, global mean
pool) or ``temporal`` (1-D convs over time, flattened: it keeps *when* in the 0.2-s window a sound is,
which decides the mouth of the window's first frame). Without audio (classifier-free guidance's
unconditional branch, ``audio_keep`` False) the audio vector is a learnt null vector.
"""
from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

from .config import ModelConfig

IN_CHANNELS = 9  # 3 noisy + 3 masked frame + 3 reference
OUT_CHANNELS = 3  # predicted noise


def _groups(ch: int) -> int:
    for g in (32, 16, 8, 4, 2, 1):
        if ch % g == 0 and ch // g >= 2:
            return g
    return 1


def timestep_embedding(t: torch.Tensor, dim: int, max_period: float = 10000.0) -> torch.Tensor:
    """Sinusoidal embedding of (possibly fractional) timesteps: (N,) → (N, dim)."""
    half = dim // 2
    freqs = torch.exp(-math.log(max_period) * torch.arange(half, dtype=torch.float32, device=t.device) / half)
    args = t.float()[:, None] * freqs[None]
    emb = torch.cat([torch.cos(args), torch.sin(args)], dim=1)
    return F.pad(emb, (0, 1)) if dim % 2 else emb


class AudioEncoder(nn.Module):
    """(N, 80, 16) mel window → (N, out_dim). Strided convs over (mel bins, time), Wav2Lip-like."""

    def __init__(self, channels: int = 32, out_dim: int = 128):
        super().__init__()
        c = channels

        def block(cin, cout, stride):
            return nn.Sequential(nn.Conv2d(cin, cout, 3, stride, 1), nn.GroupNorm(_groups(cout), cout), nn.SiLU())

        self.net = nn.Sequential(  # (mel bins x time) after each block
            block(1, c // 2, (2, 1)),  # 40x16
            block(c // 2, c, (2, 2)),  # 20x8
            block(c, 2 * c, (2, 1)),  # 10x8
            block(2 * c, 4 * c, (2, 2)),  # 5x4
            block(4 * c, 8 * c, (2, 2)),  # 3x2
        )
        self.out = nn.Linear(8 * c, out_dim)

    def forward(self, mel: torch.Tensor) -> torch.Tensor:
        h = self.net(mel.unsqueeze(1))
        return self.out(h.mean(dim=(2, 3)))


class TemporalAudioEncoder(nn.Module):
    """(N, 80, 16) mel window → (N, out_dim): 1-D convs over time (mel bins as channels), two stride-2
    steps (16 → 4 time steps), flattened, so the position of a sound inside the window is kept."""

    def __init__(self, channels: int = 32, out_dim: int = 128):
        super().__init__()
        c = 2 * channels
        self.net = nn.Sequential(nn.Conv1d(80, c, 3, padding=1), nn.GroupNorm(_groups(c), c), nn.SiLU(),
                                 nn.Conv1d(c, c, 3, stride=2, padding=1), nn.GroupNorm(_groups(c), c), nn.SiLU(),
                                 nn.Conv1d(c, c, 3, stride=2, padding=1), nn.GroupNorm(_groups(c), c), nn.SiLU())
        self.out = nn.Linear(4 * c, out_dim)

    def forward(self, mel: torch.Tensor) -> torch.Tensor:
        return self.out(self.net(mel).flatten(1))


def audio_encoder(kind: str, channels: int, out_dim: int) -> nn.Module:
    if kind == "pooled":
        return AudioEncoder(channels, out_dim)
    if kind == "temporal":
        return TemporalAudioEncoder(channels, out_dim)
    raise ValueError(f"unknown audio encoder {kind!r} (pooled or temporal)")


class ResBlock(nn.Module):
    def __init__(self, cin: int, cout: int, emb_dim: int, dropout: float = 0.0, audio_dim: int = 0):
        super().__init__()
        self.norm1 = nn.GroupNorm(_groups(cin), cin)
        self.conv1 = nn.Conv2d(cin, cout, 3, padding=1)
        self.emb = nn.Linear(emb_dim, 2 * cout)
        self.audio = nn.Linear(audio_dim, 2 * cout) if audio_dim else None  # the audio's own scale/shift
        self.norm2 = nn.GroupNorm(_groups(cout), cout)
        self.drop = nn.Dropout(dropout)
        self.conv2 = nn.Conv2d(cout, cout, 3, padding=1)
        nn.init.zeros_(self.conv2.weight)  # start as identity (guided-diffusion's zero_module)
        nn.init.zeros_(self.conv2.bias)
        self.skip = nn.Conv2d(cin, cout, 1) if cin != cout else nn.Identity()

    def forward(self, x: torch.Tensor, emb: torch.Tensor, audio: torch.Tensor | None = None) -> torch.Tensor:
        h = self.conv1(F.silu(self.norm1(x)))
        scale, shift = self.emb(F.silu(emb))[:, :, None, None].chunk(2, dim=1)
        h = self.norm2(h) * (1 + scale) + shift  # AdaGN: time (+ audio under audio_path="time")
        if self.audio is not None:
            a_scale, a_shift = self.audio(audio)[:, :, None, None].chunk(2, dim=1)
            h = h * (1 + a_scale) + a_shift
        h = self.conv2(self.drop(F.silu(h)))
        return self.skip(x) + h


class Attention(nn.Module):
    def __init__(self, ch: int, heads: int = 4):
        super().__init__()
        self.heads = heads if ch % heads == 0 else 1
        self.norm = nn.GroupNorm(_groups(ch), ch)
        self.qkv = nn.Conv2d(ch, 3 * ch, 1)
        self.proj = nn.Conv2d(ch, ch, 1)
        nn.init.zeros_(self.proj.weight)
        nn.init.zeros_(self.proj.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, c, h, w = x.shape
        q, k, v = self.qkv(self.norm(x)).reshape(n, 3, self.heads, c // self.heads, h * w).unbind(1)
        out = F.scaled_dot_product_attention(q.transpose(-1, -2), k.transpose(-1, -2), v.transpose(-1, -2))
        return x + self.proj(out.transpose(-1, -2).reshape(n, c, h, w))


class UNet(nn.Module):
    """ε-predicting UNet. ``forward(x, t, masked, reference, mel) -> eps`` (all images (N, 3, S, S))."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.cfg = cfg
        ch = cfg.base_channels
        emb_dim = 4 * ch
        self.time_mlp = nn.Sequential(nn.Linear(ch, emb_dim), nn.SiLU(), nn.Linear(emb_dim, emb_dim))
        self.audio = audio_encoder(cfg.audio_encoder, cfg.audio_channels, cfg.audio_dim)
        if cfg.audio_path not in ("time", "film"):
            raise ValueError(f"unknown audio path {cfg.audio_path!r} (time or film)")
        film = cfg.audio_path == "film"
        self.audio_proj = (nn.Sequential(nn.SiLU(), nn.Linear(cfg.audio_dim, cfg.audio_dim), nn.SiLU()) if film
                           else nn.Sequential(nn.SiLU(), nn.Linear(cfg.audio_dim, emb_dim)))
        self.null_audio = nn.Parameter(torch.zeros(cfg.audio_dim))  # "no audio" (classifier-free guidance)
        adim = cfg.audio_dim if film else 0
        self.inp = nn.Conv2d(IN_CHANNELS, ch, 3, padding=1)

        self.down = nn.ModuleList()
        skips, cur, res = [ch], ch, cfg.image_size
        for level, mult in enumerate(cfg.channel_mult):
            for _ in range(cfg.num_res_blocks):
                blocks = [ResBlock(cur, ch * mult, emb_dim, cfg.dropout, adim)]
                cur = ch * mult
                if res in cfg.attention_resolutions:
                    blocks.append(Attention(cur))
                self.down.append(nn.ModuleList(blocks))
                skips.append(cur)
            if level < len(cfg.channel_mult) - 1:
                self.down.append(nn.ModuleList([nn.Conv2d(cur, cur, 3, stride=2, padding=1)]))
                skips.append(cur)
                res //= 2
        self.mid = nn.ModuleList([ResBlock(cur, cur, emb_dim, cfg.dropout, adim), Attention(cur),
                                  ResBlock(cur, cur, emb_dim, cfg.dropout, adim)])
        self.up = nn.ModuleList()
        for level, mult in reversed(list(enumerate(cfg.channel_mult))):
            for i in range(cfg.num_res_blocks + 1):
                blocks = [ResBlock(cur + skips.pop(), ch * mult, emb_dim, cfg.dropout, adim)]
                cur = ch * mult
                if res in cfg.attention_resolutions:
                    blocks.append(Attention(cur))
                if level > 0 and i == cfg.num_res_blocks:
                    blocks.append(nn.Upsample(scale_factor=2, mode="nearest"))
                    blocks.append(nn.Conv2d(cur, cur, 3, padding=1))
                    res *= 2
                self.up.append(nn.ModuleList(blocks))
        self.out = nn.Sequential(nn.GroupNorm(_groups(cur), cur), nn.SiLU(), nn.Conv2d(cur, OUT_CHANNELS, 3, padding=1))
        nn.init.zeros_(self.out[-1].weight)
        nn.init.zeros_(self.out[-1].bias)

    def condition(self, t: torch.Tensor, mel: torch.Tensor, audio_keep: torch.Tensor | None = None):
        """(embedding (N, 4*base_channels) every block's time FiLM reads, audio vector of the ``film`` path
        or None). ``audio_keep`` (N,) bool: False replaces that sample's audio by the null vector."""
        a = self.audio(mel)
        if audio_keep is not None:
            a = torch.where(audio_keep.view(-1, 1), a, self.null_audio.to(a.dtype).expand_as(a))
        emb = self.time_mlp(timestep_embedding(t, self.cfg.base_channels))
        if self.cfg.audio_path == "film":
            return emb, self.audio_proj(a)
        return emb + self.audio_proj(a), None

    @staticmethod
    def _run(blocks, h, emb, audio):
        for b in blocks:
            h = b(h, emb, audio) if isinstance(b, ResBlock) else b(h)
        return h

    def forward(self, x, t, masked, reference, mel, audio_keep=None):
        emb, audio = self.condition(t, mel, audio_keep)
        h = self.inp(torch.cat([x, masked, reference], dim=1))
        hs = [h]
        for blocks in self.down:
            h = self._run(blocks, h, emb, audio)
            hs.append(h)
        h = self._run(self.mid, h, emb, audio)
        for blocks in self.up:
            h = self._run(blocks, torch.cat([h, hs.pop()], dim=1), emb, audio)
        return self.out(h)


__all__ = ["UNet", "AudioEncoder", "TemporalAudioEncoder", "audio_encoder", "timestep_embedding", "IN_CHANNELS", "OUT_CHANNELS"]
