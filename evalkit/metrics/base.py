"""What a metric is: one :class:`MetricSpec` per metric, and the mergeable per-video base class.

A metric module (``evalkit/metrics/<name>.py``) holds the metric's math (functional + a torchmetrics-style
class that delegates to it) and exports ``SPECS``: the spec says what the metric is called and measures
(version, unit, direction, modes), what it needs from the video (``needs``: see :mod:`evalkit.inputs`) and
which weights, how it accumulates one video (``new`` / ``feed`` / ``finish``), how per-video results merge
into the dataset value (``merge`` / ``summary``), and its protocol, built from the module's own constants.

Per-video values are merged in clip order and summarised from sorted values, so the dataset value does
not depend on the worker count, on completion order or on the order states are merged in.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np
import torch
from torchmetrics import Metric

from talkbase.timebase import FPS

from ..config import MODES  # noqa: E402 (re-exported)


@dataclass(frozen=True)
class MetricValue:
    """One video's result for one metric: what crosses from the worker to the runner."""

    value: float | None  # the video's value (None: not scorable; ``reason`` says why)
    frames: int = 0  # frames that entered the value
    frames_skipped: int = 0  # frames left out (no face, no landmarks, ...)
    state: Any = None  # what ``merge`` folds in (a torchmetrics state, FID features, ...)
    reason: str | None = None
    columns: dict = field(default_factory=dict)  # extra per-video columns (e.g. the LSE offset)


@dataclass(frozen=True)
class MergeContext:
    config: Any  # EvalConfig
    reference_fid: Any = None  # FeatureMoments of the reference set, when FID is active


@dataclass(frozen=True)
class MetricSpec:
    name: str
    label: str  # column heading ("LSE-C", "LMD (mouth)")
    version: str  # bump when the numbers change
    unit: str
    higher_is_better: bool
    modes: tuple[str, ...]
    needs: tuple[str, ...]  # inputs gathered per chunk / per video (evalkit.inputs.INPUTS)
    description: str
    protocol: Callable[[Any], dict]  # EvalConfig -> protocol dict (the runner adds the weights used)
    new: Callable[[Any], Any]  # EvalConfig -> accumulator for one video (and for the merge)
    finish: Callable[[Any, Any], MetricValue]  # (accumulator, VideoInputs) -> this video's value
    merge: Callable[[Any, MetricValue], None]  # fold one video into the merge accumulator
    summary: Callable[[Any, MergeContext], dict]  # merge accumulator -> value, stderr, n, frames, ...
    feed: Callable[[Any, Any], None] | None = None  # (accumulator, ChunkInputs): per chunk of frames
    new_merge: Callable[[Any], Any] | None = None  # the merge accumulator, when it differs from ``new``
    weights: Callable[[Any], tuple[str, ...]] = lambda config: ()  # weights this config needs
    columns: tuple[tuple[str, str], ...] = ()  # extra per-video columns: (name, arrow type)
    per_video_column: bool = True  # the per-video value goes into per_video.parquet as ``name``
    decimals: int = 3
    headline: bool = True  # a leaderboard column (else in the CSV only)
    valid_range: tuple[float | None, float | None] = (None, None)
    order: int = 100  # where its column goes (results, per-video table, leaderboard)
    # (per-video MetricValues in clip order, MergeContext, resample index arrays) -> the metric on each resample;
    # None: the mean of the per-video values (every per-video metric)
    bootstrap: Callable[[list, Any, np.ndarray], np.ndarray] | None = None

    def merger(self, config):
        """An empty accumulator that per-video values are merged into (in clip order)."""
        return (self.new_merge or self.new)(config)

    def info(self) -> dict:
        """The spec's description as results.json and ``--list-metrics`` show it."""
        return {"name": self.name, "label": self.label, "version": self.version, "unit": self.unit,
                "higher_is_better": self.higher_is_better, "modes": list(self.modes), "needs": list(self.needs),
                "description": self.description, "decimals": self.decimals, "headline": self.headline,
                "valid_range": list(self.valid_range)}


# ---------------------------------------------------------------- protocol pieces shared by metrics

def base_protocol(version: str, config) -> dict:
    """Settings every per-video metric shares: frames compared, aggregation, clip set."""
    if config.mode == "reference-free":
        return {"version": version, "fps": FPS, "frame_resampling": "timestamp (prep.media.iter_frames)",
                "frames": "every frame of the submitted video at 25 fps", "reference": "none (reference-free)",
                "aggregation": "mean over videos of the per-video mean over frames",
                "stderr": "std over videos (ddof=1) / sqrt(n)", "clips": "every video file of the submission folder"}
    return {"version": version, "fps": FPS, "frame_resampling": "timestamp (prep.media.iter_frames)",
            "frames": "the first min(generated, reference) frames at 25 fps",
            "aggregation": "mean over videos of the per-video mean over frames",
            "stderr": "std over videos (ddof=1) / sqrt(n)",
            "clips": f"reference clips of split {config.split!r}" if config.split else "every reference clip"}


# ---------------------------------------------------------------- summaries

def summarize(values) -> dict:
    """``value`` (mean), ``stderr`` (std ddof=1 / sqrt n; None below 2 videos) and ``n`` of per-video values.

    Values are sorted first, so the result does not depend on the order they arrive in.
    """
    v = np.sort(np.asarray(values, dtype=np.float64).ravel())
    n = int(v.size)
    if n == 0:
        return {"value": None, "stderr": None, "n": 0}
    stderr = float(np.std(v, ddof=1) / math.sqrt(n)) if n > 1 else None
    return {"value": float(np.mean(v)), "stderr": stderr, "n": n}


