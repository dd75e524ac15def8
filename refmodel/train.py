"""Diff2Lip-style diffusion model: its loss and its recipe for the shared training loop (``refmodel.training``).

``loss_terms``: ε-MSE on the mask + L1 on the x0 estimate (optionally up-weighted on the mouth box) + the
sync-expert loss on the 5-frame window of x0 estimates; the options that make ``tiny`` follow the audio
(timesteps matched to the sampler, the reference's mouth blanked, audio dropout for guidance) are applied
here. ``train`` = ``refmodel.training.run_training`` with this recipe; see that module for resume and DDP.
"""
from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import torch

from .config import TrainConfig, get_config
from .diffusion import MaskedDiffusion, mouth_mask
from .training import (CHECKPOINT, LOSS_LOG, SYNC_EXPERT, Recipe, load_state, pick_device, prepare_batch,  # noqa: F401
                       read_loss_log, run_training, save_checkpoint, step_generator)
from .training import load_checkpoint as _load_checkpoint
from .unet import UNet

log = logging.getLogger(__name__)

KIND = "talkbench.refmodel.diffusion"


def mouth_weight_map(size: int, weight: float, device=None) -> torch.Tensor:
    """(1, 1, S, S) loss weight: 1 + ``weight`` on the template mouth box (points 48–67 of
    ``prep.faces.align.template``, grown by a quarter of the mouth width, edges feathered by 2 px)."""
    import cv2

    from prep.faces.align import template

    pts = template(size)[48:68]
    (x0, y0), (x1, y1) = pts.min(0), pts.max(0)
    m = 0.25 * (x1 - x0)
    box = np.zeros((size, size), np.float32)
    box[max(0, int(y0 - m)):int(np.ceil(y1 + m)) + 1, max(0, int(x0 - m)):int(np.ceil(x1 + m)) + 1] = 1.0
    box = cv2.GaussianBlur(box, (0, 0), 2.0 * size / 64)
    return (1.0 + weight * torch.from_numpy(box / max(box.max(), 1e-6)))[None, None].to(device)


def loss_terms(model, diffusion: MaskedDiffusion, cfg: TrainConfig, data: dict, gen: torch.Generator,
               expert=None, sync_temperature: float | None = None) -> dict:
    """All loss terms of one batch (scalars); ``total`` is what is minimised.

    Timesteps are uniform in ``[diffusion.train_t_min, T)`` (every frame its own); per window the reference's
    lower half is blanked with probability ``ref_mouth_drop`` and the audio dropped with ``audio_drop``;
    ``mouth_weight`` up-weights the mouth box in the ε-MSE and L1 terms.
    ``expert``: the frozen sync expert (an ``evalkit.nets.sync_expert.SyncExpert``) for the sync term, at
    ``sync_temperature`` (the one it was trained with; default ``cfg.sync.temperature``)."""
    from evalkit.nets.sync_expert import prepare_mouth

    from .sync_training import sync_loss

    b, t = data["windows"], data["window"]
    device = data["target"].device
    lo = min(max(0, int(cfg.diffusion.train_t_min)), diffusion.timesteps - 1)
    steps = torch.randint(lo, diffusion.timesteps, (b * t,), generator=gen)  # every frame its own noise level
    noise = torch.randn(data["target"].shape, generator=gen)
    reference, origin, keep = data["reference"], None, None
    mask = mouth_mask(reference.shape[-1], device)
    if cfg.ref_mouth_drop > 0:
        drop = (torch.rand(b, generator=gen) < cfg.ref_mouth_drop).repeat_interleave(t).to(device)
        origin = reference
        reference = torch.where(drop.view(-1, 1, 1, 1), reference * (1 - mask), reference)
    if cfg.audio_drop > 0:
        keep = (torch.rand(b, generator=gen) >= cfg.audio_drop).repeat_interleave(t).to(device)
    weight = mouth_weight_map(reference.shape[-1], cfg.mouth_weight, device) if cfg.mouth_weight > 0 else None
    terms = diffusion.training_terms(model, data["target"], data["masked"], reference, data["mel"],
                                     steps.to(device), noise.to(device), weight, keep, origin)
    mse, l1 = terms["mse"].mean(), terms["l1"].mean()
    total = mse + cfg.l1_weight * l1
    out = {"mse": mse, "l1": l1}
    if expert is not None and cfg.sync_weight > 0 and t == expert.arch.window:
        x0 = terms["x0"].reshape(b, t, *terms["x0"].shape[1:])
        temperature = cfg.sync.temperature if sync_temperature is None else sync_temperature
        per_window = sync_loss(expert, prepare_mouth(x0, expert.arch.image_size), data["sync_mel"], data["neg_mel"],
                               temperature)
        if cfg.sync_weighting == "abar":  # trust the x0 estimates only as far as their signal
            w = terms["abar"].reshape(b, t).mean(1)
        else:  # "uniform": the x0 estimate at high noise is what a 1-step sampler outputs
            w = torch.ones(b, device=device)
        if keep is not None:  # a window trained without audio has no audio to be in sync with
            w = w * keep.view(b, t)[:, 0].float()
        sync = (per_window * w).sum() / w.sum().clamp_min(1e-8)
        total = total + cfg.sync_weight * sync
        out["sync"] = sync
    out["total"] = total
    return out


def load_checkpoint(path) -> dict:
    """A Diff2Lip checkpoint dict (safe load: tensors and plain data only)."""
    return _load_checkpoint(path, KIND)


def load_model(checkpoint, device="cpu", use_ema: bool = True) -> tuple[UNet, TrainConfig, dict]:
    """(model in eval mode, its config, the checkpoint dict) from a checkpoint file or run dir."""
    ckpt = load_checkpoint(checkpoint)
    cfg = get_config(ckpt["config"])
    model = UNet(cfg.model)
    load_state(model, ckpt["ema" if use_ema else "model"])
    return model.eval().to(device), cfg, ckpt


def _make_loss(cfg: TrainConfig, device):
    diffusion = MaskedDiffusion(cfg.diffusion)

    def loss(net, data, gen, expert, sync_temperature):
        return loss_terms(net, diffusion, cfg, data, gen, expert, sync_temperature)

    return loss


RECIPE = Recipe(kind=KIND, get_config=get_config, build=lambda cfg: UNet(cfg.model), make_loss=_make_loss)


def train(prep_out, run_dir, config="tiny", steps: int | None = None, seed: int = 0, resume: bool = True,
          overrides: dict | None = None, sync_expert=None, progress: bool = True) -> Path:
    """Train (or resume training) the Diff2Lip model on a prep output; returns the checkpoint path.

    ``config``: ``tiny``/``base``, a TrainConfig or a stored config dict; ``overrides``: fields to replace,
    e.g. ``{"batch_size": 2, "sync.steps": 100}``; the rest as ``refmodel.training.run_training``.
    """
    return run_training(RECIPE, prep_out, run_dir, config, steps, seed, resume, overrides, sync_expert, progress)


__all__ = ["train", "load_model", "load_checkpoint", "save_checkpoint", "read_loss_log", "prepare_batch",
           "loss_terms", "mouth_weight_map", "step_generator", "pick_device", "RECIPE", "KIND", "CHECKPOINT",
           "SYNC_EXPERT"]
