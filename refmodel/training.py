"""The training loop every reference model shares: data stream, EMA, checkpoints with exact resume, DDP.

A model is a :class:`Recipe`: its checkpoint ``kind``, how its config is rebuilt from a stored dict, how its
network is built and what its loss is. The loop is the same for all: windows of ``cfg.window`` frames from
``refmodel.data.ShardFrameDataset`` (``prepare_batch``), a frozen sync expert (trained into the run directory
first when ``cfg.sync_weight > 0``), AdamW, gradient clipping, EMA, ``loss.jsonl`` and ``checkpoint.pt``.

Exactness of resume: the data stream is a pure function of (seed, batches consumed) — the dataset skips
the batches already seen — the random draws of step ``k`` (noise, timesteps, dropped inputs) come from a
generator seeded with (seed, rank, k), and the checkpoint holds model, EMA, optimizer, step and the global
torch RNG state (dropout). A resumed run therefore reproduces the uninterrupted loss curve (bitwise on the
same machine and thread count).

Distributed: launched by ``torchrun --nproc_per_node=N -m talkbench.cli train ...`` the loop initialises
the process group from the environment (NCCL on GPUs, Gloo otherwise), wraps the network in DDP, gives each
rank disjoint shards, and only rank 0 writes checkpoints and logs.
"""
from __future__ import annotations

import copy
import io
import json
import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

from talkbase.fileio import atomic_write_bytes
from talkbase.threads import keep_freed_memory

from .diffusion import mouth_mask, to_model_range

log = logging.getLogger(__name__)

CHECKPOINT = "checkpoint.pt"
LOSS_LOG = "loss.jsonl"
SYNC_EXPERT = "sync_expert.pt"


@dataclass(frozen=True)
class Recipe:
    """What the shared loop needs to know about one reference model."""

    kind: str  # stored in the checkpoint; ``refmodel.models`` dispatches on it
    get_config: Callable  # (name | config | stored dict, overrides) -> config
    build: Callable  # config -> nn.Module
    # (config, device) -> loss(net, data, gen, expert, sync_temperature) -> {"total": ..., other scalars}
    make_loss: Callable
    extra: Callable[[Any], dict] = lambda cfg: {}  # more checkpoint fields (e.g. the model's display name)


def pick_device(name: str = "auto") -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def step_generator(seed: int, rank: int, step: int) -> torch.Generator:
    """The generator of one step's random draws: depends only on (seed, rank, step)."""
    mixed = np.random.SeedSequence([seed, rank, step]).generate_state(1, dtype=np.uint64)[0]
    return torch.Generator().manual_seed(int(mixed) & ((1 << 63) - 1))


def prepare_batch(batch: dict, device) -> dict:
    """uint8 batch of windows → flat float frames for the model (B*T, ...) plus window-level audio."""
    target = to_model_range(batch["target"].to(device))  # (B, T, 3, S, S)
    b, t = target.shape[:2]
    frames = target.flatten(0, 1)
    mask = mouth_mask(frames.shape[-1], device)
    out = {
        "target": frames,
        "masked": frames * (1 - mask),
        "reference": to_model_range(batch["reference"].to(device)).repeat_interleave(t, 0),
        "mel": batch["mel"].to(device).flatten(0, 1),
        "sync_mel": batch["mel"][:, 0].to(device),  # the window's audio (SyncNet pairing)
        "windows": b, "window": t,
    }
    if "neg_mel" in batch:
        out["neg_mel"] = batch["neg_mel"].to(device)
    return out


# ------------------------------------------------------------------ checkpoints

def save_checkpoint(path, cfg, step: int, model, ema, opt, seed: int, extra: dict | None = None,
                    kind: str = "talkbench.refmodel.diffusion") -> Path:
    state = {"kind": kind, "config": cfg.to_dict(), "step": int(step), "seed": int(seed),
             "model": model.state_dict(), "ema": ema.state_dict(), "optimizer": opt.state_dict(),
             "rng": {"torch": torch.get_rng_state()}, **(extra or {})}
    buf = io.BytesIO()
    torch.save(state, buf)
    atomic_write_bytes(path, buf.getvalue())
    return Path(path)


def load_checkpoint(path, kind: str = "talkbench.refmodel.diffusion") -> dict:
    """A checkpoint dict of ``kind`` (safe load: tensors and plain data only); a run dir means its
    ``checkpoint.pt``."""
    path = Path(path)
    if path.is_dir():
        path = path / CHECKPOINT
    ckpt = torch.load(path, map_location="cpu", weights_only=True)
    if not isinstance(ckpt, dict) or ckpt.get("kind") != kind:
        raise ValueError(f"{path}: not a talkbench {kind} checkpoint")
    return ckpt