CI_METHOD = "percentile bootstrap over videos (resample the scored videos with replacement; 2.5 / 97.5 percentiles)"


def bootstrap_indices(n: int, resamples: int, seed: int) -> np.ndarray:
    """(resamples, n) indices of ``n`` videos (in clip order) drawn with replacement; seeded, so every metric
    of one evaluation resamples the same videos."""
    return np.random.default_rng(int(seed)).integers(0, n, size=(int(resamples), n))


def bootstrap_ci(values: list, spec: "MetricSpec", ctx, resamples: int, seed: int) -> tuple[float, float] | None:
    """95 % percentile interval of ``spec``'s dataset value over videos; None below 2 scored videos.

    ``values``: the per-video :class:`MetricValue` of the scored videos in clip order.
    """
    scored = [v for v in values if v.reason is None]
    if len(scored) < 2 or resamples < 1:
        return None
    idx = bootstrap_indices(len(scored), resamples, seed)
    if spec.bootstrap is not None:
        stats = np.asarray(spec.bootstrap(scored, ctx, idx), np.float64)
    else:
        x = np.asarray([v.value for v in scored], np.float64)
        stats = x[idx].mean(axis=1)
    stats = stats[np.isfinite(stats)]
    if not stats.size:
        return None
    lo, hi = np.percentile(stats, [2.5, 97.5])
    return float(lo), float(hi)


def _as_list(x) -> list:
    if isinstance(x, list):
        return list(x)
    return [t.reshape(1) for t in torch.as_tensor(x).reshape(-1)]


class VideoMeanMetric(Metric):
    """Per-video mean of a per-frame quantity; the dataset value is the mean over videos.

    ``update(...)`` adds frames to the open video (subclasses define ``frame_values``); ``end_video()``
    closes it. Frames whose value is NaN (no face, no landmarks) are left out of the mean and counted
    in ``frames_skipped``; a video with no valid frame contributes nothing (``end_video`` returns None).
    ``merge_state`` appends another instance's videos; ``compute`` summarises them.
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


# ---------------------------------------------------------------- spec builders for the two common shapes

def _finish_mean(metric: VideoMeanMetric, video) -> MetricValue:
    frames_before = int(sum(int(t.sum()) for t in metric.video_frames))
    skipped_before = int(metric.frames_skipped)
    v = metric.end_video()
    frames = int(sum(int(t.sum()) for t in metric.video_frames)) - frames_before
    return MetricValue(v, frames, int(metric.frames_skipped) - skipped_before, metric.metric_state,
                       None if v is not None else "no scorable frame (no reference face, or no landmarks/embedding)")


def _merge_mean(merged: VideoMeanMetric, value: MetricValue) -> None:
    if value.value is not None:
        merged.merge_state(value.state)


def _summary_mean(merged: VideoMeanMetric, ctx: MergeContext) -> dict:
    import warnings

    with warnings.catch_warnings():  # a metric no video reached: torchmetrics warns, we report it
        warnings.filterwarnings("ignore", message=r".*was called before the ``update`` method")
        return merged.compute()


def frame_mean_spec(*, feed: Callable[[VideoMeanMetric, Any], None], new: Callable[[Any], VideoMeanMetric],
                    **fields) -> MetricSpec:
    """A metric that is a mean over frames per video, then a mean over videos (PSNR, SSIM, LMD, CSIM)."""
    return MetricSpec(new=new, feed=feed, finish=_finish_mean, merge=_merge_mean, summary=_summary_mean, **fields)


def video_value_spec(*, value: Callable[[Any, Any], tuple[float | None, str | None, dict]], **fields) -> MetricSpec:
    """A metric computed once per video from video-level inputs (LSE, in-house sync).

    ``value(video_inputs, config)`` returns ``(value, reason, columns)``.
    """
    def new(config):
        m = VideoValueMetric()
        m.config = config  # plain attribute: not a state
        return m

    def finish(metric, video) -> MetricValue:
        try:
            v, reason, columns = value(video, metric.config)
        except Exception as e:  # noqa: BLE001 - a metric failing on one video is that metric's skip
            v, reason, columns = None, f"{fields['name']} failed: {_reason(e)}", {}
        if v is not None and not math.isfinite(v):
            v, reason = None, reason or "value not finite"
        if v is None:
            return MetricValue(None, 0, 0, None, reason or "not computed", columns)
        frames = int(columns.pop("_frames", video.n_frames))
        metric.add_video_value(v, frames)
        return MetricValue(float(v), frames, 0, metric.metric_state, None, columns)

    return MetricSpec(new=new, finish=finish, merge=_merge_mean, summary=_summary_mean, **fields)


def _reason(e: BaseException) -> str:
    r = getattr(e, "reason", None)
    return r if isinstance(r, str) else f"{type(e).__name__}: {e}"


__all__ = ["bootstrap_ci", "bootstrap_indices", "CI_METHOD", "MetricSpec", "MetricValue", "MergeContext", "VideoMeanMetric", "VideoValueMetric", "summarize",
           "base_protocol", "frame_mean_spec", "video_value_spec", "MODES"]
