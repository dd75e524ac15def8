"""Part 2, lip–audio contrastive sync: a deterministic audio → lip-code model.

:class:`AudioToLip` maps one 16-step Wav2Lip mel window (``prep.audio.mel_window(mel, f)``) to the lip
codes of the 5 frames ``f .. f+4`` it is paired with (the SyncNet / Wav2Lip pairing). It is trained with
the sync expert's InfoNCE design (:func:`refmodel.sync_training.infonce_loss`, reused as is): a shared
projection head embeds a 5-frame window of lip codes — the true one from the autoencoder, or the one
predicted from the audio — and the loss contrasts each predicted window with the true window of the same
time against the other windows of the batch (near-duplicates of the same clip masked) and against
``num_offset_negatives`` windows of the *same* clip shifted by 2–15 frames, in both directions. Because
both sides go through one head, the contrast pulls the predicted codes themselves towards the true ones
(timing included); an L1 term on the standardised codes fixes their scale, so the prediction lives in
the renderer's lip-code space. At inference a frame's code is the mean over the (up to 5) windows that
contain it.
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from .config import LipSyncConfig


class AudioToLip(nn.Module):
    """(N, 80, 16) mel window → (N, window, lip_dim) lip codes (de-standardised)."""

    def __init__(self, cfg: LipSyncConfig, lip_dim: int):
        super().__init__()
        c = cfg.channels
        self.window, self.lip_dim = cfg.window, lip_dim
        self.net = nn.Sequential(nn.Conv1d(80, c, 3, padding=1), nn.SiLU(),
                                 nn.Conv1d(c, c, 3, stride=2, padding=1), nn.SiLU(),  # 8 steps
                                 nn.Conv1d(c, c, 3, stride=2, padding=1), nn.SiLU())  # 4 steps
        self.out = nn.Sequential(nn.Flatten(), nn.Dropout(cfg.dropout), nn.Linear(4 * c, 2 * c), nn.SiLU(),
                                 nn.Linear(2 * c, cfg.window * lip_dim))
        self.register_buffer("code_mean", torch.zeros(lip_dim))
        self.register_buffer("code_std", torch.ones(lip_dim))

    def standardised(self, mel: torch.Tensor) -> torch.Tensor:
        return self.out(self.net(mel)).view(-1, self.window, self.lip_dim)

    def forward(self, mel: torch.Tensor) -> torch.Tensor:
        return self.standardised(mel) * self.code_std + self.code_mean


class LipSync(nn.Module):
    """The audio → lip model plus the projection head of the contrastive loss (``embed_mouth`` /
    ``embed_audio``: the interface :func:`refmodel.sync_training.infonce_loss` expects)."""

    def __init__(self, cfg: LipSyncConfig, lip_dim: int):
        super().__init__()
        self.cfg = cfg
        self.audio_to_lip = AudioToLip(cfg, lip_dim)
        self.proj = nn.Sequential(nn.Linear(cfg.window * lip_dim, cfg.dim), nn.SiLU(), nn.Linear(cfg.dim, cfg.dim))

    def _embed(self, standardised_codes: torch.Tensor) -> torch.Tensor:
        return F.normalize(self.proj(standardised_codes.flatten(1)), dim=-1)

    def embed_mouth(self, lip_windows: torch.Tensor) -> torch.Tensor:
        """True lip-code windows (N, window, lip_dim) → unit embeddings."""
        a = self.audio_to_lip
        return self._embed((lip_windows - a.code_mean) / a.code_std)

    def embed_audio(self, mel: torch.Tensor) -> torch.Tensor:
        """Mel windows (N, 80, 16) → unit embeddings of the lip codes they predict."""
        return self._embed(self.audio_to_lip.standardised(mel))


@torch.no_grad()
def predict_codes(model: AudioToLip, mel: np.ndarray, num_frames: int, batch: int = 512) -> np.ndarray:
    """Lip codes (num_frames, lip_dim) for a whole clip's mel (80, T_mel): each frame's code is the mean of
    its predictions from the windows that contain it (windows past the end repeat the last mel step)."""
    from refmodel.submission import padded_mel_windows

    model.eval()
    w = model.window
    wins = padded_mel_windows(mel, range(num_frames))
    pred = torch.cat([model(torch.from_numpy(wins[i:i + batch])) for i in range(0, len(wins), batch)]).numpy()
    acc = np.zeros((num_frames, model.lip_dim), np.float64)
    cnt = np.zeros(num_frames)
    for k in range(w):  # prediction k of window s is frame s + k
        acc[k:] += pred[:num_frames - k, k]
        cnt[k:] += 1
    return (acc / cnt[:, None]).astype(np.float32)


class _Windows:
    """Every training window (clip, start f) with its true lip codes, mel window and offset candidates."""

    def __init__(self, series, codes: list[np.ndarray], cfg: LipSyncConfig):
        from prep.audio import mel_window

        self.cfg = cfg
        self.items, self.mel, self.lips, self.clip_of, self.start = [], [], [], [], []
        self.by_clip: list[dict[int, int]] = []
        w = cfg.window
        for ci, (s, lip) in enumerate(zip(series, codes)):
            index = {}
            for f in range(s.num_frames - w + 1):
                mw = mel_window(s.mel, f)
                if mw is None or not s.valid[f:f + w].all():
                    continue
                index[f] = len(self.mel)
                self.mel.append(mw)
                self.lips.append(lip[f:f + w])
                self.clip_of.append(ci)
                self.start.append(f)
            self.by_clip.append(index)
        if not self.mel:
            raise ValueError("no 5-frame window with faces and audio to train the audio -> lip model on")
        self.mel = np.stack(self.mel).astype(np.float32)
        self.lips = np.stack(self.lips).astype(np.float32)
        self.clip_of, self.start = np.array(self.clip_of), np.array(self.start)

    def __len__(self):
        return len(self.mel)

    def batch(self, rng: np.random.Generator, size: int) -> dict:
        idx = rng.choice(len(self), size=min(size, len(self)), replace=False)
        k, lo, hi = self.cfg.num_offset_negatives, self.cfg.min_negative_offset, self.cfg.max_offset
        neg = np.zeros((len(idx), k, *self.mel.shape[1:]), np.float32)
        for j, i in enumerate(idx):
            index, f = self.by_clip[self.clip_of[i]], self.start[i]
            cands = [index[f + d] for d in range(-hi, hi + 1) if abs(d) >= lo and f + d in index]
            if not cands:  # a short clip: other windows of the data set stand in
                cands = [int(x) for x in rng.integers(0, len(self), k)]
            neg[j] = self.mel[rng.choice(cands, size=k, replace=len(cands) < k)]
        return {"mel": torch.from_numpy(self.mel[idx]), "lips": torch.from_numpy(self.lips[idx]),
                "neg_mel": torch.from_numpy(neg), "clip": torch.from_numpy(self.clip_of[idx]),
                "frame": torch.from_numpy(self.start[idx])}


def make_stage(series, codes: list[np.ndarray], cfg: LipSyncConfig, key: dict, device="cpu"):
    """The stage that trains :class:`LipSync` on the clips' (frozen) autoencoder lip codes ``codes``."""
    from refmodel.sync_training import infonce_loss

    from .stages import Stage

    lip_dim = codes[0].shape[1]
    model = LipSync(cfg, lip_dim)
    every = np.concatenate([c[s.valid] for c, s in zip(codes, series)])
    model.audio_to_lip.code_mean.copy_(torch.from_numpy(every.mean(0)))
    model.audio_to_lip.code_std.copy_(torch.from_numpy(every.std(0)).clamp_min(1e-4))
    model.to(device)
    windows = _Windows(series, codes, cfg)

    def loss(step, rng, gen):
        b = {k: v.to(device) for k, v in windows.batch(rng, cfg.batch_size).items()}
        nce, acc = infonce_loss(model, b["lips"], b["mel"], b["neg_mel"], b["clip"], b["frame"],
                                cfg.min_negative_offset, cfg.temperature)
        a = model.audio_to_lip
        reg = F.l1_loss(a.standardised(b["mel"]), (b["lips"] - a.code_mean) / a.code_std)
        return {"infonce": nce, "acc": acc, "l1": reg, "total": nce + cfg.regression_weight * reg}

    return Stage("lipsync", model, cfg.steps, cfg.lr, loss, key, checkpoint_every=max(1, cfg.steps // 4),
                 weight_decay=1e-4)


def lipsync_report(model: AudioToLip, ae, series) -> dict:
    """Per clip and pooled: r between the mouth opening implied by the lip codes predicted from audio
    (the autoencoder's mouth head) and the inner-lip gap measured from the landmarks."""
    preds, truth = [], []
    out = {}
    for s in series:
        pred = predict_codes(model, s.mel, s.num_frames)
        with torch.no_grad():
            gap = ae.mouth(torch.from_numpy(pred)).numpy()[:, 0]
        v = s.valid
        out[s.clip_id] = float(np.corrcoef(gap[v], s.mouth[v, 0])[0, 1])
        preds.append(gap[v])
        truth.append(s.mouth[v, 0])
    pooled = float(np.corrcoef(np.concatenate(preds), np.concatenate(truth))[0, 1])
    return {"r_mouth_gap_per_clip": out, "r_mouth_gap": pooled}


__all__ = ["AudioToLip", "LipSync", "predict_codes", "make_stage", "lipsync_report"]
