"""The in-domain lip–audio sync expert: its network, its scorer and its checkpoint format.

A lip encoder and an audio encoder embed a 5-frame mouth window and the 16-step Wav2Lip mel window
paired with its first frame (``prep.audio.mel_window(mel, f)``, the SyncNet/Wav2Lip pairing) into one
space; their cosine similarity says how well the mouth matches the audio. The expert is trained by the
reference model's code (contrastive, with time-shifted negatives), which stores it with
:func:`save_sync_expert`; evalkit scores with it (the ``sync_inhouse`` metric) through
:func:`load_sync_expert`, which returns a :class:`SyncScorer` with ``score`` (per window) and
``clip_sync`` (clip-level offset, confidence and score).

Input convention for scoring: mouth windows are **aligned face crops** (N, 5, S, S, 3) uint8 RGB in the
prep job's crop frame (any S); the expert resizes them to its own size and looks at the lower half.

Checkpoint (``torch.save`` of plain data, read back with ``weights_only=True``): ``kind``, ``arch``
(:class:`ExpertArch` fields), ``state`` (the state dict), ``metrics`` (what the trainer measured) and
``training`` (the trainer's settings, e.g. the InfoNCE temperature). Older checkpoints keep everything
in ``config``: the architecture fields are taken from it and the rest is their ``training``.
"""
from __future__ import annotations

import io
from dataclasses import asdict, dataclass, fields
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from talkbase.fileio import atomic_write_bytes
from talkbase.timebase import SYNC_WINDOW
from talkbase.weights import WeightsNotFound, WeightsUnreadable, check_layout

KIND = "talkbench:sync_expert"
CHECKPOINT = "sync_expert.pt"  # the file name inside a training run directory
DROPOUT = 0.1


@dataclass(frozen=True)
class ExpertArch:
    """What fixes the network's shapes and how it is applied (the defaults are the ``tiny`` expert's)."""

    image_size: int = 64  # crops are resized to this; the expert looks at their lower half
    window: int = SYNC_WINDOW  # frames per mouth window (paired with one 16-step mel window)
    dim: int = 128  # embedding size
    channels: int = 32  # width of the first lip-encoder conv
    max_offset: int = 15  # offsets (frames) searched for the clip-level sync offset

    def __post_init__(self):
        for f in fields(self):
            v = getattr(self, f.name)
            if isinstance(v, bool) or not isinstance(v, int) or v < (0 if f.name == "max_offset" else 1):
                raise ValueError(f"sync expert {f.name}: expected a positive integer, got {v!r}")
        if self.image_size % 2:
            raise ValueError(f"sync expert image_size must be even, got {self.image_size}")

    @classmethod
    def from_dict(cls, d: dict) -> "ExpertArch":
        """The architecture fields of ``d`` (other keys, e.g. an old checkpoint's training settings, ignored)."""
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in names})

    def to_dict(self) -> dict:
        return asdict(self)


def _groups(ch: int) -> int:
    """GroupNorm groups for ``ch`` channels: the most of 32/16/.../1 leaving at least 2 channels each."""
    for g in (32, 16, 8, 4, 2, 1):
        if ch % g == 0 and ch // g >= 2:
            return g
    return 1


class LipEncoder(nn.Module):
    """(N, T, 3, S/2, S) mouth window in [-1, 1] → (N, dim): the frames stacked as channels (SyncNet's
    early fusion), strided convs, global pooling."""

    def __init__(self, window: int, channels: int, dim: int, dropout: float = DROPOUT):
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

    def __init__(self, channels: int, dim: int, dropout: float = DROPOUT):
        super().__init__()
        c = 2 * channels
        self.net = nn.Sequential(nn.Conv1d(80, c, 3, padding=1), nn.SiLU(),
                                 nn.Conv1d(c, c, 3, stride=2, padding=1), nn.SiLU(),  # 8 steps
                                 nn.Conv1d(c, c, 3, stride=2, padding=1), nn.SiLU())  # 4 steps
        self.out = nn.Sequential(nn.Dropout(dropout), nn.Linear(4 * c, dim))

    def forward(self, mel: torch.Tensor) -> torch.Tensor:
        return self.out(self.net(mel).flatten(1))


