"""Training pairs and the training stage of the renderer, and its per-video inference.

A training pair is two face frames of one clip: the **target** ``t`` and the **source** ``s`` (drawn
uniformly among the clip's valid frames; at inference the source is the photo). Its condition is the
target's lip / blink codes (the frozen autoencoder's, teacher-forced, with a little Gaussian noise so the
renderer tolerates the audio model's and the VAE's imperfect codes), the source's codes and the pose of
``t`` relative to ``s``. Blinks are rare, so ``BLINK_TARGETS`` of the targets are drawn from blinking
frames, and sources mostly from open-eyed frames (``OPEN_SOURCES``), as at inference. Both crops are mirrored at random (the pose's yaw, roll and x-translation are
negated with them). Crops are decoded once at ``image_size`` and kept in memory (``max_cached_frames``).
"""
from __future__ import annotations

import logging

import numpy as np
import torch

from .config import RenderConfig
from .motion import MIRROR
from .renderer import Renderer, ResidualDiffusion, make_condition, video_noise

log = logging.getLogger(__name__)

BLINKING, OPEN_EYES = 0.2, 0.15  # EAR-drop thresholds of a blinking frame and of open eyes
BLINK_TARGETS = 0.3  # share of targets drawn from blinking frames (blinks are ~7 % of frames)
OPEN_SOURCES = 0.8  # share of sources drawn from open-eyed frames (sources at inference are)


class PairData:
    def __init__(self, series, lips: list[np.ndarray], blinks: list[np.ndarray], size: int, max_frames: int):
        from refmodel.data import load_crop

        self.clips = []
        total = 0
        for s, lip, blink in zip(series, lips, blinks):
            frames = np.flatnonzero(s.valid & np.array([c is not None for c in s.crops]))
            if len(frames) < 2:
                continue
            if total + len(frames) > max_frames:
                log.warning("renderer: crop cache full (%d frames); %s and later clips left out", max_frames, s.clip_id)
                break
            total += len(frames)
            crops = np.stack([load_crop(s.crops[f], size, s.crop_size) for f in frames])
            target = s.blink[frames]  # the landmarks' EAR drop: which frames blink, which have open eyes
            self.clips.append({"frames": frames, "crops": crops, "lip": lip[frames], "blink": blink[frames],
                               "pose": s.pose[frames], "blinking": np.flatnonzero(target > BLINKING),
                               "open": np.flatnonzero(target < OPEN_EYES)})
        if not self.clips:
            raise ValueError("no clip with two face frames to train the renderer on")
        self.weights = np.array([len(c["frames"]) for c in self.clips], np.float64)
        self.weights /= self.weights.sum()

    def condition_stats(self) -> tuple[np.ndarray, np.ndarray]:
        """Mean / std of the raw condition over pairs of the data (targets and sources alike)."""
        lip = np.concatenate([c["lip"] for c in self.clips])
        blink = np.concatenate([c["blink"] for c in self.clips])
        pose = np.concatenate([c["pose"] for c in self.clips])
        mean = np.concatenate([lip.mean(0), [blink.mean()], lip.mean(0), [blink.mean()], np.zeros(6)])
        std = np.concatenate([lip.std(0), [blink.std()], lip.std(0), [blink.std()], np.sqrt(2) * pose.std(0)])
        return mean.astype(np.float32), np.maximum(std, 1e-4).astype(np.float32)

    def batch(self, rng: np.random.Generator, size: int) -> dict:
        ci = rng.choice(len(self.clips), size=size, p=self.weights)
        tgt, src, cond, flip = [], [], [], rng.random(size) < 0.5
        for k, c in enumerate(ci):
            clip = self.clips[c]
            n = len(clip["frames"])
            t = (rng.choice(clip["blinking"]) if len(clip["blinking"]) and rng.random() < BLINK_TARGETS
                 else rng.integers(0, n))
            s = rng.choice(clip["open"]) if len(clip["open"]) and rng.random() < OPEN_SOURCES else rng.integers(0, n)
            a, b = clip["crops"][t], clip["crops"][s]
            rel = clip["pose"][t] - clip["pose"][s]
            if flip[k]:
                a, b, rel = a[:, ::-1], b[:, ::-1], rel * MIRROR[:6].numpy()
            tgt.append(a)
            src.append(b)
            cond.append(make_condition(clip["lip"][t:t + 1], clip["blink"][t:t + 1], clip["lip"][s], clip["blink"][s],
                                       rel[None])[0])
        return {"target": _images(tgt), "source": _images(src), "cond": torch.from_numpy(np.stack(cond))}


