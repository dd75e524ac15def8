"""Part 3, dynamic attribute modelling: a transformer VAE over head-pose + blink sequences.

A frame's attributes are the 6 pose features (:func:`refmodel.oneshot.features.pose_features`: yaw, pitch,
roll, translation, log scale relative to the clip mean) and the autoencoder's blink code, standardised by
the training set's statistics. Sequences are ``window`` frames long (2.56 s at ``tiny``; 8 s at ``base``).

- **Encoder**: a transformer over the frames (sinusoidal positions, attention across the whole window),
  mean-pooled into one latent **token per** ``token_every`` **frames** (μ, log σ² of a ``z_dim`` Gaussian).
- **Decoder**: the tokens' embeddings are interpolated linearly over the frames, positions are added, a transformer
  attends across the window and a linear layer returns the attributes.
- **Loss**: masked MSE (the blink channel weighted ``blink_weight``: blinks are sparse events), MSE of
  first differences (``velocity_weight``: sharp blink edges, smooth pose), and β·KL to N(0, I) per token
  with a linear warm-up. Mirrored sequences (yaw, roll, x-translation negated) are added at random.

**Sampling long sequences** (:func:`sample_sequence`): latent tokens for the whole length are drawn once
from the prior; overlapping windows of tokens (hop = half a window) are decoded and blended with a
sin² crossfade. Neighbouring windows share their tokens, so they agree where they overlap (a blink is
decoded at the same place by both) and the result is smooth and as long as the audio. Pose is re-centred
on the sequence mean (the photo's own pose is the mean pose).
"""
from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from .config import MotionConfig
from .features import POSE_DIM

ATTR_DIM = POSE_DIM + 1  # pose features + blink code
MIRROR = torch.tensor([-1.0, 1.0, -1.0, -1.0, 1.0, 1.0, 1.0])  # yaw, pitch, roll, tx, ty, log s, blink


