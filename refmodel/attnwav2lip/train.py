"""Training and sampling of AttnWav2Lip: its loss, its recipe for the shared loop, its crop generator.

Loss per batch of 5-frame windows (``refmodel.training.prepare_batch``): L1 on the lower half (up-weighted
on the template mouth box, ``mouth_weight``) + ``perceptual_weight`` × the perceptual term (LPIPS on the
composited crop, or 1 − MS-SSIM on the lower half; ``refmodel.attnwav2lip.losses``) + ``sync_weight`` × the
frozen sync expert's loss on each window of composited frames (``refmodel.sync_training.sync_loss``, the
offset negatives of the window). No GAN. The reference's lower half is blanked with probability
``ref_mouth_drop`` (1.0: always, also at sampling), so the mouth has to come from the audio.
"""
from __future__ import annotations

import logging
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

from ..diffusion import mouth_mask, to_model_range, to_uint8
from ..training import Recipe, bind_checkpoint, load_checkpoint, load_state, pick_device, run_training
from .config import W2LConfig, get_config
from .losses import load_lpips, ms_ssim, perceptual_name, resolve_perceptual
from .net import AttnWav2Lip

log = logging.getLogger(__name__)

KIND = "talkbench.refmodel.attnwav2lip"


def _make_loss(cfg: W2LConfig, device):
    from evalkit.nets.sync_expert import prepare_mouth

    from ..sync_training import sync_loss
    from ..train import mouth_weight_map

    size = cfg.model.image_size
    mask = mouth_mask(size, device)
    weight = mouth_weight_map(size, cfg.mouth_weight, device) * mask
    lpips = load_lpips().to(device) if cfg.perceptual == "lpips" and cfg.perceptual_weight > 0 else None

    def loss(net, data, gen, expert, sync_temperature):
        b, t = data["windows"], data["window"]
        reference = data["reference"]
        if cfg.ref_mouth_drop > 0:
            drop = (torch.rand(b, generator=gen) < cfg.ref_mouth_drop).repeat_interleave(t).to(device)
            reference = torch.where(drop.view(-1, 1, 1, 1), reference * (1 - mask), reference)
        out = net(data["masked"], reference, data["mel"])
        target = data["target"]
        comp = data["masked"] * (1 - mask) + out * mask
        l1 = ((out - target).abs() * weight).sum((1, 2, 3)) / (weight.sum() * 3)
        terms = {"l1": l1.mean()}
        total = cfg.l1_weight * terms["l1"]
        if cfg.perceptual_weight > 0:
            half = size // 2
            if lpips is not None:
                perc = lpips(comp, target).mean()
            else:
                perc = (1 - ms_ssim(comp[..., half:, :], target[..., half:, :])).mean()
            terms[cfg.perceptual] = perc
            total = total + cfg.perceptual_weight * perc
        if expert is not None and cfg.sync_weight > 0 and t == expert.arch.window:
            x0 = comp.reshape(b, t, *comp.shape[1:])
            temp = cfg.sync.temperature if sync_temperature is None else sync_temperature
            terms["sync"] = sync_loss(expert, prepare_mouth(x0, expert.arch.image_size), data["sync_mel"],
                                      data["neg_mel"], temp).mean()
            total = total + cfg.sync_weight * terms["sync"]
        terms["total"] = total
        return terms

    return loss


RECIPE = Recipe(kind=KIND, get_config=get_config, build=lambda cfg: AttnWav2Lip(cfg.model), make_loss=_make_loss,
                extra=lambda cfg: {"model_name": perceptual_name(cfg.perceptual)})


def train(prep_out, run_dir, config="tiny", steps: int | None = None, seed: int = 0, resume: bool = True,
          overrides: dict | None = None, sync_expert=None, progress: bool = True) -> Path:
    """Train (or resume) AttnWav2Lip on a prep output; returns the checkpoint path. ``perceptual="auto"``
    is resolved here (LPIPS when its weights are found, else MS-SSIM) and stored resolved, so the run's
    name (``attnwav2lip`` / ``attnwav2lip-msssim``) is fixed by its checkpoint. The rest as
    ``refmodel.training.run_training``."""
    cfg = get_config(config, overrides)
    if cfg.perceptual == "auto":
        cfg = replace(cfg, perceptual=resolve_perceptual("auto"))
    log.info("training %s (%s config)", perceptual_name(cfg.perceptual), cfg.name)
    return run_training(RECIPE, prep_out, run_dir, cfg, steps, seed, resume, None, sync_expert, progress)


def load_model(checkpoint, device="cpu", use_ema: bool = True):
    """(model in eval mode, its config, the checkpoint dict)."""
    ckpt = load_checkpoint(checkpoint, KIND)
    cfg = get_config(ckpt["config"])
    model = AttnWav2Lip(cfg.model)
    load_state(model, ckpt["ema" if use_ema else "model"])
    return model.eval().to(device), cfg, ckpt


class AttnWav2LipGenerator:
    """A trained AttnWav2Lip checkpoint as a crop generator (``refmodel.sample``); deterministic."""

    def __init__(self, checkpoint, device: str = "auto"):
        self.device = pick_device(device)
        self.model, self.cfg, ckpt = load_model(checkpoint, self.device)
        self.name = ckpt.get("model_name") or perceptual_name(self.cfg.perceptual)
        bind_checkpoint(self, checkpoint, self.cfg, ckpt)
        self.settings = {"perceptual": self.cfg.perceptual}

    def generate(self, crops: np.ndarray, references: np.ndarray, mels: np.ndarray, seed: int = 0,
                 batch_size: int = 64, progress=None) -> np.ndarray:
        """(N, S, S, 3) uint8 crops with the lower half generated (``seed`` unused: no noise)."""
        out = []
        with torch.no_grad():
            for i in range(0, len(crops), batch_size):
                src = to_model_range(torch.from_numpy(crops[i:i + batch_size]).permute(0, 3, 1, 2).to(self.device))
                mask = mouth_mask(src.shape[-1], self.device)
                ref = to_model_range(torch.from_numpy(references[i:i + batch_size]).permute(0, 3, 1, 2).to(self.device))
                if self.cfg.ref_mouth_drop >= 1.0:
                    ref = ref * (1 - mask)
                mel = torch.from_numpy(np.ascontiguousarray(mels[i:i + batch_size])).to(self.device)
                img = self.model(src * (1 - mask), ref, mel)
                img = src * (1 - mask) + img * mask
                out.append(to_uint8(img).permute(0, 2, 3, 1).cpu().numpy())
                if progress is not None:
                    progress.update(len(src))
        return np.concatenate(out) if out else np.zeros((0,) + crops.shape[1:], np.uint8)


__all__ = ["train", "load_model", "AttnWav2LipGenerator", "RECIPE", "KIND"]
