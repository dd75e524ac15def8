"""Prep configuration. Its content hash decides whether existing output may be resumed or extended."""
from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field, fields, replace


@dataclass(frozen=True)
class QAFilters:
    """Thresholds that *mark* clips (``qa_pass = False`` plus a reason in ``qa_flags``); nothing is dropped.

    ``None`` disables a filter.
    """

    min_face_fraction: float | None = 0.9
    min_face_size: float | None = 64.0  # median face box side, source px
    max_jitter: float | None = None  # crop px per frame
    min_blur: float | None = None  # variance of Laplacian on the mouth region
    min_loudness_db: float | None = -55.0  # dBFS; below is treated as silence
    max_fit_residual: float | None = None  # px

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class PrepConfig:
    crop_codec: str = "jpeg"  # jpeg (q=jpeg_quality, 4:4:4) or png
    jpeg_quality: int = 95
    min_frames: int = 5  # one 5-frame SyncNet / 16-step mel window
    segment_frames: int = 1500  # long videos are split into independent 60 s tasks
    clips_per_shard: int = 256
    frames_per_shard: int = 4096
    faces: dict = field(default_factory=dict)  # prep.faces.FaceConfig fields (defaults when empty)
    filters: QAFilters = field(default_factory=QAFilters)
    # not part of the content hash: how the work is executed
    chunk_size: int = 16

    EXECUTION_FIELDS = ("chunk_size",)

    def face_config(self):
        from .faces import FaceConfig

        return FaceConfig.from_dict(self.faces) if self.faces else FaceConfig()

    def to_dict(self) -> dict:
        d = {f.name: getattr(self, f.name) for f in fields(self)}
        d["filters"] = self.filters.to_dict()
        d["faces"] = self.face_config().to_dict()
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "PrepConfig":
        d = dict(d)
        if isinstance(d.get("filters"), dict):
            d["filters"] = QAFilters(**d["filters"])
        known = {f.name for f in fields(cls)}
        unknown = set(d) - known
        if unknown:
            raise ValueError(f"unknown prep config keys: {sorted(unknown)}")
        return cls(**d)

    def content_dict(self) -> dict:
        d = self.to_dict()
        for k in self.EXECUTION_FIELDS:
            d.pop(k, None)
        return d

    def content_hash(self) -> str:
        """sha256 of everything that changes shard content (short, 16 hex)."""
        blob = json.dumps(self.content_dict(), sort_keys=True, separators=(",", ":"), default=str)
        return hashlib.sha256(blob.encode()).hexdigest()[:16]

    def replace(self, **kw) -> "PrepConfig":
        return replace(self, **kw)


__all__ = ["PrepConfig", "QAFilters"]
