"""Part 4, the diffusion renderer: a conditional DDPM that renders the aligned face crop of a frame from the
source face image and the frame's condition.

- **Condition** (per frame, a vector): the target lip code and blink code, the source image's own lip
  and blink codes (so a source with an open mouth or shut eyes is handled), and the pose of the target
  relative to the source (the 6 pose features). An MLP embeds it; the embedding is added to the time
  embedding and every residual block applies a scale / shift from it (AdaGN, ``refmodel.unet.ResBlock``).
- **What is diffused**: the residual ``target − source`` of the aligned crops at ``image_size`` (the
  source is concatenated to the noisy input as 3 more channels). EDM preconditioning with
  ``sigma_data`` (the residual's spread; :mod:`refmodel.diffusion`'s formulation), ε-prediction loss plus
  L1 on the x0 estimate, both weighted up on the eye and mouth regions of the template face (a blink is
  a few pixels at 64 px). Training timesteps lean to the high-noise end (``t_power``) where few-step
  sampling starts.
- **Sampling**: deterministic DDIM (η = 0), the **same x_T for every frame** of a video (drawn once from
  the seed), so frames with similar conditions get similar pixels. The full-resolution output is the
  source crop plus the upsampled residual: the identity's detail is the photo's own, the model only
  supplies what moves (mouth, eyelids).

In-plane head motion (roll, translation, scale) is not drawn by the renderer: crops are aligned, so it
is the placement of the crop in the frame (:mod:`refmodel.oneshot.composite`).
"""
from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from refmodel.diffusion import beta_schedule
from refmodel.unet import Attention, ResBlock, _groups, timestep_embedding

from .config import RenderConfig


def cond_dim(lip_dim: int) -> int:
    """Condition size: target lip + blink, source lip + blink, relative pose (6)."""
    return 2 * (lip_dim + 1) + 6


class RenderUNet(nn.Module):
    """``forward(x_t, t, source, cond) -> F`` (images (N, 3, S, S), cond (N, cond_dim))."""

    def __init__(self, cfg: RenderConfig, lip_dim: int):
        super().__init__()
        self.cfg = cfg
        ch = cfg.base_channels
        emb = 4 * ch
        self.time_mlp = nn.Sequential(nn.Linear(ch, emb), nn.SiLU(), nn.Linear(emb, emb))
        self.cond_mlp = nn.Sequential(nn.Linear(cond_dim(lip_dim), emb), nn.SiLU(), nn.Linear(emb, emb))
        p = cfg.patch  # space-to-depth: the network runs at image_size / patch on patch² x the channels
        self.inp = nn.Conv2d(6 * p * p, ch, 3, padding=1)
        self.down = nn.ModuleList()
        skips, cur, res = [ch], ch, cfg.image_size // p
        for level, mult in enumerate(cfg.channel_mult):
            for _ in range(cfg.num_res_blocks):
                blocks = [ResBlock(cur, ch * mult, emb, cfg.dropout)]
                cur = ch * mult
                if res in cfg.attention_resolutions:
                    blocks.append(Attention(cur))
                self.down.append(nn.ModuleList(blocks))
                skips.append(cur)
            if level < len(cfg.channel_mult) - 1:
                self.down.append(nn.ModuleList([nn.Conv2d(cur, cur, 3, stride=2, padding=1)]))
                skips.append(cur)
                res //= 2
        self.mid = nn.ModuleList([ResBlock(cur, cur, emb, cfg.dropout), Attention(cur), ResBlock(cur, cur, emb, cfg.dropout)])
        self.up = nn.ModuleList()
        for level, mult in reversed(list(enumerate(cfg.channel_mult))):
            for i in range(cfg.num_res_blocks + 1):
                blocks = [ResBlock(cur + skips.pop(), ch * mult, emb, cfg.dropout)]
                cur = ch * mult
                if res in cfg.attention_resolutions:
                    blocks.append(Attention(cur))
                if level > 0 and i == cfg.num_res_blocks:
                    blocks += [nn.Upsample(scale_factor=2, mode="nearest"), nn.Conv2d(cur, cur, 3, padding=1)]
                    res *= 2
                self.up.append(nn.ModuleList(blocks))
        self.out = nn.Sequential(nn.GroupNorm(_groups(cur), cur), nn.SiLU(), nn.Conv2d(cur, 3 * p * p, 3, padding=1))
        nn.init.zeros_(self.out[-1].weight)
        nn.init.zeros_(self.out[-1].bias)

    @staticmethod
    def _run(blocks, h, emb):
        for b in blocks:
            h = b(h, emb) if isinstance(b, ResBlock) else b(h)
        return h

    def forward(self, x, t, source, cond):
        emb = self.time_mlp(timestep_embedding(t, self.cfg.base_channels)) + self.cond_mlp(cond)
        p = self.cfg.patch
        h = torch.cat([x, source], 1)
        h = self.inp(F.pixel_unshuffle(h, p) if p > 1 else h)
        hs = [h]
        for blocks in self.down:
            h = self._run(blocks, h, emb)
            hs.append(h)
        h = self._run(self.mid, h, emb)
        for blocks in self.up:
            h = self._run(blocks, torch.cat([h, hs.pop()], 1), emb)
        h = self.out(h)
        return F.pixel_shuffle(h, p) if p > 1 else h


class Renderer(nn.Module):
    """:class:`RenderUNet` plus the standardisation of its raw condition (statistics of the training set)."""

    def __init__(self, cfg: RenderConfig, lip_dim: int):
        super().__init__()
        self.cfg = cfg
        self.lip_dim = lip_dim
        self.unet = RenderUNet(cfg, lip_dim)
        self.register_buffer("cond_mean", torch.zeros(cond_dim(lip_dim)))
        self.register_buffer("cond_std", torch.ones(cond_dim(lip_dim)))

    def normalise(self, cond: torch.Tensor) -> torch.Tensor:
        return (cond - self.cond_mean) / self.cond_std

    def forward(self, x, t, source, cond):
        """``cond`` raw (N, cond_dim): see :func:`make_condition`."""
        return self.unet(x, t, source, self.normalise(cond))


