"""Training of the one-shot 3DMM model: four stages in order, each resumable, then one checkpoint.

``train(prep_out, run_dir, config="tiny")``:

1. ``ae``      the expression autoencoder (lip code + blink code) on every valid frame's ``mm_exp``;
2. ``lipsync`` audio → lip code (InfoNCE + L1) on the autoencoder's frozen lip codes;
3. ``motion``  the transformer VAE on pose features + the autoencoder's blink codes;
4. ``render``  the conditional DDPM renderer on frame pairs (teacher-forced codes), with an EMA.

Each stage keeps ``RUN/stage_<name>.pt`` (resumed when its config matches; a stage already at its step
count is not retrained) and ``RUN/loss_<name>.jsonl``. The run's ``RUN/checkpoint.pt`` (kind
``talkbench.refmodel.oneshot3dmm``) holds the config, every part's weights (the renderer's EMA) and
what each stage measured at the end (``reports``). ``steps`` is the renderer's step count (the other
stages' come from the config: ``--set ae.steps=...``).
"""
from __future__ import annotations

import io
import logging
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch

from talkbase.fileio import atomic_write_bytes

from .config import OneShotConfig, get_config

log = logging.getLogger(__name__)

KIND = "talkbench.refmodel.oneshot3dmm"
CHECKPOINT = "checkpoint.pt"


def _key(cfg: OneShotConfig, part: str, prep_sha: str) -> dict:
    """What a stage file must match to be resumed: its part's config and the autoencoder's (every later
    stage consumes its codes) without step counts, the training splits and the shards."""
    def nosteps(p):
        return {k: v for k, v in asdict(getattr(cfg, p)).items() if k != "steps"}

    key = {"part": part, part: nosteps(part), "train_splits": [s for s in cfg.train_splits], "shards": prep_sha}
    if part != "ae":
        key["ae"] = nosteps("ae")
    if part == "render":
        key["max_cached_frames"] = cfg.max_cached_frames
    return key


def _codes(ae, series) -> tuple[list[np.ndarray], list[np.ndarray]]:
    lips, blinks = [], []
    for s in series:
        lip, blink = ae.codes(np.nan_to_num(s.mm_exp))
        lips.append(lip)
        blinks.append(blink)
    return lips, blinks