class SyncExpert(nn.Module):
    """Lip encoder + audio encoder; ``forward(mouth, mel)`` is the cosine similarity of each pair."""

    def __init__(self, arch: ExpertArch | None = None):
        super().__init__()
        arch = ExpertArch() if arch is None else arch
        if not isinstance(arch, ExpertArch):
            raise TypeError(f"SyncExpert takes an ExpertArch, got {type(arch).__name__}")
        self.arch = arch
        self.lip = LipEncoder(arch.window, arch.channels, arch.dim)
        self.audio = MelEncoder(arch.channels, arch.dim)

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


# ------------------------------------------------------------------ scoring

class SyncScorer:
    """A loaded, frozen sync expert with numpy-in / numpy-out scoring."""

    def __init__(self, expert: SyncExpert, metrics: dict | None = None, device: str = "cpu",
                 training: dict | None = None):
        self.expert = expert.eval().to(device)
        self.arch = expert.arch
        self.metrics = metrics or {}
        self.training = training or {}
        self.device = device
        for p in self.expert.parameters():
            p.requires_grad_(False)

    def _mouth_tensor(self, mouth_windows) -> torch.Tensor:
        # a copy when the array is read-only (decoded images often are): torch wants writable memory
        arr = np.ascontiguousarray(mouth_windows)
        x = torch.from_numpy(arr if arr.flags.writeable else arr.copy())
        if x.dtype == torch.uint8 and x.ndim == 5 and x.shape[-1] == 3:  # (N, T, S, S, 3) crops
            x = x.permute(0, 1, 4, 2, 3).float().div(127.5).sub(1.0)
        else:
            raise ValueError("mouth_windows must be (N, 5, S, S, 3) uint8 aligned crops")
        if x.shape[1] != self.arch.window:
            raise ValueError(f"expected windows of {self.arch.window} frames, got {x.shape[1]}")
        return prepare_mouth(x.to(self.device), self.arch.image_size)

    @torch.no_grad()
    def embed_mouth(self, mouth_windows, batch: int = 64) -> np.ndarray:
        out = [self.expert.embed_mouth(self._mouth_tensor(mouth_windows[i:i + batch]))
               for i in range(0, len(mouth_windows), batch)]
        return torch.cat(out).cpu().numpy() if out else np.zeros((0, self.arch.dim), np.float32)

    @torch.no_grad()
    def embed_audio(self, mel_windows, batch: int = 1024) -> np.ndarray:
        m = torch.from_numpy(np.array(mel_windows, np.float32))  # a fresh (writable) float32 copy
        out = [self.expert.embed_audio(m[i:i + batch].to(self.device)) for i in range(0, len(m), batch)]
        return torch.cat(out).cpu().numpy() if out else np.zeros((0, self.arch.dim), np.float32)

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

        crops = _resize_crops(np.asarray(crops), self.arch.image_size)  # bounded memory for big crops
        T, W = len(crops), self.arch.window
        D = self.arch.max_offset if max_offset is None else max_offset
        ok = np.ones(T, bool) if valid is None else np.asarray(valid, bool)
        starts = [f for f in range(T - W + 1) if ok[f:f + W].all()]
        if not starts:
            return {"offset": 0, "confidence": float("nan"), "score": float("nan"), "best_score": float("nan"),
                    "per_offset": {}, "num_windows": 0}
        v = self.embed_mouth(np.stack([crops[f:f + W] for f in starts]))
        audio_frames = [g for g in range(T) if mel_window(mel, g) is not None]
        a = self.embed_audio(np.stack([mel_window(mel, g) for g in audio_frames]))
        per = per_offset_similarity(v, starts, a, audio_frames, D)
        sims = np.array(list(per.values()))
        best = max(per, key=per.get)
        return {"offset": int(best), "confidence": float(sims.max() - np.median(sims)),
                "score": per.get(0, float("nan")), "best_score": per[best], "per_offset": per,
                "num_windows": len(starts)}


