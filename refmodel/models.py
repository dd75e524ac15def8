"""The reference models, by name: how each is trained and sampled (``talkbench train/sample --model NAME``).

Every model trains from a prep output into a run directory holding ``checkpoint.pt`` (a weights-only torch
file whose ``kind`` names its model) and samples the same submission format (``<clip_id>.mp4``, audio muxed).
"""
from __future__ import annotations

import importlib
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class ReferenceModel:
    name: str
    description: str
    train: str  # "module:function"  (prep_out, run_dir, config=..., steps=, seed=, resume=, overrides=, progress=)
    sample: str  # "module:function" (checkpoint, prep_out, out_dir, clip_ids=, audio_from=, seed=, progress=, ...)
    checkpoint_kind: str  # the ``kind`` stored in its checkpoint
    # "module:function" (checkpoint, device=, ...) -> a crop generator (``refmodel.sample``): models that
    # inpaint aligned crops share sampling, the held-out evaluation and the lip-sync measures through it
    generator: str | None = None


MODELS = {m.name: m for m in (
    ReferenceModel("diff2lip", "Diff2Lip-style inpainting diffusion (masked lower face, reference frame, mel window)",
                   "refmodel.train:train", "refmodel.sample:sample_videos", "talkbench.refmodel.diffusion",
                   generator="refmodel.sample:Diff2LipGenerator"),
    ReferenceModel("attnwav2lip", "LPIPS-AttnWav2Lip: GAN-free U-Net with residual CBAM blocks and AdaIN audio "
                   "alignment; L1 + sync + perceptual loss (LPIPS, or MS-SSIM without the LPIPS weights: "
                   "then named attnwav2lip-msssim)",
                   "refmodel.attnwav2lip.train:train", "refmodel.sample:sample_videos",
                   "talkbench.refmodel.attnwav2lip", generator="refmodel.attnwav2lip.train:AttnWav2LipGenerator"),
    ReferenceModel("oneshot3dmm", "one photo + any audio: 3DMM expression split into lip / blink codes, audio -> lip "
                   "(InfoNCE), transformer-VAE pose + blinks, conditional diffusion renderer",
                   "refmodel.oneshot.train:train", "refmodel.oneshot.sample:sample_videos",
                   "talkbench.refmodel.oneshot3dmm"),
)}


def get(name: str) -> ReferenceModel:
    try:
        return MODELS[name]
    except KeyError:
        raise ValueError(f"unknown reference model {name!r}; known: {', '.join(MODELS)}") from None


def function(ref: str):
    module, _, name = ref.partition(":")
    return getattr(importlib.import_module(module), name)


def model_of_checkpoint(path) -> ReferenceModel:
    """The model a checkpoint (file or run directory) belongs to, from its stored ``kind``."""
    from talkbase.weights import WeightsUnreadable

    import torch

    p = Path(path)
    p = p / "checkpoint.pt" if p.is_dir() else p
    if not p.is_file():
        raise FileNotFoundError(f"{p}: no checkpoint")
    try:
        kind = torch.load(p, map_location="cpu", weights_only=True).get("kind")
    except Exception as e:  # noqa: BLE001 - not a checkpoint: say so, never a traceback
        raise WeightsUnreadable(f"{p}: not a talkbench checkpoint ({type(e).__name__})") from None
    for m in MODELS.values():
        if m.checkpoint_kind == kind:
            return m
    raise WeightsUnreadable(f"{p}: not a talkbench reference-model checkpoint (kind {kind!r})")


__all__ = ["ReferenceModel", "MODELS", "get", "function", "model_of_checkpoint"]