def sinusoidal(n: int, d: int, device=None) -> torch.Tensor:
    pos = torch.arange(n, dtype=torch.float32, device=device)[:, None]
    freq = torch.exp(-math.log(10000.0) * torch.arange(0, d, 2, dtype=torch.float32, device=device) / d)
    pe = torch.zeros(n, d, device=device)
    pe[:, 0::2] = torch.sin(pos * freq)
    pe[:, 1::2] = torch.cos(pos * freq)[:, :d // 2]
    return pe


def _transformer(cfg: MotionConfig) -> nn.TransformerEncoder:
    layer = nn.TransformerEncoderLayer(cfg.d_model, cfg.heads, 4 * cfg.d_model, cfg.dropout, batch_first=True,
                                       norm_first=True)
    return nn.TransformerEncoder(layer, cfg.layers, enable_nested_tensor=False)


class MotionVAE(nn.Module):
    def __init__(self, cfg: MotionConfig):
        super().__init__()
        if cfg.window % cfg.token_every:
            raise ValueError(f"motion window {cfg.window} must be a multiple of token_every {cfg.token_every}")
        self.cfg = cfg
        d = cfg.d_model
        self.inp = nn.Linear(ATTR_DIM, d)
        self.enc = _transformer(cfg)
        self.stats = nn.Linear(d, 2 * cfg.z_dim)
        self.z_in = nn.Linear(cfg.z_dim, d)
        self.dec = _transformer(cfg)
        self.out = nn.Sequential(nn.LayerNorm(d), nn.Linear(d, ATTR_DIM))
        self.register_buffer("mean", torch.zeros(ATTR_DIM))
        self.register_buffer("std", torch.ones(ATTR_DIM))

    def encode(self, xn: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Standardised (B, W, 7) → μ, log σ² (B, W / token_every, z_dim)."""
        b, w, _ = xn.shape
        h = self.enc(self.inp(xn) + sinusoidal(w, self.cfg.d_model, xn.device))
        h = h.view(b, w // self.cfg.token_every, self.cfg.token_every, -1).mean(2)
        mu, logvar = self.stats(h).chunk(2, dim=-1)
        return mu, logvar.clamp(-10, 6)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """(B, K, z_dim) → standardised (B, K * token_every, 7)."""
        # token embeddings interpolated linearly between the token centres: a smooth input over frames
        h = F.interpolate(self.z_in(z).transpose(1, 2), scale_factor=self.cfg.token_every, mode="linear",
                          align_corners=False).transpose(1, 2)
        h = h + sinusoidal(h.shape[1], self.cfg.d_model, z.device)
        return self.out(self.dec(h))

    def standardise(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean) / self.std

    def destandardise(self, xn: torch.Tensor) -> torch.Tensor:
        return xn * self.std + self.mean


def vae_loss(model: MotionVAE, xn: torch.Tensor, mask: torch.Tensor, gen: torch.Generator, kl_scale: float) -> dict:
    cfg = model.cfg
    mu, logvar = model.encode(xn)
    eps = torch.randn(mu.shape, generator=gen).to(mu.device)
    rec = model.decode(mu + (0.5 * logvar).exp() * eps)
    w = torch.ones(ATTR_DIM, device=xn.device)
    w[-1] = cfg.blink_weight
    m = mask[..., None]
    mse = ((rec - xn) ** 2 * w * m).sum() / (m.sum() * w.sum()).clamp_min(1)
    mv = m[:, 1:] * m[:, :-1]
    vel = (((rec[:, 1:] - rec[:, :-1]) - (xn[:, 1:] - xn[:, :-1])) ** 2 * w * mv).sum() / (mv.sum() * w.sum()).clamp_min(1)
    kl = 0.5 * (mu ** 2 + logvar.exp() - 1 - logvar).sum(-1).mean()
    total = mse + cfg.velocity_weight * vel + kl_scale * cfg.kl_weight * kl
    return {"mse": mse, "vel": vel, "kl": kl, "total": total}


def attribute_series(series, blink_codes: list[np.ndarray]) -> list[tuple[np.ndarray, np.ndarray]]:
    """Per clip: (attributes (T, 7) = pose features + blink code, valid (T,))."""
    return [(np.concatenate([s.pose, b[:, None]], 1).astype(np.float32), s.valid.copy())
            for s, b in zip(series, blink_codes)]


def make_stage(series, blink_codes: list[np.ndarray], cfg: MotionConfig, key: dict, device="cpu"):
    """The stage that trains :class:`MotionVAE` on the clips' pose and (frozen) blink-code sequences."""
    from .stages import Stage

    seqs = [(x, v) for x, v in attribute_series(series, blink_codes) if len(x) >= cfg.window]
    if not seqs:
        raise ValueError(f"no clip has the {cfg.window} frames a motion window needs; use a smaller "
                         "motion.window (a multiple of motion.token_every)")
    model = MotionVAE(cfg)
    every = np.concatenate([x[v] for x, v in seqs])
    model.mean.copy_(torch.from_numpy(every.mean(0)))
    model.mean[:POSE_DIM] = 0.0  # pose features are centred per clip; keep 0 the mean pose
    model.std.copy_(torch.from_numpy(every.std(0)).clamp_min(1e-4))
    model.to(device)
    starts = [(i, s) for i, (x, _) in enumerate(seqs) for s in range(len(x) - cfg.window + 1)]
    mirror = MIRROR.to(device)

    def loss(step, rng, gen):
        pick = rng.integers(0, len(starts), cfg.batch_size)
        x = np.stack([seqs[starts[p][0]][0][starts[p][1]:starts[p][1] + cfg.window] for p in pick])
        v = np.stack([seqs[starts[p][0]][1][starts[p][1]:starts[p][1] + cfg.window] for p in pick])
        flip = torch.from_numpy(rng.random(cfg.batch_size) < 0.5).to(device)
        xt = torch.from_numpy(x).to(device)
        xt = torch.where(flip[:, None, None], xt * mirror, xt)
        xn = model.standardise(xt)
        kl_scale = min(1.0, (step + 1) / max(1, cfg.kl_warmup))
        return vae_loss(model, xn, torch.from_numpy(v.astype(np.float32)).to(device), gen, kl_scale)

    return Stage("motion", model, cfg.steps, cfg.lr, loss, key, checkpoint_every=max(1, cfg.steps // 4),
                 weight_decay=1e-4)


@torch.no_grad()
def sample_sequence(model: MotionVAE, num_frames: int, seed: int = 0, temperature: float = 1.0) -> np.ndarray:
    """(num_frames, 7) pose features + blink code sampled from the prior (see the module docstring)."""
    model.eval()
    cfg = model.cfg
    k, wt = cfg.token_every, cfg.window // cfg.token_every
    hop = max(1, wt // 2)
    n_tok = max(wt, math.ceil(num_frames / k))
    n_tok = wt + math.ceil((n_tok - wt) / hop) * hop
    gen = torch.Generator().manual_seed(int(seed))
    z = torch.randn((n_tok, cfg.z_dim), generator=gen) * temperature
    device = next(model.parameters()).device
    starts = list(range(0, n_tok - wt + 1, hop))
    decoded = model.decode(torch.stack([z[s:s + wt] for s in starts]).to(device)).cpu()
    fw = torch.sin(math.pi * (torch.arange(cfg.window) + 0.5) / cfg.window) ** 2
    acc = torch.zeros(n_tok * k, ATTR_DIM)
    wsum = torch.zeros(n_tok * k, 1)
    for s, out in zip(starts, decoded):
        w = fw.clone()
        if s == starts[0]:
            w[:cfg.window // 2] = 1.0  # nothing to blend with before the first window / after the last
        if s == starts[-1]:
            w[cfg.window // 2:] = 1.0
        acc[s * k:s * k + cfg.window] += out * w[:, None]
        wsum[s * k:s * k + cfg.window] += w[:, None]
    seq = model.destandardise(acc / wsum.clamp_min(1e-6))[:num_frames].numpy()
    seq[:, :POSE_DIM] -= seq[:, :POSE_DIM].mean(0)
    return seq.astype(np.float32)


def blink_events(blink: np.ndarray, threshold: float) -> np.ndarray:
    """Start frames of the runs where ``blink`` rises above ``threshold`` (one event per run)."""
    above = np.asarray(blink) > threshold
    return np.flatnonzero(above & ~np.r_[False, above[:-1]])


def motion_report(model: MotionVAE, attrs: list[tuple[np.ndarray, np.ndarray]], seconds: float = 60.0,
                  seed: int = 0, threshold: float = 0.25) -> dict:
    """Sampled vs data statistics: per-dimension std, mean |frame-to-frame change|, blinks per minute
    (runs of the blink code above ``threshold``)."""
    data = np.concatenate([x[v] for x, v in attrs])
    data_frames = sum(int(v.sum()) for _, v in attrs)
    data_blinks = sum(len(blink_events(np.where(v, x[:, -1], 0), threshold)) for x, v in attrs)
    n = int(seconds * 25)
    s = sample_sequence(model, n, seed)
    return {"data_std": data.std(0).round(5).tolist(), "sample_std": s.std(0).round(5).tolist(),
            "data_speed": np.mean([np.abs(np.diff(x[v], axis=0)).mean(0) for x, v in attrs], 0).round(5).tolist(),
            "sample_speed": np.abs(np.diff(s, axis=0)).mean(0).round(5).tolist(),
            "data_blinks_per_min": 60.0 * data_blinks / (data_frames / 25.0),
            "sample_blinks_per_min": 60.0 * len(blink_events(s[:, -1], threshold)) / seconds,
            "blink_threshold": threshold}


__all__ = ["MotionVAE", "vae_loss", "make_stage", "sample_sequence", "attribute_series", "blink_events",
           "motion_report", "ATTR_DIM"]