def load_state(module, state: dict) -> None:
    """Load a stored state dict; ``null_audio`` (added with classifier-free guidance) defaults to zeros
    for checkpoints written before it."""
    state = dict(state)
    own = module.state_dict()
    if "null_audio" in own and "null_audio" not in state:
        state["null_audio"] = torch.zeros_like(own["null_audio"])
    module.load_state_dict(state)


def _ema_update(ema, model, decay: float) -> None:
    with torch.no_grad():
        for e, p in zip(ema.parameters(), model.parameters()):
            e.lerp_(p.detach(), 1.0 - decay)
        for e, b in zip(ema.buffers(), model.buffers()):
            e.copy_(b)


def _read_log(path: Path, upto: int) -> list[dict]:
    if not path.exists():
        return []
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    return [r for r in rows if r["step"] <= upto]


def read_loss_log(run_dir) -> list[dict]:
    """Per-step loss terms logged by training (``step``, ``total`` and the model's terms)."""
    return _read_log(Path(run_dir) / LOSS_LOG, 1 << 62)


def _write_log(path: Path, history: list[dict]) -> None:
    atomic_write_bytes(path, "".join(json.dumps(h) + "\n" for h in history).encode())


def _dist_setup(device_name: str):
    """(rank, world_size, device) — initialising torch.distributed when launched by torchrun."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return 0, 1, pick_device(device_name)
    import torch.distributed as dist

    local = int(os.environ.get("LOCAL_RANK", "0"))
    use_cuda = torch.cuda.is_available() and device_name in ("auto", "cuda")
    if not dist.is_initialized():
        dist.init_process_group("nccl" if use_cuda else "gloo")
    if use_cuda:
        torch.cuda.set_device(local)
    return dist.get_rank(), dist.get_world_size(), torch.device(f"cuda:{local}" if use_cuda else "cpu")


def run_training(recipe: Recipe, prep_out, run_dir, config="tiny", steps: int | None = None, seed: int = 0,
                 resume: bool = True, overrides: dict | None = None, sync_expert=None, progress: bool = True) -> Path:
    """Train (or resume training) ``recipe``'s model on a prep output; returns the checkpoint path.

    Args:
        recipe: the model (:class:`Recipe`).
        prep_out: prep output directory.
        run_dir: where ``checkpoint.pt``, ``loss.jsonl`` and ``sync_expert.pt`` live.
        config: a named config (``tiny``/``base``), a config object or a stored config dict.
        steps: total optimisation steps (default: the config's); resuming continues up to this.
        seed: fixes initialisation, data order and every random draw of the loss.
        resume: continue from ``run_dir/checkpoint.pt`` when present (its config must match).
        overrides: config fields to replace, e.g. ``{"batch_size": 2, "sync.steps": 100}``.
        sync_expert: a trained expert to use; by default one is trained into ``run_dir`` first
            (when ``sync_weight > 0``) and reused on resume.
    """
    from evalkit.nets.sync_expert import load_sync_expert

    from .data import ShardFrameDataset, make_loader
    from .sync_training import train_sync_expert

    cfg = recipe.get_config(config, overrides)
    steps = cfg.steps if steps is None else int(steps)
    keep_freed_memory()  # every step frees and re-allocates the same activations
    run_dir = Path(run_dir)
    rank, world, device = _dist_setup(cfg.device)
    if rank == 0:
        run_dir.mkdir(parents=True, exist_ok=True)
    ckpt_path = run_dir / CHECKPOINT

    torch.manual_seed(seed)
    # channels-last weights: oneDNN's convolutions (CPU) and cuDNN's (tensor cores) run faster on NHWC,
    # and the activations follow the weights' layout (tiny's UNet forward + backward: 0.94 -> 0.79 s on 2 cores)
    model = recipe.build(cfg).to(device, memory_format=torch.channels_last)
    ema = copy.deepcopy(model).eval()
    for p in ema.parameters():
        p.requires_grad_(False)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    start = 0
    if resume and ckpt_path.exists():
        ckpt = load_checkpoint(ckpt_path, recipe.kind)
        stored = recipe.get_config(ckpt["config"], None)
        if stored.to_dict() != cfg.to_dict():
            raise ValueError(f"{ckpt_path}: stored config differs from the requested one; "
                             "use another run dir or resume=False")
        load_state(model, ckpt["model"])
        load_state(ema, ckpt["ema"])
        opt.load_state_dict(ckpt["optimizer"])
        torch.set_rng_state(ckpt["rng"]["torch"])
        start = int(ckpt["step"])
        seed = int(ckpt.get("seed", seed))
        log.info("resuming %s at step %d", ckpt_path, start)
    elif rank == 0 and (run_dir / LOSS_LOG).exists():
        (run_dir / LOSS_LOG).unlink()

    expert, sync_temperature = None, None
    if cfg.sync_weight > 0:
        expert_path = Path(sync_expert) if sync_expert else run_dir / SYNC_EXPERT
        if not expert_path.exists():
            if world > 1:
                raise ValueError("train the sync expert first (refmodel.sync_training.train_sync_expert) "
                                 "when running distributed")
            train_sync_expert(prep_out, expert_path, cfg, seed=seed, device=str(device), progress=progress)
        scorer = load_sync_expert(expert_path, device=str(device))
        expert = scorer.expert
        sync_temperature = float(scorer.training.get("temperature", cfg.sync.temperature))

    loss_fn = recipe.make_loss(cfg, device)
    net = model
    if world > 1:
        from torch.nn.parallel import DistributedDataParallel

        net = DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)

    if start >= steps:
        return ckpt_path
    ds = ShardFrameDataset(prep_out, split=cfg.train_split, image_size=cfg.model.image_size, seed=seed,
                           shuffle_buffer=cfg.shuffle_buffer,
                           min_ref_gap=cfg.min_ref_gap, window=cfg.window, frames="train",
                           holdout_fraction=cfg.holdout_fraction,
                           num_offset_negatives=cfg.sync.num_offset_negatives if expert is not None else 0,
                           max_offset=cfg.sync.max_offset, min_negative_offset=cfg.sync.min_negative_offset,
                           batch_size=cfg.batch_size, infinite=True, start_batch=start)
    batches = iter(make_loader(ds, cfg.num_workers))
    log_path = run_dir / LOSS_LOG
    history = _read_log(log_path, start) if rank == 0 else []
    bar = None
    if progress and rank == 0:
        from tqdm import tqdm

        bar = tqdm(total=steps, initial=start, desc=f"train {cfg.name}", dynamic_ncols=True)
    t0 = time.time()
    model.train()
    for step in range(start, steps):
        data = prepare_batch(next(batches), device)
        terms = loss_fn(net, data, step_generator(seed, rank, step), expert, sync_temperature)
        opt.zero_grad(set_to_none=True)
        terms["total"].backward()
        if cfg.grad_clip:
            torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
        opt.step()
        _ema_update(ema, model, min(cfg.ema_decay, (1 + step) / (10 + step)))
        if rank == 0:
            history.append({"step": step + 1, **{k: float(v.detach()) for k, v in terms.items()}})
            if bar is not None:
                bar.update(1)
                bar.set_postfix(loss=f"{history[-1]['total']:.4f}")
            if (step + 1) % cfg.log_every == 0:
                recent = history[-cfg.log_every:]
                log.info("step %d %s", step + 1, " ".join(f"{k} {np.mean([h[k] for h in recent if k in h]):.4f}"
                                                          for k in recent[-1] if k != "step"))
            if (step + 1) % cfg.checkpoint_every == 0 or step + 1 == steps:
                _write_log(log_path, history)
                save_checkpoint(ckpt_path, cfg, step + 1, model, ema, opt, seed,
                                {"prep_out": str(prep_out), "elapsed_s": time.time() - t0,
                                 "sync_expert": SYNC_EXPERT if expert is not None and not sync_expert
                                 else (str(sync_expert) if sync_expert else None), **recipe.extra(cfg)},
                                kind=recipe.kind)
    if bar is not None:
        bar.close()
    if world > 1:
        import torch.distributed as dist

        dist.barrier()  # rank 0's last checkpoint is complete before any rank returns it
    return ckpt_path


def bind_checkpoint(gen, checkpoint, cfg, ckpt: dict) -> None:
    """Set what every crop generator (``refmodel.sample``) exposes of its checkpoint: crop size, reference gap,
    held-out fraction, training step, config dict, run directory and the sync expert trained beside it."""
    gen.image_size = cfg.model.image_size
    gen.min_ref_gap = cfg.min_ref_gap
    gen.holdout_fraction = cfg.holdout_fraction
    gen.step = int(ckpt["step"])
    gen.config = cfg.to_dict()
    path = Path(checkpoint)
    gen.run_dir = path if path.is_dir() else path.parent
    gen.sync_expert = gen.run_dir / (ckpt.get("sync_expert") or SYNC_EXPERT)


__all__ = ["bind_checkpoint",
           "Recipe", "run_training", "prepare_batch", "step_generator", "pick_device", "save_checkpoint",
           "load_checkpoint", "load_state", "read_loss_log", "CHECKPOINT", "LOSS_LOG", "SYNC_EXPERT"]