def train(prep_out, run_dir, config="tiny", steps: int | None = None, seed: int = 0, resume: bool = True,
          overrides: dict | None = None, sync_expert=None, progress: bool = True) -> Path:
    """Train (or resume) every stage on ``prep_out`` into ``run_dir``; returns ``run_dir/checkpoint.pt``.

    ``config``: ``tiny`` / ``base`` / a config or stored dict; ``overrides``: dotted fields
    (``{"render.batch_size": 8}``); ``steps``: the renderer's total steps; ``seed``: initialisation and
    every stage's batches and noise. ``sync_expert`` is the Diff2Lip model's option and is not used here.
    """
    from refmodel.data import open_prep
    from refmodel.train import pick_device
    from talkbase.threads import keep_freed_memory

    from . import disentangle, lipsync, motion, render_train
    from .features import require_3dmm, training_series
    from .stages import run_stage

    if sync_expert is not None:
        log.warning("oneshot3dmm trains its own audio -> lip model; --sync-expert is ignored")
    cfg = get_config(config, overrides)
    if steps is not None:
        cfg = cfg.with_overrides({"render.steps": int(steps)})
    prep = open_prep(prep_out)
    require_3dmm(prep)
    device = pick_device(cfg.device)
    keep_freed_memory()  # every step frees and re-allocates the same activations
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    sha = prep.shards_sha256
    t_start = time.time()
    series = training_series(prep, cfg, crops=True)
    log.info("oneshot3dmm: %d training clips, %d frames", len(series), sum(int(s.valid.sum()) for s in series))
    torch.manual_seed(seed)
    seconds, reports = {}, {}

    ae = run_stage(disentangle.make_stage(series, cfg.ae, _key(cfg, "ae", sha), device), run_dir, seed, resume,
                   progress)
    seconds["ae"] = ae["seconds"]
    ae_model = ae["model"].cpu().eval()
    reports["ae"] = disentangle.disentangling_report(ae_model, series)
    lips, blinks = _codes(ae_model, series)

    torch.manual_seed(seed + 1)
    ls = run_stage(lipsync.make_stage(series, lips, cfg.lipsync, _key(cfg, "lipsync", sha), device), run_dir, seed,
                   resume, progress)
    seconds["lipsync"] = ls["seconds"]
    audio_to_lip = ls["model"].audio_to_lip.cpu().eval()
    reports["lipsync"] = lipsync.lipsync_report(audio_to_lip, ae_model, series)

    torch.manual_seed(seed + 2)
    mo = run_stage(motion.make_stage(series, blinks, cfg.motion, _key(cfg, "motion", sha), device), run_dir, seed,
                   resume, progress)
    seconds["motion"] = mo["seconds"]
    motion_model = mo["model"].cpu().eval()
    reports["motion"] = motion.motion_report(motion_model, motion.attribute_series(series, blinks), seed=seed)

    torch.manual_seed(seed + 3)
    stage, _ = render_train.make_stage(series, lips, blinks, cfg.render, cfg.ae.lip_dim, _key(cfg, "render", sha),
                                       cfg.max_cached_frames, device)
    rd = run_stage(stage, run_dir, seed, resume, progress)
    seconds["render"] = rd["seconds"]
    seconds["total"] = time.time() - t_start
    hist = rd["history"]
    reports["render"] = {"loss_first": hist[0]["total"] if hist else None, "loss_last": hist[-1]["total"] if hist else None}

    state = {"kind": KIND, "config": cfg.to_dict(), "seed": int(seed), "prep_out": str(prep.path), "shards_sha256": sha,
             "lip_dim": cfg.ae.lip_dim, "crop_size": int(series[0].crop_size), "ae": ae_model.state_dict(),
             "audio_to_lip": audio_to_lip.state_dict(),
             "motion": motion_model.state_dict(), "render": rd["ema"].cpu().state_dict(),
             "steps": {name: getattr(cfg, name).steps for name in cfg.PARTS},
             "train_clips": [s.clip_id for s in series], "reports": reports,
             "seconds": {k: round(v, 1) for k, v in seconds.items()}}
    buf = io.BytesIO()
    torch.save(state, buf)
    path = run_dir / CHECKPOINT
    atomic_write_bytes(path, buf.getvalue())
    log.info("oneshot3dmm: wrote %s (%.0f s)", path, seconds["total"])
    return path


@dataclass
class OneShotModel:
    """Every part of a trained model, on the CPU, in eval mode."""

    cfg: OneShotConfig
    ae: torch.nn.Module
    audio_to_lip: torch.nn.Module
    motion: torch.nn.Module
    renderer: torch.nn.Module
    checkpoint: dict

    def to(self, device) -> "OneShotModel":
        self.renderer.to(device)
        return self


def load_checkpoint(path) -> dict:
    p = Path(path)
    p = p / CHECKPOINT if p.is_dir() else p
    ckpt = torch.load(p, map_location="cpu", weights_only=True)
    if not isinstance(ckpt, dict) or ckpt.get("kind") != KIND:
        raise ValueError(f"{p}: not a oneshot3dmm checkpoint")
    return ckpt


def load_model(path) -> OneShotModel:
    """The trained model of a checkpoint file or run directory."""
    from .disentangle import ExpressionAE
    from .lipsync import AudioToLip
    from .motion import MotionVAE
    from .renderer import Renderer

    ckpt = load_checkpoint(path)
    cfg = get_config(ckpt["config"])
    ae = ExpressionAE(cfg.ae)
    ae.load_state_dict(ckpt["ae"])
    a2l = AudioToLip(cfg.lipsync, cfg.ae.lip_dim)
    a2l.load_state_dict(ckpt["audio_to_lip"])
    mo = MotionVAE(cfg.motion)
    mo.load_state_dict(ckpt["motion"])
    rd = Renderer(cfg.render, cfg.ae.lip_dim)
    rd.load_state_dict(ckpt["render"])
    return OneShotModel(cfg, ae.eval(), a2l.eval(), mo.eval(), rd.eval(), ckpt)


__all__ = ["train", "load_model", "load_checkpoint", "OneShotModel", "KIND", "CHECKPOINT"]
