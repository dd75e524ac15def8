"""Training loop of the reference diffusion model: losses, EMA, checkpoints with exact resume, DDP.

Exactness of resume: the data stream is a pure function of (seed, batches consumed) — the dataset skips
the batches already seen — the diffusion noise and timesteps of step ``k`` come from a generator seeded
with (seed, rank, k), and the checkpoint holds model, EMA, optimizer, step and the global torch RNG
state (dropout). A resumed run therefore reproduces the uninterrupted loss curve (bitwise on the same
machine and thread count).

Distributed: launched by ``torchrun --nproc_per_node=N -m talkbench.cli train ...`` the loop initialises
the process group from the environment (NCCL on GPUs, Gloo otherwise), wraps the UNet in DDP, gives each
rank disjoint shards, and only rank 0 writes checkpoints and logs.
"""
from __future__ import annotations

import copy
import io
import json
import logging
import os
import time
from pathlib import Path

import numpy as np
import torch

from talkbase.fileio import atomic_write_bytes

from .config import TrainConfig, get_config
from .diffusion import MaskedDiffusion, mouth_mask, to_model_range
from .unet import UNet

log = logging.getLogger(__name__)

KIND = "talkbench.refmodel.diffusion"
CHECKPOINT = "checkpoint.pt"
LOSS_LOG = "loss.jsonl"
SYNC_EXPERT = "sync_expert.pt"


def pick_device(name: str = "auto") -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def step_generator(seed: int, rank: int, step: int) -> torch.Generator:
    """The generator of one step's timesteps and noise: depends only on (seed, rank, step)."""
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


# ------------------------------------------------------------------ checkpoints

def save_checkpoint(path, cfg: TrainConfig, step: int, model, ema, opt, seed: int, extra: dict | None = None) -> Path:
    state = {"kind": KIND, "config": cfg.to_dict(), "step": int(step), "seed": int(seed),
             "model": model.state_dict(), "ema": ema.state_dict(), "optimizer": opt.state_dict(),
             "rng": {"torch": torch.get_rng_state()}, **(extra or {})}
    buf = io.BytesIO()
    torch.save(state, buf)
    atomic_write_bytes(path, buf.getvalue())
    return Path(path)


def load_checkpoint(path) -> dict:
    """A checkpoint dict (safe load: tensors and plain data only)."""
    ckpt = torch.load(Path(path), map_location="cpu", weights_only=True)
    if not isinstance(ckpt, dict) or ckpt.get("kind") != KIND:
        raise ValueError(f"{path}: not a talkbench refmodel checkpoint")
    return ckpt


def load_model(checkpoint, device="cpu", use_ema: bool = True) -> tuple[UNet, TrainConfig, dict]:
    """(model in eval mode, its config, the checkpoint dict) from a checkpoint file or run dir."""
    path = Path(checkpoint)
    if path.is_dir():
        path = path / CHECKPOINT
    ckpt = load_checkpoint(path)
    cfg = get_config(ckpt["config"])
    model = UNet(cfg.model)
    state = dict(ckpt["ema" if use_ema else "model"])
    state.setdefault("null_audio", torch.zeros_like(model.null_audio))  # checkpoints from before it
    model.load_state_dict(state)
    return model.eval().to(device), cfg, ckpt


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
    """Per-step loss terms logged by ``train`` (``step``, ``total``, ``mse``, ``l1``, ``sync``)."""
    return _read_log(Path(run_dir) / LOSS_LOG, 1 << 62)


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


def train(prep_out, run_dir, config="tiny", steps: int | None = None, seed: int = 0, resume: bool = True,
          overrides: dict | None = None, sync_expert=None, progress: bool = True) -> Path:
    """Train (or resume training) the reference model on a prep output; returns the checkpoint path.

    Args:
        prep_out: prep output directory.
        run_dir: where ``checkpoint.pt``, ``loss.jsonl`` and ``sync_expert.pt`` live.
        config: ``tiny``/``base``, a TrainConfig or a stored config dict.
        steps: total optimisation steps (default: the config's); resuming continues up to this.
        seed: fixes initialisation, data order and diffusion noise.
        resume: continue from ``run_dir/checkpoint.pt`` when present (its config must match).
        overrides: config fields to replace, e.g. ``{"batch_size": 2, "sync.steps": 100}``.
        sync_expert: a trained expert to use; by default one is trained into ``run_dir`` first
            (when ``sync_weight > 0``) and reused on resume.
    """
    from evalkit.nets.sync_expert import load_sync_expert

    from .data import ShardFrameDataset, make_loader
    from .sync_training import train_sync_expert

    cfg = get_config(config, overrides)
    steps = cfg.steps if steps is None else int(steps)
    run_dir = Path(run_dir)
    rank, world, device = _dist_setup(cfg.device)
    if rank == 0:
        run_dir.mkdir(parents=True, exist_ok=True)
    ckpt_path = run_dir / CHECKPOINT

    torch.manual_seed(seed)
    model = UNet(cfg.model).to(device)
    ema = copy.deepcopy(model).eval()
    for p in ema.parameters():
        p.requires_grad_(False)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    start = 0
    if resume and ckpt_path.exists():
        ckpt = load_checkpoint(ckpt_path)
        stored = get_config(ckpt["config"])
        if stored.to_dict() != cfg.to_dict():
            raise ValueError(f"{ckpt_path}: stored config differs from the requested one; "
                             "use another run dir or resume=False")
        for key, net_ in (("model", model), ("ema", ema)):
            state = dict(ckpt[key])
            state.setdefault("null_audio", torch.zeros_like(net_.null_audio))  # runs from before it
            net_.load_state_dict(state)
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

    diffusion = MaskedDiffusion(cfg.diffusion)
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
        terms = loss_terms(net, diffusion, cfg, data, step_generator(seed, rank, step), expert, sync_temperature)
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
                log.info("step %d loss %.4f (mse %.4f l1 %.4f%s)", step + 1,
                         np.mean([h["total"] for h in recent]), np.mean([h["mse"] for h in recent]),
                         np.mean([h["l1"] for h in recent]),
                         f" sync {np.mean([h['sync'] for h in recent]):.4f}" if "sync" in recent[-1] else "")
            if (step + 1) % cfg.checkpoint_every == 0 or step + 1 == steps:
                _write_log(log_path, history)
                save_checkpoint(ckpt_path, cfg, step + 1, model, ema, opt, seed,
                                {"prep_out": str(prep_out), "elapsed_s": time.time() - t0,
                                 "sync_expert": SYNC_EXPERT if expert is not None and not sync_expert
                                 else (str(sync_expert) if sync_expert else None)})
    if bar is not None:
        bar.close()
    if world > 1:
        import torch.distributed as dist

        dist.barrier()  # rank 0's last checkpoint is complete before any rank returns it
    return ckpt_path


def _write_log(path: Path, history: list[dict]) -> None:
    atomic_write_bytes(path, "".join(json.dumps(h) + "\n" for h in history).encode())


__all__ = ["train", "load_model", "load_checkpoint", "save_checkpoint", "read_loss_log", "prepare_batch",
           "loss_terms", "step_generator", "pick_device", "CHECKPOINT", "SYNC_EXPERT"]
