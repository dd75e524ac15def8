"""Prep configuration. Its content hash decides whether existing output may be resumed or extended.

One frozen dataclass that travels as itself to every task (never as a dict round trip); ``to_dict`` /
``from_dict`` exist for the manifest and ``--config`` files, and every value is checked before any work.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field, fields, replace

from .faces.config import FaceConfig
from .shots import ShotConfig
from .syncqa import SyncQAConfig


class ConfigError(ValueError):
    """A prep config value of the wrong type or out of range; the message names the field."""


def _check_number(owner: str, name: str, value, kind, low=None, allow_none: bool = False):
    if value is None and allow_none:
        return
    ok = isinstance(value, kind) and not isinstance(value, bool) or (kind is float and isinstance(value, int)
                                                                      and not isinstance(value, bool))
    if not ok:
        raise ConfigError(f"{owner}.{name}: expected {kind.__name__}{' or null' if allow_none else ''}, "
                          f"got {value!r}")
    if low is not None and value < low:
        raise ConfigError(f"{owner}.{name}: must be >= {low}, got {value!r}")


@dataclass(frozen=True)
class QAFilters:
    """Thresholds that *mark* clips (``qa_pass = False`` plus a reason in ``qa_flags``); nothing is dropped.

    ``None`` disables a filter.
    """

    min_face_fraction: float | None = 0.9  # fraction of frames with a face
    min_face_size: float | None = 64.0  # median face box side, source px
    max_jitter: float | None = None  # crop px per frame
    min_blur: float | None = None  # variance of Laplacian on the mouth region
    min_loudness_db: float | None = -55.0  # dBFS; below is treated as silence
    max_fit_residual: float | None = None  # mean 3DMM keypoint residual, source px
    min_audio_coverage: float | None = 0.9  # fraction of the clip with audio from the file (not zero padding)
    max_num_faces: int | None = 1  # faces seen at once in a frame (a second face: whose lips are these?)

    def __post_init__(self):
        for f in fields(self):
            _check_number("filters", f.name, getattr(self, f.name), float, allow_none=True)

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
    faces: FaceConfig = field(default_factory=FaceConfig)
    filters: QAFilters = field(default_factory=QAFilters)
    shots: ShotConfig = field(default_factory=ShotConfig)
    sync: SyncQAConfig = field(default_factory=SyncQAConfig)
    # not part of the content hash: how the work is executed
    chunk_size: int = 16
    device: str = "auto"  # fan backend / sync scorer: "auto" (cuda when present), "cpu" or "cuda"

    EXECUTION_FIELDS = ("chunk_size", "device")

    def __post_init__(self):
        # a dict is accepted where a nested config goes (``PrepConfig(faces={"fit_3dmm": False})``)
        if isinstance(self.faces, dict):
            object.__setattr__(self, "faces", FaceConfig.from_dict(self.faces))
        if isinstance(self.filters, dict):
            object.__setattr__(self, "filters", QAFilters(**self.filters))
        for name, kind in (("shots", ShotConfig), ("sync", SyncQAConfig)):
            if isinstance(getattr(self, name), dict):
                try:
                    object.__setattr__(self, name, kind(**getattr(self, name)))
                except (TypeError, ValueError) as e:
                    raise ConfigError(f"{name}: {e}") from None
        if not isinstance(self.faces, FaceConfig) or not isinstance(self.filters, QAFilters) \
                or not isinstance(self.shots, ShotConfig) or not isinstance(self.sync, SyncQAConfig):
            raise ConfigError("faces / filters / shots / sync must be objects of their settings")
        if self.crop_codec not in ("jpeg", "png"):
            raise ConfigError(f"crop_codec: {self.crop_codec!r} is not jpeg or png")
        for name, low in (("jpeg_quality", 1), ("min_frames", 1), ("segment_frames", 1), ("clips_per_shard", 1),
                          ("frames_per_shard", 1), ("chunk_size", 1)):
            _check_number("config", name, getattr(self, name), int, low)
        if self.device not in ("auto", "cpu", "cuda"):
            raise ConfigError(f"config.device: {self.device!r} is not auto, cpu or cuda")
        if self.jpeg_quality > 100:
            raise ConfigError(f"config.jpeg_quality: must be <= 100, got {self.jpeg_quality}")

    def to_dict(self) -> dict:
        d = {f.name: getattr(self, f.name) for f in fields(self)}
        d["filters"] = self.filters.to_dict()
        d["faces"] = self.faces.to_dict()
        d["shots"] = self.shots.to_dict()
        d["sync"] = self.sync.to_dict()
        return d

    @classmethod
    def from_dict(cls, d) -> "PrepConfig":
        if not isinstance(d, dict):
            raise ConfigError(f"a prep config is a JSON object of PrepConfig fields, got {type(d).__name__}")
        unknown = set(d) - {f.name for f in fields(cls)}
        if unknown:
            raise ConfigError(f"unknown prep config keys: {sorted(unknown)}")
        try:
            return cls(**d)
        except TypeError as e:  # e.g. filters given a list, or an unknown nested key
            raise ConfigError(str(e)) from None

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


__all__ = ["PrepConfig", "QAFilters", "ConfigError"]
