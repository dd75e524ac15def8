"""What crosses between the evaluation driver and its Dask workers: frozen, typed, picklable.

The driver resolves weights once (:class:`ResolvedWeights`), reads the reference once
(:class:`ReferenceClip`), validates each submitted video, and ships one :class:`EvalTask` per video;
a worker answers with one :class:`VideoScore`.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .config import EvalConfig
from .metrics.base import MetricValue
from .submission import SubmissionVideo


@dataclass(frozen=True)
class WeightsInfo:
    """A network an evaluation uses, decided once in the driver."""

    name: str  # registry name ("syncnet", "inception", "s3fd", "dlib") or "sync_expert"
    path: str | None  # None: a seeded random network (uncalibrated FID only)
    sha256: str  # of the file, or of the random network's state dict
    calibrated: bool  # the official file (pinned sha256), or an in-domain expert given on purpose
    source: str = "file"
    seed: int | None = None
    status: str = "official"  # official | unverified (a file whose sha256 is not pinned) | random | in-domain

    def protocol(self) -> dict:
        """What a metric's protocol records about its weights."""
        out = {"sha256": self.sha256, "calibrated": self.calibrated, "status": self.status}
        if self.source != "file":
            out["source"] = self.source
        return out


@dataclass(frozen=True)
class ResolvedWeights:
    by_name: dict = field(default_factory=dict)  # name -> WeightsInfo

    def get(self, name: str) -> WeightsInfo | None:
        return self.by_name.get(name)

    def path(self, name: str) -> str | None:
        w = self.by_name.get(name)
        return w.path if w else None


@dataclass(frozen=True)
class ReferenceClip:
    """A reference clip whose source video was found and sha256-verified, with its per-frame geometry."""

    clip_id: str
    path: str  # verified source video
    sha256: str
    num_frames: int
    width: int
    height: int
    crop_size: int  # side of the crops the stored affines map to
    face: np.ndarray  # (num_frames,) bool
    boxes: np.ndarray  # (num_frames, 4) source px
    affines: np.ndarray  # (num_frames, 6) source px -> crop px
    mm_exp: np.ndarray | None = None  # (num_frames, 10) the reference's 3DMM expression (NaN rows: not fitted)


@dataclass(frozen=True)
class AudioSource:
    """The (verified) reference video whose audio a submission must carry (``evalkit.audio_check``)."""

    clip_id: str
    path: str
    num_frames: int


@dataclass(frozen=True)
class EvalTask:
    """Score one submitted video against its reference clip."""

    clip: ReferenceClip
    video: SubmissionVideo
    n_frames: int  # frames compared: min(generated, reference)
    config: EvalConfig
    weights: ResolvedWeights
    metrics: tuple[str, ...]  # the metrics to compute (those whose weights are present)
    audio: AudioSource | None = None  # check the submission's audio against this clip's (None: no check)


@dataclass(frozen=True)
class FreeTask:
    """Score one submitted video with no reference (reference-free mode): track its face, then score it."""

    video: SubmissionVideo
    config: EvalConfig
    weights: ResolvedWeights
    metrics: tuple[str, ...]
    face_config: Any  # prep.faces.FaceConfig of the tracking (as prep's)


@dataclass(frozen=True)
class ReferenceFIDTask:
    """Inception features of one reference clip's FID image set."""

    clip: ReferenceClip
    config: EvalConfig
    inception: WeightsInfo


@dataclass(frozen=True)
class VideoScore:
    clip_id: str
    status: str  # "scored" | "failed" | "skipped" (the video is not what it claims: ``code`` says why)
    reason: str | None = None
    values: dict = field(default_factory=dict)  # metric name -> MetricValue
    n_frames: int = 0
    n_face_frames: int = 0
    seconds: float = 0.0
    code: str | None = None  # skip code for results.json (default "scoring_failed")

    def value(self, name: str) -> MetricValue | None:
        return self.values.get(name)


__all__ = ["WeightsInfo", "ResolvedWeights", "ReferenceClip", "AudioSource", "EvalTask", "FreeTask",
           "ReferenceFIDTask", "VideoScore"]
