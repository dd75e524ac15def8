"""The lip–audio sync expert: a lip encoder and an audio encoder trained with InfoNCE.

Pairs are (5-frame mouth window starting at frame f, the 16-step mel window ``mel_window(mel, f)``) —
the SyncNet/Wav2Lip pairing. For every mouth window the candidates are its own mel window, the mel
windows of the other samples in the batch (other clips and positions; near-duplicates of the same clip
are masked out) and ``num_offset_negatives`` windows of the *same* clip shifted by 2–15 frames, so the
expert must learn timing, not just identity. The loss is symmetric (mouth→audio and audio→mouth).

Used twice: as a frozen loss on the diffusion model's x0 estimate, and as evalkit's in-domain sync
score. ``load_sync_expert(path)`` returns a :class:`SyncScorer` with ``score`` (per window) and
``clip_sync`` (clip-level offset, confidence and score).

Input convention for scoring: mouth windows are **aligned face crops** (N, 5, S, S, 3) uint8 RGB in the
prep job's crop frame (any S); the expert resizes them to its own size and looks at the lower half.
"""
from __future__ import annotations

import logging
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from .config import SyncConfig, TrainConfig, get_config
from .unet import _groups

log = logging.getLogger(__name__)

KIND = "talkbench.refmodel.sync_expert"


class LipEncoder(nn.Module):
    """(N, T, 3, S/2, S) mouth window in [-1, 1] → (N, dim): the frames stacked as channels (SyncNet's
    early fusion), strided convs, global pooling."""

    def __init__(self, window: int, channels: int, dim: int, dropout: float = 0.1):
        super().__init__()
        c = channels

        def block(cin, cout, stride):
            return nn.Sequential(nn.Conv2d(cin, cout, 3, stride, 1), nn.GroupNorm(_groups(cout), cout), nn.SiLU())

        self.net = nn.Sequential(block(3 * window, c, 1), block(c, 2 * c, 2), block(2 * c, 4 * c, 2),
                                 block(4 * c, 4 * c, 2), block(4 * c, 8 * c, 2))
        self.out = nn.Sequential(nn.Dropout(dropout), nn.Linear(8 * c, dim))

    def forward(self, mouth: torch.Tensor) -> torch.Tensor:
        n, t, c, h, w = mouth.shape
        return self.out(self.net(mouth.reshape(n, t * c, h, w)).mean(dim=(2, 3)))


class MelEncoder(nn.Module):
    """(N, 80, 16) mel window → (N, dim): 1-D convs over time with the mel bins as channels."""

    def __init__(self, channels: int, dim: int, dropout: float = 0.1):
        super().__init__()
        c = 2 * channels
        self.net = nn.Sequential(nn.Conv1d(80, c, 3, padding=1), nn.SiLU(),
                                 nn.Conv1d(c, c, 3, stride=2, padding=1), nn.SiLU(),  # 8 steps
                                 nn.Conv1d(c, c, 3, stride=2, padding=1), nn.SiLU())  # 4 steps
        self.out = nn.Sequential(nn.Dropout(dropout), nn.Linear(4 * c, dim))

    def forward(self, mel: torch.Tensor) -> torch.Tensor:
        return self.out(self.net(mel).flatten(1))


class SyncExpert(nn.Module):
    def __init__(self, cfg: SyncConfig):
        super().__init__()
        self.cfg = cfg
        self.lip = LipEncoder(cfg.window, cfg.channels, cfg.dim)
        self.audio = MelEncoder(cfg.channels, cfg.dim)

    def embed_mouth(self, mouth: torch.Tensor) -> torch.Tensor:
        return F.normalize(self.lip(mouth), dim=-1)

    def embed_audio(self, mel: torch.Tensor) -> torch.Tensor:
        return F.normalize(self.audio(mel), dim=-1)

    def forward(self, mouth: torch.Tensor, mel: torch.Tensor) -> torch.Tensor:
        """Cosine similarity of each (mouth window, mel window) pair: (N,)."""
        return (self.embed_mouth(mouth) * self.embed_audio(mel)).sum(-1)