def per_offset_similarity(v: np.ndarray, starts, a: np.ndarray, audio_frames, max_offset: int) -> dict[int, float]:
    """``{d: mean cosine}`` of each mouth-window embedding ``v[i]`` (window starting at frame ``starts[i]``) with
    the audio embedding of frame ``starts[i] + d`` (``a[k]`` is frame ``audio_frames[k]``), for every offset
    ``d`` in ``[-max_offset, max_offset]`` that has such pairs."""
    row = {g: i for i, g in enumerate(audio_frames)}
    per = {}
    for d in range(-max_offset, max_offset + 1):
        pairs = [(i, row[f + d]) for i, f in enumerate(starts) if (f + d) in row]
        if pairs:
            i, j = map(list, zip(*pairs))
            per[d] = float((v[i] * a[j]).sum(-1).mean())
    return per


def _resize_crops(crops: np.ndarray, size: int) -> np.ndarray:
    import cv2

    if crops.ndim != 4 or crops.shape[1] == size:
        return crops
    interp = cv2.INTER_AREA if crops.shape[1] > size else cv2.INTER_LINEAR
    return np.stack([cv2.resize(np.ascontiguousarray(c), (size, size), interpolation=interp) for c in crops])


# ------------------------------------------------------------------ checkpoint format

def save_sync_expert(expert: SyncExpert, path, metrics: dict | None = None, training: dict | None = None) -> Path:
    """Write ``expert`` (its arch and weights, plus what the trainer measured and its settings) atomically."""
    buf = io.BytesIO()
    state = {k: v.detach().cpu() for k, v in expert.state_dict().items()}
    torch.save({"kind": KIND, "arch": expert.arch.to_dict(), "state": state, "metrics": metrics or {},
                "training": training or {}}, buf)
    atomic_write_bytes(path, buf.getvalue())
    return Path(path)


def _is_legacy_kind(kind) -> bool:
    """Checkpoints written before the expert moved here carry their trainer's dotted module path as kind
    (three parts: the project, the training package, ``sync_expert``)."""
    parts = kind.split(".") if isinstance(kind, str) else []
    return len(parts) == 3 and parts[0] == "talkbench" and parts[2] == "sync_expert"


def load_sync_expert(path, device: str = "cpu") -> SyncScorer:
    """A trained expert (a ``sync_expert.pt`` file or a run directory holding one), ready to score.

    Read with ``weights_only=True`` (nothing is unpickled). Raises :class:`WeightsNotFound` when there is
    no such file and :class:`WeightsUnreadable` (a ``ValueError``) naming the file when it is not a
    sync-expert checkpoint.
    """
    path = Path(path)
    if path.is_dir():
        path = path / CHECKPOINT
    if not path.is_file():
        raise WeightsNotFound(f"sync-expert checkpoint {path} not found")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 - torch raises many types for refused or broken files
        first = (str(e).splitlines() or [""])[0][:200]
        raise WeightsUnreadable(f"{path}: not a sync-expert checkpoint (not a weights-only torch file: "
                                f"{type(e).__name__}: {first})") from None
    kind = ckpt.get("kind") if isinstance(ckpt, dict) else None
    if kind != KIND and not _is_legacy_kind(kind):
        raise WeightsUnreadable(f"{path}: not a sync-expert checkpoint (kind {kind!r}, expected {KIND!r})")
    stored = ckpt.get("arch", ckpt.get("config"))
    if not isinstance(stored, dict):
        raise WeightsUnreadable(f"{path}: sync-expert checkpoint without its architecture")
    try:
        arch = ExpertArch.from_dict(stored)
    except (TypeError, ValueError) as e:
        raise WeightsUnreadable(f"{path}: bad sync-expert architecture ({e})") from None
    training = ckpt.get("training")
    if training is None:  # older layout: one "config" with the training settings beside the arch
        arch_names = set(arch.to_dict())
        training = {k: v for k, v in stored.items() if k not in arch_names}
    state = ckpt.get("state")
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise WeightsUnreadable(f"{path}: sync-expert checkpoint without a state dict")
    expert = SyncExpert(arch)
    check_layout(expert, state, str(path))
    metrics = ckpt.get("metrics")
    return SyncScorer(expert, metrics if isinstance(metrics, dict) else None, device,
                      training if isinstance(training, dict) else None)


__all__ = ["ExpertArch", "SyncExpert", "SyncScorer", "LipEncoder", "MelEncoder", "prepare_mouth",
           "save_sync_expert", "load_sync_expert", "per_offset_similarity", "KIND", "CHECKPOINT"]
