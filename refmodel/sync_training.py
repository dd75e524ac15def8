"""Training of the lip–audio sync expert (its network, scorer and checkpoint: :mod:`evalkit.nets.sync_expert`).

Pairs are (5-frame mouth window starting at frame f, the 16-step mel window ``mel_window(mel, f)``) —
the SyncNet/Wav2Lip pairing. For every mouth window the candidates are its own mel window, the mel
windows of the other samples in the batch (other clips and positions; near-duplicates of the same clip
are masked out) and ``num_offset_negatives`` windows of the *same* clip shifted by 2–15 frames, so the
expert must learn timing, not just identity. The loss is symmetric (mouth→audio and audio→mouth).

The trained expert is used twice: as a frozen loss on the diffusion model's x0 estimate
(:func:`sync_loss`, in ``refmodel.train``), and as evalkit's in-domain sync score
(``evalkit.nets.sync_expert.load_sync_expert``).
"""
from __future__ import annotations

import logging
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from evalkit.nets.sync_expert import SyncExpert, SyncScorer, prepare_mouth, save_sync_expert
from talkbase.threads import keep_freed_memory

from .config import SyncConfig, TrainConfig, get_config

log = logging.getLogger(__name__)

TEMPERATURE = SyncConfig.temperature  # the default InfoNCE temperature


def infonce_loss(expert: SyncExpert, mouth, mel, neg_mel, clip_keys=None, frames=None,
                 min_gap: int = 2, temperature: float = TEMPERATURE) -> tuple[torch.Tensor, torch.Tensor]:
    """Symmetric InfoNCE; returns (loss, mouth→audio top-1 accuracy over the candidates)."""
    v = expert.embed_mouth(mouth)
    a = expert.embed_audio(mel)
    n = v.shape[0]
    scale = 1.0 / temperature
    batch_logits = v @ a.t() * scale  # (N, N)
    if clip_keys is not None and frames is not None:  # same clip, nearly same time: not a negative
        same = clip_keys[:, None] == clip_keys[None, :]
        close = (frames[:, None] - frames[None, :]).abs() < min_gap
        off_diag = ~torch.eye(n, dtype=torch.bool, device=v.device)
        batch_logits = batch_logits.masked_fill(same & close & off_diag, float("-inf"))
    parts = [batch_logits]
    if neg_mel is not None and neg_mel.shape[1]:
        k = neg_mel.shape[1]
        an = expert.embed_audio(neg_mel.reshape(n * k, *neg_mel.shape[2:])).reshape(n, k, -1)
        parts.append(torch.einsum("nd,nkd->nk", v, an) * scale)
    logits = torch.cat(parts, dim=1)
    target = torch.arange(n, device=v.device)
    loss = 0.5 * (F.cross_entropy(logits, target) + F.cross_entropy(batch_logits.t(), target))
    acc = (logits.argmax(1) == target).float().mean()
    return loss, acc


def sync_loss(expert: SyncExpert, mouth, mel, neg_mel, temperature: float = TEMPERATURE) -> torch.Tensor:
    """Per-window loss for a generator: −log p(true audio | mouth) against its offset negatives, at the
    temperature the expert was trained with (``SyncScorer.training["temperature"]``)."""
    v = expert.embed_mouth(mouth)
    a = expert.embed_audio(mel)
    scale = 1.0 / temperature
    pos = (v * a).sum(-1, keepdim=True) * scale
    n, k = neg_mel.shape[:2]
    if k == 0:
        return 1.0 - pos.squeeze(1) / scale
    an = expert.embed_audio(neg_mel.reshape(n * k, *neg_mel.shape[2:])).reshape(n, k, -1)
    neg = torch.einsum("nd,nkd->nk", v, an) * scale
    return -F.log_softmax(torch.cat([pos, neg], 1), dim=1)[:, 0]


# ------------------------------------------------------------------ training