def make_condition(lip_t, blink_t, lip_s, blink_s, pose_rel) -> np.ndarray:
    """Raw condition rows (N, cond_dim): target lip / blink, source lip / blink, target pose − source pose."""
    n = len(lip_t)
    rows = [np.asarray(lip_t, np.float32).reshape(n, -1), np.asarray(blink_t, np.float32).reshape(n, 1),
            np.broadcast_to(np.asarray(lip_s, np.float32).reshape(-1, np.shape(lip_t)[-1]), (n, np.shape(lip_t)[-1])),
            np.broadcast_to(np.asarray(blink_s, np.float32).reshape(-1, 1), (n, 1)),
            np.asarray(pose_rel, np.float32).reshape(n, 6)]
    return np.concatenate(rows, 1).astype(np.float32)


def region_weights(size: int, eye_weight: float, mouth_weight: float) -> torch.Tensor:
    """(1, 1, S, S) loss weights: 1 + Gaussian bumps on the template's eyes and mouth (aligned crops)."""
    from prep.faces.align import template

    pts = template(size)
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float64)
    w = np.ones((size, size))
    for idx, weight, spread in ((range(36, 42), eye_weight, 0.06), (range(42, 48), eye_weight, 0.06),
                                (range(48, 68), mouth_weight, 0.11)):
        c = pts[list(idx)].mean(0)
        s = spread * size
        w += weight * np.exp(-0.5 * (((xx - c[0]) / (1.3 * s)) ** 2 + ((yy - c[1]) / s) ** 2))
    return torch.from_numpy(w.astype(np.float32))[None, None]


class ResidualDiffusion:
    """Schedule, training terms and DDIM sampler of the residual ``target − source`` (whole crop)."""

    def __init__(self, cfg: RenderConfig):
        self.cfg = cfg
        self.timesteps = cfg.timesteps
        self.alphas_cumprod = torch.from_numpy(np.cumprod(1.0 - beta_schedule(cfg.schedule, cfg.timesteps))).float()
        self.weights = region_weights(cfg.image_size, cfg.eye_weight, cfg.mouth_weight)

    def _abar(self, t):
        return self.alphas_cumprod.to(t.device)[t].view(-1, 1, 1, 1)

    def predict(self, model, x_t, t, source, cond):
        """(ε̂, residual estimate) from the preconditioned network (EDM in VP form, σ_d = sigma_data)."""
        a = self._abar(t)
        f = model(x_t, t, source, cond)
        sd = self.cfg.sigma_data
        d = 1 - a + a * sd * sd
        eps = (1 - a).sqrt() / d * x_t + sd * a.sqrt() / d.sqrt() * f
        y0 = sd * sd * a.sqrt() / d * x_t - sd * (1 - a).sqrt() / d.sqrt() * f
        return eps, y0

    def sample_t(self, n: int, gen: torch.Generator) -> torch.Tensor:
        u = torch.rand(n, generator=gen)
        return (u.pow(1.0 / self.cfg.t_power) * (self.timesteps - 1)).round().long()

    def training_terms(self, model, target, source, cond, t, noise) -> dict:
        a = self._abar(t)
        y = target - source
        x_t = a.sqrt() * y + (1 - a).sqrt() * noise
        eps, y0 = self.predict(model, x_t, t, source, cond)
        w = self.weights.to(target.device)
        norm = w.sum() * target.shape[1]
        mse = ((eps - noise) ** 2 * w).sum(dim=(1, 2, 3)) / norm
        l1 = ((y0 - y).abs() * w).sum(dim=(1, 2, 3)) / norm
        return {"mse": mse.mean(), "l1": l1.mean(), "x0": (source + y0).clamp(-1, 1)}

    def ddim_timesteps(self, steps: int) -> list[int]:
        steps = max(1, min(steps, self.timesteps))
        return sorted(set(np.linspace(self.timesteps - 1, 0, steps).round().astype(int).tolist()), reverse=True)

    @torch.no_grad()
    def sample(self, model, source, cond, noise, steps: int | None = None) -> torch.Tensor:
        """DDIM (η = 0): the residual (N, 3, S, S) for sources in [-1, 1]; ``noise`` = x_T (N, 3, S, S)."""
        x = noise
        ts = self.ddim_timesteps(steps or self.cfg.sample_steps)
        y0 = x
        for i, t in enumerate(ts):
            tt = torch.full((source.shape[0],), t, dtype=torch.long, device=source.device)
            _, y0 = self.predict(model, x, tt, source, cond)
            y0 = (source + y0).clamp(-1, 1) - source  # the image it implies stays in range
            a = self.alphas_cumprod[t].item()
            eps = (x - math.sqrt(a) * y0) / math.sqrt(1 - a)
            a_prev = self.alphas_cumprod[ts[i + 1]].item() if i + 1 < len(ts) else 1.0
            x = math.sqrt(a_prev) * y0 + math.sqrt(1 - a_prev) * eps
        return y0


def video_noise(seed: int, size: int) -> torch.Tensor:
    """x_T shared by every frame of one video: (3, size, size) from ``seed``."""
    return torch.randn((3, size, size), generator=torch.Generator().manual_seed(int(seed)))


__all__ = ["Renderer", "make_condition", "RenderUNet", "ResidualDiffusion", "region_weights", "cond_dim", "video_noise"]