def prepare_mouth(x: torch.Tensor, size: int) -> torch.Tensor:
    """Model-range crops (N, T, 3, S, S) → lower halves at the expert's size (N, T, 3, size/2, size)."""
    n, t, c, h, w = x.shape
    if h != size:
        x = F.interpolate(x.reshape(n * t, c, h, w), size=(size, size), mode="bilinear",
                          align_corners=False, antialias=True).reshape(n, t, c, size, size)
    return x[..., size // 2:, :]


def infonce_loss(expert: SyncExpert, mouth, mel, neg_mel, clip_keys=None, frames=None,
                 min_gap: int = 2) -> tuple[torch.Tensor, torch.Tensor]:
    """Symmetric InfoNCE; returns (loss, mouth→audio top-1 accuracy over the candidates)."""
    v = expert.embed_mouth(mouth)
    a = expert.embed_audio(mel)
    n = v.shape[0]
    scale = 1.0 / expert.cfg.temperature
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


def sync_loss(expert: SyncExpert, mouth, mel, neg_mel) -> torch.Tensor:
    """Per-window loss for a generator: −log p(true audio | mouth) against its offset negatives."""
    v = expert.embed_mouth(mouth)
    a = expert.embed_audio(mel)
    scale = 1.0 / expert.cfg.temperature
    pos = (v * a).sum(-1, keepdim=True) * scale
    n, k = neg_mel.shape[:2]
    if k == 0:
        return 1.0 - pos.squeeze(1) / scale
    an = expert.embed_audio(neg_mel.reshape(n * k, *neg_mel.shape[2:])).reshape(n, k, -1)
    neg = torch.einsum("nd,nkd->nk", v, an) * scale
    return -F.log_softmax(torch.cat([pos, neg], 1), dim=1)[:, 0]


# ------------------------------------------------------------------ scoring

class SyncScorer:
    """A loaded, frozen sync expert with numpy-in / numpy-out scoring."""

    def __init__(self, expert: SyncExpert, metrics: dict | None = None, device: str = "cpu"):
        self.expert = expert.eval().to(device)
        self.cfg = expert.cfg
        self.metrics = metrics or {}
        self.device = device
        for p in self.expert.parameters():
            p.requires_grad_(False)

    def _mouth_tensor(self, mouth_windows) -> torch.Tensor:
        x = torch.as_tensor(np.ascontiguousarray(mouth_windows))
        if x.dtype == torch.uint8 and x.shape[-1] == 3:  # (N, T, S, S, 3) crops
            x = x.permute(0, 1, 4, 2, 3).float().div(127.5).sub(1.0)
        else:
            raise ValueError("mouth_windows must be (N, 5, S, S, 3) uint8 aligned crops")
        if x.shape[1] != self.cfg.window:
            raise ValueError(f"expected windows of {self.cfg.window} frames, got {x.shape[1]}")
        return prepare_mouth(x.to(self.device), self.cfg.image_size)

    @torch.no_grad()
    def embed_mouth(self, mouth_windows, batch: int = 64) -> np.ndarray:
        out = [self.expert.embed_mouth(self._mouth_tensor(mouth_windows[i:i + batch]))
               for i in range(0, len(mouth_windows), batch)]
        return torch.cat(out).cpu().numpy() if out else np.zeros((0, self.cfg.dim), np.float32)

    @torch.no_grad()
    def embed_audio(self, mel_windows, batch: int = 1024) -> np.ndarray:
        m = torch.as_tensor(np.asarray(mel_windows, np.float32))
        out = [self.expert.embed_audio(m[i:i + batch].to(self.device)) for i in range(0, len(m), batch)]
        return torch.cat(out).cpu().numpy() if out else np.zeros((0, self.cfg.dim), np.float32)

    def score(self, mouth_windows, mel_windows) -> np.ndarray:
        """Cosine similarity (−1..1, higher = in sync) of each (mouth window, mel window) pair.

        ``mouth_windows``: (N, 5, S, S, 3) uint8 aligned crops; ``mel_windows``: (N, 80, 16) Wav2Lip mel.
        """
        if len(mouth_windows) != len(mel_windows):
            raise ValueError("one mel window per mouth window")
        return (self.embed_mouth(mouth_windows) * self.embed_audio(mel_windows)).sum(-1)

    def clip_sync(self, crops, mel, max_offset: int | None = None, valid=None) -> dict:
        """Clip-level sync of aligned crops (T, S, S, 3) uint8 against the clip's mel (80, T_mel).

        For every offset d in [−max_offset, max_offset] the mean similarity of window f with the audio
        of frame f + d. Returns ``offset`` (argmax d: the mouth at f matches the audio at f + d),
        ``confidence`` (max − median over offsets, SyncNet's), ``score`` (mean similarity at d = 0),
        ``best_score``, ``per_offset`` and ``num_windows``. ``valid`` (T,) bool marks usable frames.
        """
        from prep.audio import mel_window

        crops = _resize_crops(np.asarray(crops), self.cfg.image_size)  # bounded memory for big crops
        T, W = len(crops), self.cfg.window
        D = self.cfg.max_offset if max_offset is None else max_offset
        ok = np.ones(T, bool) if valid is None else np.asarray(valid, bool)
        starts = [f for f in range(T - W + 1) if ok[f:f + W].all()]
        if not starts:
            return {"offset": 0, "confidence": float("nan"), "score": float("nan"), "best_score": float("nan"),
                    "per_offset": {}, "num_windows": 0}
        v = self.embed_mouth(np.stack([crops[f:f + W] for f in starts]))
        audio_frames = [g for g in range(T) if mel_window(mel, g) is not None]
        a = self.embed_audio(np.stack([mel_window(mel, g) for g in audio_frames]))
        row = {g: i for i, g in enumerate(audio_frames)}
        per = {}
        for d in range(-D, D + 1):
            pairs = [(i, row[f + d]) for i, f in enumerate(starts) if (f + d) in row]
            if pairs:
                i, j = map(list, zip(*pairs))
                per[d] = float((v[i] * a[j]).sum(-1).mean())
        sims = np.array(list(per.values()))
        best = max(per, key=per.get)
        return {"offset": int(best), "confidence": float(sims.max() - np.median(sims)),
                "score": per.get(0, float("nan")), "best_score": per[best], "per_offset": per,
                "num_windows": len(starts)}


def _resize_crops(crops: np.ndarray, size: int) -> np.ndarray:
    import cv2

    if crops.ndim != 4 or crops.shape[1] == size:
        return crops
    interp = cv2.INTER_AREA if crops.shape[1] > size else cv2.INTER_LINEAR
    return np.stack([cv2.resize(np.ascontiguousarray(c), (size, size), interpolation=interp) for c in crops])


def save_sync_expert(expert: SyncExpert, path, metrics: dict | None = None) -> Path:
    from prep.shards import atomic_write_bytes
    import io

    buf = io.BytesIO()
    torch.save({"kind": KIND, "config": asdict(expert.cfg), "state": expert.state_dict(),
                "metrics": metrics or {}}, buf)
    atomic_write_bytes(path, buf.getvalue())
    return Path(path)


def load_sync_expert(path, device: str = "cpu") -> SyncScorer:
    """Load a trained expert (a ``sync_expert.pt`` file or a run directory holding one)."""
    path = Path(path)
    if path.is_dir():
        path = path / "sync_expert.pt"
    ckpt = torch.load(path, map_location="cpu", weights_only=True)
    if ckpt.get("kind") != KIND:
        raise ValueError(f"{path}: not a talkbench sync expert checkpoint")
    cfg = SyncConfig(**{k: tuple(v) if isinstance(v, list) else v for k, v in ckpt["config"].items()})
    expert = SyncExpert(cfg)
    expert.load_state_dict(ckpt["state"])
    return SyncScorer(expert, ckpt.get("metrics"), device)


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

    from .data import frame_range, load_crop, read_clip_meta

    from prep.shards import read_clip_frames

    D = scorer.cfg.max_offset if max_offset is None else max_offset
    size = image_size or scorer.cfg.image_size
    hits = near = total = clip_hits = clips = 0
    for clip_id, meta in read_clip_meta(prep_out).items():
        lo, hi = frame_range(meta.num_frames, frames, holdout_fraction)
        t = read_clip_frames(prep_out, clip_id, ["frame_index", "crop", "face_found"])
        rows = {r["frame_index"]: r for r in t.to_pylist() if r["face_found"] and r["crop"] is not None}
        starts = [f for f in range(lo, hi - scorer.cfg.window + 1)
                  if all(g in rows for g in range(f, f + scorer.cfg.window))
                  and mel_window(meta.mel, f) is not None]
        if not starts:
            continue
        crops = {g: load_crop(rows[g]["crop"], size, meta.crop_size) for f in starts for g in range(f, f + scorer.cfg.window)}
        v = scorer.embed_mouth(np.stack([np.stack([crops[g] for g in range(f, f + scorer.cfg.window)])
                                         for f in starts]))
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


def train_sync_expert(prep_out, out_path, config: "str | TrainConfig | SyncConfig" = "tiny", steps: int | None = None,
                      seed: int = 0, holdout_fraction: float | None = None, device: str = "cpu",
                      progress: bool = False, num_workers: int = 0) -> Path:
    """Train the expert on the ``train`` frames of ``prep_out``; save it (with held-out metrics).

    ``config`` is a named training config (its ``sync`` part is used), a TrainConfig or a SyncConfig.
    Returns the checkpoint path; ``load_sync_expert(path).metrics`` holds the held-out
    offset-detection accuracy measured at the end.
    """
    from .data import ShardFrameDataset, make_loader

    if isinstance(config, SyncConfig):
        cfg, hold = config, 0.2 if holdout_fraction is None else holdout_fraction
    else:
        tc = get_config(config)
        cfg, hold = tc.sync, tc.holdout_fraction if holdout_fraction is None else holdout_fraction
    steps = cfg.steps if steps is None else steps
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed + 1)
    expert = SyncExpert(cfg).to(device)
    opt = torch.optim.AdamW(expert.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=cfg.lr, total_steps=max(1, steps), pct_start=0.1)
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
                                 batch["frame_index"].to(device), cfg.min_negative_offset)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        hist.append((loss.item(), acc.item()))
        if bar is not None:
            bar.update(1)
            bar.set_postfix(loss=f"{float(loss):.3f}", acc=f"{float(acc):.2f}")
        if (step + 1) % 50 == 0:
            log.info("sync expert step %d loss %.4f acc %.3f", step + 1, np.mean([h[0] for h in hist[-50:]]),
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
    return save_sync_expert(expert.cpu(), out_path, metrics)


def _progress(total: int, desc: str, enabled: bool):
    if not enabled:
        return None
    from tqdm import tqdm

    return tqdm(total=total, desc=desc, dynamic_ncols=True)


__all__ = ["SyncExpert", "SyncScorer", "LipEncoder", "infonce_loss", "sync_loss", "prepare_mouth",
           "train_sync_expert", "load_sync_expert", "save_sync_expert", "offset_accuracy"]