def _batch_tensors(batch: dict, cfg: SyncConfig, device, gen: torch.Generator | None = None):
    """Mouth windows and audio of a batch; with ``gen``, augmented (the same draw for a whole window,
    and the same audio gain for its positive and offset negatives, so no shortcut appears)."""
    x = batch["target"].float().div(127.5).sub(1.0)  # (B, T, 3, S, S)
    mel, neg = batch["mel"][:, 0], batch["neg_mel"]
    if gen is not None:
        b, s = x.shape[0], x.shape[-1]
        flip = torch.rand(b, generator=gen) < 0.5  # a mirrored mouth still matches its audio
        x = torch.where(flip.view(-1, 1, 1, 1, 1), x.flip(-1), x)
        shift = torch.randint(-max(1, s // 32), max(1, s // 32) + 1, (b, 2), generator=gen)
        x = torch.stack([xi.roll((int(dy), int(dx)), dims=(-2, -1)) for xi, (dy, dx) in zip(x, shift)])
        contrast = 1 + 0.2 * (torch.rand(b, 1, 1, 1, 1, generator=gen) * 2 - 1)
        bright = 0.1 * (torch.rand(b, 1, 1, 1, 1, generator=gen) * 2 - 1)
        x = (x * contrast + bright).clamp(-1, 1)
        gain = 0.4 * (torch.rand(b, 1, 1, generator=gen) * 2 - 1)  # about ±5 dB
        mel, neg = mel + gain, neg + gain.unsqueeze(1)
    return prepare_mouth(x.to(device), cfg.image_size), mel.to(device), neg.to(device)


def _clip_keys(clip_ids: list[str]) -> torch.Tensor:
    names = {c: i for i, c in enumerate(dict.fromkeys(clip_ids))}
    return torch.tensor([names[c] for c in clip_ids])


def offset_accuracy(scorer: SyncScorer, prep_out, frames: str = "holdout", holdout_fraction: float = 0.2,
                    max_offset: int | None = None, image_size: int | None = None) -> dict:
    """Offset detection on real clips: for each 5-frame window, is the best-matching audio offset 0?

    Returns per-window accuracy (exact and within ±1 frame), clip-level accuracy (offset of the mean
    similarity curve) and the number of windows, over the ``frames`` subset of every clip.
    """
    from prep.audio import mel_window

    from .data import frame_range, load_crop, open_prep, read_clip_meta

    prep = open_prep(prep_out)
    W = scorer.arch.window
    D = scorer.arch.max_offset if max_offset is None else max_offset
    size = image_size or scorer.arch.image_size
    hits = near = total = clip_hits = clips = 0
    for clip_id, meta in read_clip_meta(prep).items():
        lo, hi = frame_range(meta.num_frames, frames, holdout_fraction)
        t = prep.clip_frames(clip_id, ["frame_index", "crop", "face_found"])
        rows = {r["frame_index"]: r for r in t.to_pylist() if r["face_found"] and r["crop"] is not None}
        starts = [f for f in range(lo, hi - W + 1)
                  if all(g in rows for g in range(f, f + W)) and mel_window(meta.mel, f) is not None]
        if not starts:
            continue
        crops = {g: load_crop(rows[g]["crop"], size, meta.crop_size) for f in starts for g in range(f, f + W)}
        v = scorer.embed_mouth(np.stack([np.stack([crops[g] for g in range(f, f + W)]) for f in starts]))
        curve = {}
        for i, f in enumerate(starts):
            ds = [d for d in range(-D, D + 1) if 0 <= f + d < meta.num_frames and mel_window(meta.mel, f + d) is not None]
            a = scorer.embed_audio(np.stack([mel_window(meta.mel, f + d) for d in ds]))
            sims = a @ v[i]
            best = ds[int(np.argmax(sims))]
            hits += best == 0
            near += abs(best) <= 1
            total += 1
            for d, s in zip(ds, sims):
                curve.setdefault(d, []).append(float(s))
        mean_curve = {d: np.mean(s) for d, s in curve.items() if len(s) >= max(1, len(starts) // 2)}
        clips += 1
        clip_hits += max(mean_curve, key=mean_curve.get) == 0
    return {"window_accuracy": hits / max(1, total), "window_accuracy_pm1": near / max(1, total),
            "clip_accuracy": clip_hits / max(1, clips), "num_windows": total, "num_clips": clips,
            "max_offset": D, "chance": 1.0 / (2 * D + 1), "frames": frames}


def one_cycle(opt, max_lr: float, steps: int):
    """OneCycleLR with 10 % warm-up, or longer where 10 % would be under 1.5 steps: OneCycleLR divides by the
    length of each phase, which is 0 for e.g. 10 steps at 10 % (ZeroDivisionError). Under 4 steps: constant."""
    if steps < 4:
        return torch.optim.lr_scheduler.LambdaLR(opt, lambda _: 1.0)
    return torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=max_lr, total_steps=steps, pct_start=max(0.1, 2.5 / steps))


def train_sync_expert(prep_out, out_path, config: "str | TrainConfig | SyncConfig" = "tiny", steps: int | None = None,
                      seed: int = 0, holdout_fraction: float | None = None, device: str = "cpu",
                      progress: bool = False, num_workers: int = 0) -> Path:
    """Train the expert on the ``train`` frames of ``prep_out``; save it (with held-out metrics).

    ``config`` is a named training config (its ``sync`` part is used), a TrainConfig or a SyncConfig.
    Returns the checkpoint path (``evalkit.nets.sync_expert`` format); ``load_sync_expert(path).metrics``
    holds the held-out offset-detection accuracy measured at the end, ``.training`` the settings.
    """
    from .data import ShardFrameDataset, make_loader

    if isinstance(config, SyncConfig):
        cfg, hold = config, 0.2 if holdout_fraction is None else holdout_fraction
    else:  # a named Diff2Lip config, or any model config with ``sync`` and ``holdout_fraction`` fields
        tc = config if hasattr(config, "sync") else get_config(config)
        cfg, hold = tc.sync, tc.holdout_fraction if holdout_fraction is None else holdout_fraction
    steps = cfg.steps if steps is None else steps
    keep_freed_memory()  # every step frees and re-allocates the same activations
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed + 1)
    expert = SyncExpert(cfg.arch()).to(device)
    opt = torch.optim.AdamW(expert.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    sched = one_cycle(opt, cfg.lr, steps)
    ds = ShardFrameDataset(prep_out, image_size=cfg.image_size, seed=seed, window=cfg.window, frames="train",
                           holdout_fraction=hold, num_offset_negatives=cfg.num_offset_negatives,
                           max_offset=cfg.max_offset, min_negative_offset=cfg.min_negative_offset,
                           batch_size=cfg.batch_size, infinite=True, min_ref_gap=0, shuffle_buffer=2048)
    it = iter(make_loader(ds, num_workers))
    bar = _progress(steps, "sync expert", progress)
    t0, hist = time.time(), []
    expert.train()
    for step in range(steps):
        batch = next(it)
        mouth, mel, neg = _batch_tensors(batch, cfg, device, gen)
        loss, acc = infonce_loss(expert, mouth, mel, neg, _clip_keys(batch["clip_id"]).to(device),
                                 batch["frame_index"].to(device), cfg.min_negative_offset, cfg.temperature)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        hist.append((loss.item(), acc.item()))
        if bar is not None:
            bar.update(1)
            bar.set_postfix(loss=f"{hist[-1][0]:.3f}", batch_top1=f"{hist[-1][1]:.2f}")  # this step's batch
        if (step + 1) % 50 == 0:
            log.info("sync expert step %d: mean of the last 50 steps: loss %.4f, in-batch top-1 accuracy %.3f",
                     step + 1, np.mean([h[0] for h in hist[-50:]]),
                     np.mean([h[1] for h in hist[-50:]]))
    if bar is not None:
        bar.close()
    scorer = SyncScorer(expert, device=device)
    metrics = {"steps": steps, "seed": seed, "train_seconds": round(time.time() - t0, 1),
               "final_loss": float(np.mean([h[0] for h in hist[-20:]])) if hist else None,
               "holdout_fraction": hold,
               "holdout": offset_accuracy(scorer, prep_out, "holdout", hold) if hold > 0 else None,
               "train": offset_accuracy(scorer, prep_out, "train", hold)}
    log.info("sync expert held-out offset accuracy: %s", metrics["holdout"])
    return save_sync_expert(expert.cpu(), out_path, metrics, training=cfg.training_dict())


def _progress(total: int, desc: str, enabled: bool):
    if not enabled:
        return None
    from tqdm import tqdm

    return tqdm(total=total, desc=desc, dynamic_ncols=True)


__all__ = ["infonce_loss", "sync_loss", "train_sync_expert", "offset_accuracy", "TEMPERATURE"]