def _images(crops: list) -> torch.Tensor:
    """uint8 (S, S, 3) crops → float (N, 3, S, S) in [-1, 1]."""
    return torch.from_numpy(np.ascontiguousarray(np.stack(crops))).permute(0, 3, 1, 2).float().div(127.5).sub(1)


def make_stage(series, lips, blinks, cfg: RenderConfig, lip_dim: int, key: dict, max_frames: int, device="cpu"):
    """The stage that trains the :class:`~refmodel.oneshot.renderer.Renderer` (with an EMA)."""
    from .stages import Stage

    data = PairData(series, lips, blinks, cfg.image_size, max_frames)
    model = Renderer(cfg, lip_dim)
    mean, std = data.condition_stats()
    model.cond_mean.copy_(torch.from_numpy(mean))
    model.cond_std.copy_(torch.from_numpy(std))
    model.to(device)
    diffusion = ResidualDiffusion(cfg)
    n_target = lip_dim + 1

    def loss(step, rng, gen):
        b = data.batch(rng, cfg.batch_size)
        t = diffusion.sample_t(cfg.batch_size, gen)
        noise = torch.randn(b["target"].shape, generator=gen)
        jitter = torch.randn((cfg.batch_size, n_target), generator=gen) * cfg.cond_noise
        cond = b["cond"].clone()
        cond[:, :n_target] += jitter * model.cond_std[:n_target].cpu()
        terms = diffusion.training_terms(model, b["target"].to(device), b["source"].to(device), cond.to(device),
                                         t.to(device), noise.to(device))
        return {"mse": terms["mse"], "l1": terms["l1"], "total": terms["mse"] + cfg.l1_weight * terms["l1"]}

    stage = Stage("render", model, cfg.steps, cfg.lr, loss, key, grad_clip=cfg.grad_clip, ema_decay=cfg.ema_decay,
                  checkpoint_every=cfg.checkpoint_every)
    return stage, data


@torch.no_grad()
def render_residuals(model: Renderer, source: np.ndarray, cond: np.ndarray, seed: int = 0, steps: int | None = None,
                     batch: int = 32, device="cpu", progress=None) -> np.ndarray:
    """Residuals (T, S, S, 3) float32 in [-2, 2] (model range) for one source crop (S, S, 3) uint8 at the
    renderer's size and the per-frame raw conditions (T, cond_dim); one x_T for the whole video."""
    cfg = model.cfg
    diffusion = ResidualDiffusion(cfg)
    src = torch.from_numpy(np.ascontiguousarray(source)).permute(2, 0, 1).float().div(127.5).sub(1)[None].to(device)
    x_t = video_noise(seed, cfg.image_size).to(device)
    out = []
    for i in range(0, len(cond), batch):
        c = torch.from_numpy(np.ascontiguousarray(cond[i:i + batch], np.float32)).to(device)
        n = len(c)
        y0 = diffusion.sample(model, src.expand(n, -1, -1, -1), c, x_t.expand(n, -1, -1, -1), steps)
        out.append(y0.permute(0, 2, 3, 1).cpu().numpy())
        if progress is not None:
            progress.update(n)
    return np.concatenate(out) if out else np.zeros((0, cfg.image_size, cfg.image_size, 3), np.float32)


def full_resolution(source_crop: np.ndarray, residual: np.ndarray) -> np.ndarray:
    """Source crop (C, C, 3) uint8 at the stored crop size + a model-size residual (S, S, 3) → (C, C, 3) uint8."""
    import cv2

    c = source_crop.shape[0]
    up = cv2.resize(residual.astype(np.float32), (c, c), interpolation=cv2.INTER_CUBIC) * 127.5
    return np.clip(source_crop.astype(np.float32) + up + 0.5, 0, 255).astype(np.uint8)


__all__ = ["PairData", "make_stage", "render_residuals", "full_resolution"]
