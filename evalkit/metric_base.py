"""The mergeable per-video metric base shared by PSNR, SSIM, LMD, CSIM and the sync scores.

A torchmetrics ``Metric`` whose state is one value per finished video. Each Dask task scores one
video and ships ``metric.metric_state``; the driver merges the states in clip order, so the same
inputs always give bit-identical dataset values (float sums depend on order).
"""
from __future__ import annotations

import math

import numpy as np
import torch
from torchmetrics import Metric


def summarize(values) -> dict:
    """``value`` (mean), ``stderr`` (std ddof=1 / sqrt n; None below 2 videos) and ``n`` of per-video values."""
    v = np.asarray(values, dtype=np.float64).ravel()
    n = int(v.size)
    if n == 0:
        return {"value": None, "stderr": None, "n": 0}
    stderr = float(np.std(v, ddof=1) / math.sqrt(n)) if n > 1 else None
    return {"value": float(np.mean(v)), "stderr": stderr, "n": n}


def _as_list(x) -> list:
    if isinstance(x, list):
        return list(x)
    return [t.reshape(1) for t in torch.as_tensor(x).reshape(-1)]


class VideoMeanMetric(Metric):
    """Per-video mean of a per-frame quantity; the dataset value is the mean over videos.

    ``update(...)`` adds frames to the open video (subclasses define ``frame_values``); ``end_video()``
    closes it. Frames whose value is NaN (no face, no landmarks) are left out of the mean and counted
    in ``frames_skipped``; a video with no valid frame contributes nothing (``end_video`` returns None).
    """

    full_state_update = False
    is_differentiable = False
    higher_is_better: bool | None = None

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.add_state("video_values", default=[], dist_reduce_fx="cat")
        self.add_state("video_frames", default=[], dist_reduce_fx="cat")
        self.add_state("frames_skipped", default=torch.tensor(0, dtype=torch.int64), dist_reduce_fx="sum")
        self._open: list[np.ndarray] = []

    def frame_values(self, *args, **kwargs) -> np.ndarray:  # pragma: no cover - abstract
        raise NotImplementedError

    def update(self, *args, **kwargs) -> None:
        self.add_frame_values(self.frame_values(*args, **kwargs))

    def add_frame_values(self, values) -> None:
        self._open.append(np.asarray(values, dtype=np.float64).ravel())

    def end_video(self) -> float | None:
        """Close the open video; returns its mean (None when it had no valid frame)."""
        v = np.concatenate(self._open) if self._open else np.zeros(0)
        self._open = []
        ok = v[np.isfinite(v)]
        self.frames_skipped = self.frames_skipped + int(v.size - ok.size)
        self._computed = None
        if ok.size == 0:
            return None
        mean = float(np.mean(ok))
        self.add_video_value(mean, ok.size)
        return mean

    def add_video_value(self, value: float, frames: int = 1) -> None:
        """Record a video whose value was computed in one go (e.g. LSE from one forward pass)."""
        self.video_values.append(torch.tensor([float(value)], dtype=torch.float64))
        self.video_frames.append(torch.tensor([int(frames)], dtype=torch.int64))
        self._update_count += 1
        self._computed = None

    def merge_state(self, incoming) -> None:
        """Append ``incoming``'s videos after ours (torchmetrics' own merge prepends list states)."""
        state = incoming.metric_state if isinstance(incoming, Metric) else incoming
        self.video_values = list(self.video_values) + _as_list(state["video_values"])
        self.video_frames = list(self.video_frames) + _as_list(state["video_frames"])
        self.frames_skipped = self.frames_skipped + torch.as_tensor(state["frames_skipped"])
        self._update_count += 1  # merged state counts as an update (torchmetrics warns otherwise)
        self._computed = None

    def values(self) -> np.ndarray:
        """Per-video values in merge order."""
        if not self.video_values:
            return np.zeros(0)
        return torch.cat([t.reshape(-1) for t in self.video_values]).numpy().astype(np.float64)

    def compute(self) -> dict:
        """``{"value", "stderr", "n", "frames", "frames_skipped"}`` over the finished videos."""
        out = summarize(self.values())
        out["frames"] = int(sum(int(t.sum()) for t in self.video_frames))
        out["frames_skipped"] = int(self.frames_skipped)
        return out

    def reset(self) -> None:
        super().reset()
        self._open = []


class VideoValueMetric(VideoMeanMetric):
    """A per-video score computed in one piece elsewhere (LSE-D/C, in-house sync): only ``add_video_value``."""

    def frame_values(self, *args, **kwargs):
        raise TypeError(f"{type(self).__name__} takes whole-video values via add_video_value()")


__all__ = ["VideoMeanMetric", "VideoValueMetric", "summarize"]
