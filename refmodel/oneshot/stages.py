"""One resumable training loop for every part of the one-shot model.

A stage is a network, a step count, a learning rate and a loss function of (step, numpy generator, torch
generator). Both generators are seeded by (seed, stage, step) only, so the batches and the noise of step
``k`` do not depend on how the run got there: a stage interrupted and resumed from its file reproduces
the uninterrupted run. The stage file ``RUN/stage_<name>.pt`` holds the network, its EMA, the optimizer,
the step, the torch RNG state and the stage's config; ``RUN/loss_<name>.jsonl`` the per-step losses.
The learning rate follows a linear warm-up (5 % of the steps) and a cosine decay to 10 %, computed from
(step, steps) at every step.
"""
from __future__ import annotations

import copy
import io
import json
import logging
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from talkbase.fileio import atomic_write_bytes

log = logging.getLogger(__name__)

STAGE_KIND = "talkbench.refmodel.oneshot3dmm.stage"
STAGE_IDS = {"ae": 1, "lipsync": 2, "motion": 3, "render": 4}


def step_seeds(seed: int, stage: str, step: int) -> tuple[np.random.Generator, torch.Generator]:
    """(numpy generator, torch generator) of one step: functions of (seed, stage, step) only."""
    ss = np.random.SeedSequence([int(seed), STAGE_IDS[stage], int(step)])
    mixed = int(ss.generate_state(1, dtype=np.uint64)[0]) & ((1 << 63) - 1)
    return np.random.default_rng(ss), torch.Generator().manual_seed(mixed)


def lr_at(step: int, steps: int, base: float) -> float:
    warm = max(1, int(0.05 * steps))
    if step < warm:
        return base * (step + 1) / warm
    u = (step - warm) / max(1, steps - warm)
    return base * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * min(1.0, u))))


@dataclass
class Stage:
    name: str
    model: torch.nn.Module
    steps: int
    lr: float
    loss: Callable  # (step, np_rng, torch_gen) -> dict of scalar tensors with "total"
    key: dict  # what must match for a stage file to be resumed (its config without step counts)
    grad_clip: float = 1.0
    ema_decay: float | None = None
    checkpoint_every: int = 500
    weight_decay: float = 0.0
    extra: dict | None = None  # stored beside the weights (e.g. normalisation statistics)


def stage_path(run_dir, name: str) -> Path:
    return Path(run_dir) / f"stage_{name}.pt"


def load_stage_file(path) -> dict:
    ckpt = torch.load(Path(path), map_location="cpu", weights_only=True)
    if not isinstance(ckpt, dict) or ckpt.get("kind") != STAGE_KIND:
        raise ValueError(f"{path}: not a oneshot3dmm stage file")
    return ckpt


def _save(path, stage: Stage, step: int, model, ema, opt, seed: int, done: bool) -> None:
    state = {"kind": STAGE_KIND, "stage": stage.name, "key": stage.key, "seed": int(seed), "step": int(step),
             "steps": int(stage.steps), "done": bool(done), "model": model.state_dict(),
             "ema": (ema or model).state_dict(), "optimizer": opt.state_dict(),
             "rng": torch.get_rng_state(), "extra": stage.extra or {}}
    buf = io.BytesIO()
    torch.save(state, buf)
    atomic_write_bytes(path, buf.getvalue())


def run_stage(stage: Stage, run_dir, seed: int, resume: bool = True, progress: bool = True) -> dict:
    """Train ``stage.model`` in place up to ``stage.steps`` (resuming its stage file when it matches).

    Returns ``{"model", "ema", "history", "resumed_from", "seconds"}``; ``ema`` is the model itself when the
    stage keeps no EMA. A stage file whose key differs is refused (another run dir, or ``resume=False``).
    """
    run_dir = Path(run_dir)
    path, log_path = stage_path(run_dir, stage.name), run_dir / f"loss_{stage.name}.jsonl"
    model = stage.model
    ema = None
    if stage.ema_decay is not None:
        ema = copy.deepcopy(model).eval()
        for p in ema.parameters():
            p.requires_grad_(False)
    opt = torch.optim.AdamW(model.parameters(), lr=stage.lr, weight_decay=stage.weight_decay)
    start, history = 0, []
    if resume and path.exists():
        ckpt = load_stage_file(path)
        if ckpt["key"] != stage.key:
            raise ValueError(f"{path}: stored config of stage {stage.name!r} differs from the requested one; "
                             "use another run dir or resume=False")
        model.load_state_dict(ckpt["model"])
        if ema is not None:
            ema.load_state_dict(ckpt["ema"])
        opt.load_state_dict(ckpt["optimizer"])
        torch.set_rng_state(ckpt["rng"])
        start, seed = int(ckpt["step"]), int(ckpt["seed"])
        if log_path.exists():
            history = [json.loads(x) for x in log_path.read_text().splitlines() if x.strip()]
            history = [h for h in history if h["step"] <= start]
        log.info("stage %s: resuming at step %d of %d", stage.name, start, stage.steps)
    elif log_path.exists():
        log_path.unlink()
    bar = None
    if progress and start < stage.steps:
        from tqdm import tqdm

        bar = tqdm(total=stage.steps, initial=start, desc=f"oneshot {stage.name}", dynamic_ncols=True)
    t0 = time.time()
    model.train()
    for step in range(start, stage.steps):
        for group in opt.param_groups:
            group["lr"] = lr_at(step, stage.steps, stage.lr)
        rng, gen = step_seeds(seed, stage.name, step)
        terms = stage.loss(step, rng, gen)
        opt.zero_grad(set_to_none=True)
        terms["total"].backward()
        if stage.grad_clip:
            torch.nn.utils.clip_grad_norm_(model.parameters(), stage.grad_clip)
        opt.step()
        if ema is not None:
            decay = min(stage.ema_decay, (1 + step) / (10 + step))
            with torch.no_grad():
                for e, p in zip(ema.parameters(), model.parameters()):
                    e.lerp_(p.detach(), 1.0 - decay)
                for e, b in zip(ema.buffers(), model.buffers()):
                    e.copy_(b)
        history.append({"step": step + 1, **{k: round(float(v.detach()), 6) for k, v in terms.items()}})
        if bar is not None:
            bar.update(1)
            bar.set_postfix(loss=f"{history[-1]['total']:.4f}")
        if (step + 1) % stage.checkpoint_every == 0 or step + 1 == stage.steps:
            atomic_write_bytes(log_path, "".join(json.dumps(h) + "\n" for h in history).encode())
            _save(path, stage, step + 1, model, ema, opt, seed, done=step + 1 == stage.steps)
    if bar is not None:
        bar.close()
    if start >= stage.steps and not path.exists():
        _save(path, stage, start, model, ema, opt, seed, done=True)
    model.eval()
    if history:
        log.info("stage %s: loss %.4f -> %.4f over %d steps", stage.name, history[0]["total"],
                 history[-1]["total"], len(history))
    return {"model": model, "ema": ema if ema is not None else model, "history": history,
            "resumed_from": start, "seconds": time.time() - t0}


def read_stage_log(run_dir, name: str) -> list[dict]:
    p = Path(run_dir) / f"loss_{name}.jsonl"
    return [json.loads(x) for x in p.read_text().splitlines() if x.strip()] if p.exists() else []


__all__ = ["Stage", "run_stage", "step_seeds", "lr_at", "stage_path", "load_stage_file", "read_stage_log",
           "STAGE_KIND"]
