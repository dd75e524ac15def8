"""Sync QA scorers for ``talkbench prep`` (``prep.syncqa``'s interface), on evalkit's networks and math.

:class:`SyncNetQA` is LSE (``evalkit.metrics.lse``) on prep's aligned crops: the official SyncNet loader
(``evalkit.nets.syncnet.load_syncnet``: weights-only, layout-checked, sha256, official when the pinned
hash), the ``aligned`` crop of ``talkbench eval`` (``evalkit.syncnet_crop.aligned_crops``: 224x224 BGR),
syncnet_python's MFCC windows, distance table and offset / confidence (``offset_distances``,
``scores_from_distances``). With every window scored it *is* ``lse()`` on those crops (tested); a long
clip scores at most ``max_windows`` evenly spaced windows (all audio windows are embedded), which keeps
the cost of a 2-hour clip bounded. :class:`SyncExpertQA` is the in-domain sync expert
(``evalkit.nets.sync_expert``), recorded as such (its confidence is on its own scale, not SyncNet's).

Objects are small and picklable (a path, a seed): each process loads its network once, on first use.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

log = logging.getLogger(__name__)

WINDOW = 5


def pick_windows(valid: np.ndarray, n_windows: int, max_windows: int) -> np.ndarray:
    """Window starts ``i < n_windows`` whose 5 frames all have a face, at most ``max_windows`` of them,
    evenly spaced (all of them when there are few enough)."""
    valid = np.asarray(valid, bool)
    ok = np.array([valid[i:i + WINDOW].all() for i in range(max(0, n_windows))], bool)
    starts = np.flatnonzero(ok)
    if len(starts) > max_windows:
        starts = starts[np.unique(np.linspace(0, len(starts) - 1, max_windows).round().astype(int))]
    return starts


def _windows(crops, starts: np.ndarray, prepare) -> np.ndarray:
    """(n, 5, ...) stacked windows of ``prepare(crop)``; each frame decoded once per call."""
    cache = {}
    out = []
    for s in starts:
        win = []
        for f in range(int(s), int(s) + WINDOW):
            if f not in cache:
                cache[f] = prepare(crops[f])
            win.append(cache[f])
        out.append(np.stack(win))
    return np.stack(out)


@lru_cache(maxsize=2)
def _syncnet(path, allow_random: bool, seed: int, device: str):
    from .nets.syncnet import load_syncnet

    net = load_syncnet(path, allow_random=allow_random, seed=seed).to(device)
    return net, net.lip_net_2d()


@dataclass(frozen=True)
class SyncNetQA:
    """SyncNet offset / confidence of a clip (``prep.syncqa.SyncScorer``)."""

    path: str | None = None  # syncnet_v2.model (else $TALKBENCH_SYNCNET / the cache dir)
    allow_random: bool = False  # a seeded random network in the official layout (tests): not LSE numbers
    seed: int = 0
    device: str = "cpu"
    batch_size: int = 32

    def network(self):
        return self.networks()[0]

    def networks(self):
        """(SyncNet, its 2-D lip network or None), loaded once per process."""
        return _syncnet(self.path, self.allow_random, self.seed, self.device)

    @property
    def identity(self) -> dict:
        from talkbase.weights import state_sha256

        from .metrics.lse import VERSION

        net = self.network()
        random = net.weights_sha256 is None
        return {"kind": "syncnet", "name": "syncnet_v2", "impl": f"evalkit.sync_qa.SyncNetQA ({VERSION}, aligned crops)",
                "sha256": state_sha256(net) if random else net.weights_sha256, "official": bool(net.calibrated),
                "random": random, **({"seed": self.seed} if random else {})}

    def measure(self, crops, audio, valid, max_windows: int, vshift: int):
        import torch

        from prep.audio import to_int16
        from prep.syncqa import SyncMeasure

        from .metrics.lse import _aud_embeddings, mfcc_matrix, num_windows, offset_distances, scores_from_distances
        from .syncnet_crop import aligned_crops

        net, net2d = self.networks()
        wav = to_int16(np.asarray(audio))
        n = num_windows(len(crops), len(wav))
        if n < 1:
            return SyncMeasure(None, None, None, 0, f"too short for SyncNet ({len(crops)} frames)")
        starts = pick_windows(valid, n, max_windows)
        if not len(starts):
            return SyncMeasure(None, None, None, 0, "no 5-frame window with a face in every frame")
        with torch.inference_mode():
            audio_emb = _aud_embeddings(net, torch.from_numpy(mfcc_matrix(wav)), n, 256).float().cpu()
            video = []
            for b0 in range(0, len(starts), self.batch_size):
                win = _windows(crops, starts[b0:b0 + self.batch_size], lambda c: aligned_crops(c[None])[0])
                x = torch.from_numpy(win).permute(0, 1, 4, 2, 3)  # (n, 5, 3, 224, 224) BGR uint8
                if hasattr(net, "lip_embeddings_of"):
                    video.append(net.lip_embeddings_of(x, self.batch_size, net=net2d).float().cpu())
                else:  # any SyncNet-interface module: forward_lip on (n, 3, 5, H, W)
                    video.append(net.forward_lip(x.permute(0, 2, 1, 3, 4).float()).float().cpu())
            dists = offset_distances(torch.cat(video), audio_emb, vshift, windows=starts)
            out = scores_from_distances(dists, vshift)
        return SyncMeasure(int(out["offset"]), float(out["lse_c"]), float(out["lse_d"]), int(len(starts)))


@lru_cache(maxsize=2)
def _expert(path, device: str):
    from .nets.sync_expert import load_sync_expert

    return load_sync_expert(path, device)


@dataclass(frozen=True)
class SyncExpertQA:
    """An in-domain sync expert's offset / confidence (max − median similarity over offsets)."""

    path: str
    device: str = "cpu"

    @property
    def identity(self) -> dict:
        from talkbase.fileio import sha256_file

        from .nets.sync_expert import CHECKPOINT

        from pathlib import Path

        p = Path(self.path)
        p = p / CHECKPOINT if p.is_dir() else p
        _expert(self.path, self.device)  # fails early for a file that is not an expert checkpoint
        return {"kind": "sync_expert", "name": "in-domain sync expert", "impl": "evalkit.sync_qa.SyncExpertQA",
                "sha256": sha256_file(p), "official": False,
                "note": "confidence on the expert's cosine scale, not SyncNet's LSE-C"}

    def measure(self, crops, audio, valid, max_windows: int, vshift: int):
        from prep.audio import mel_window, melspectrogram
        from prep.syncqa import SyncMeasure

        from .nets.sync_expert import _resize_crops, per_offset_similarity

        scorer = _expert(self.path, self.device)
        T = len(crops)
        starts = pick_windows(valid, T - WINDOW + 1, max_windows)
        if not len(starts):
            return SyncMeasure(None, None, None, 0, "no 5-frame window with a face in every frame")
        mel = melspectrogram(np.asarray(audio, np.float32))
        size = scorer.arch.image_size
        v = scorer.embed_mouth(_windows(crops, starts, lambda c: _resize_crops(c[None], size)[0]))
        frames = sorted({f + d for f in starts for d in range(-vshift, vshift + 1)
                         if 0 <= f + d < T and mel_window(mel, f + d) is not None})
        a = scorer.embed_audio(np.stack([mel_window(mel, g) for g in frames]))
        per = per_offset_similarity(v, starts, a, frames, vshift)
        sims = np.array(list(per.values()))
        best = max(per, key=per.get)
        # the expert's d: mouth at f matches audio at f + d; SyncNet's offset is the opposite sign
        return SyncMeasure(-int(best), float(sims.max() - np.median(sims)), float(1.0 - per[best]), int(len(starts)))


__all__ = ["SyncNetQA", "SyncExpertQA", "pick_windows"]
