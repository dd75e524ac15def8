"""Sync QA per clip: SyncNet offset and confidence, measured by a scorer that prep is *given*.

prep never imports evalkit (the layering); the scorer is injected: ``prep.job.run_prep(...,
sync_scorer=...)`` takes any picklable object with

* ``identity`` -> dict: at least ``kind`` ("syncnet" or "sync_expert"), ``sha256`` of its weights and
  ``official`` (bool); it goes into the config hash and the manifest;
* ``measure(crops, audio, valid, max_windows, vshift)`` -> :class:`SyncMeasure`: ``crops`` a lazy
  sequence of the clip's aligned crops ((S, S, 3) uint8 RGB, decoded on access), ``audio`` the clip's
  16 kHz mono float32 audio (exactly ``len(crops) * 640`` samples), ``valid`` (T,) bool (frames with a
  face). The scorer chooses which 5-frame windows to score (all-valid ones, at most ``max_windows``,
  evenly spaced) and searches offsets ``-vshift … vshift``.

``talkbench prep`` builds it from evalkit (``evalkit.sync_qa``: the official SyncNet loader and LSE
scoring, one code path with ``talkbench eval``), or an in-domain sync expert (``--sync-expert``).

Conventions (SyncNet's, as ``evalkit.metrics.lse``): ``sync_offset`` in frames, positive when the audio is
*ahead* of the video (video frame ``i`` matches audio frame ``i - offset``); ``sync_conf`` = median − min of
the per-offset mean distances (LSE-C); ``sync_dist`` = the min (LSE-D). ``--sync-min-conf`` /
``--sync-max-offset`` mark clips (QA flags, never drops). With ``--sync-shift`` the clip's stored mel and
MFCC are computed from the audio delayed by ``sync_offset`` frames (samples from outside the clip where
the source has them, zeros past its ends), so a kept clip is at offset 0; ``sync_shift`` records the
frames applied (0 when not shifted). Only clips that pass the two sync checks are shifted.
"""
from __future__ import annotations

import logging
import math
from dataclasses import asdict, dataclass, field
from typing import Protocol, Sequence, runtime_checkable

import numpy as np

from talkbase.timebase import SAMPLES_PER_FRAME

log = logging.getLogger(__name__)

LATENTSYNC_MIN_CONF = 3.0  # LatentSync's preprocess: SyncNet confidence >= 3 ...
LATENTSYNC_MAX_OFFSET = 6  # ... and |offset| <= 6 frames


@dataclass(frozen=True)
class SyncMeasure:
    offset: int | None
    conf: float | None
    dist: float | None
    windows: int
    note: str | None = None  # why a measure is missing


@runtime_checkable
class SyncScorer(Protocol):
    identity: dict

    def measure(self, crops: Sequence[np.ndarray], audio: np.ndarray, valid: np.ndarray, max_windows: int,
                vshift: int) -> SyncMeasure: ...


@dataclass(frozen=True)
class SyncQAConfig:
    """Sync QA settings (part of the config hash, with the scorer's identity that ``run_prep`` fills in)."""

    min_conf: float | None = LATENTSYNC_MIN_CONF
    max_offset: int | None = LATENTSYNC_MAX_OFFSET
    shift: bool = False
    max_windows: int = 200  # 5-frame windows scored per clip (evenly spaced): bounds the cost of long clips
    vshift: int = 15  # offsets searched: -vshift … vshift frames (syncnet_python's default)
    scorer: dict | None = field(default=None)  # identity of the scorer used, or None (no sync QA)

    def __post_init__(self):
        if self.min_conf is not None and (not isinstance(self.min_conf, (int, float)) or isinstance(self.min_conf, bool)):
            raise ValueError(f"sync.min_conf: expected a number or null, got {self.min_conf!r}")
        for name, low in (("max_offset", 0), ("max_windows", 1), ("vshift", 1)):
            v = getattr(self, name)
            if v is None and name == "max_offset":
                continue
            if not isinstance(v, int) or isinstance(v, bool) or v < low:
                raise ValueError(f"sync.{name}: expected an int >= {low}, got {v!r}")
        if not isinstance(self.shift, bool):
            raise ValueError(f"sync.shift: expected true/false, got {self.shift!r}")
        if self.scorer is not None and not isinstance(self.scorer, dict):
            raise ValueError("sync.scorer: the scorer identity is a dict")

    def to_dict(self) -> dict:
        return asdict(self)


def scorer_identity(scorer) -> dict | None:
    """The identity a scorer declares (checked: kind, sha256, official), or None for no scorer."""
    if scorer is None:
        return None
    if not isinstance(scorer, SyncScorer):
        raise TypeError(f"sync_scorer {type(scorer).__name__} has no identity / measure(): see prep.syncqa")
    ident = dict(scorer.identity)
    missing = {"kind", "sha256", "official"} - set(ident)
    if missing:
        raise ValueError(f"sync scorer identity lacks {sorted(missing)}: {ident}")
    return ident


class LazyCrops(Sequence):
    """The crops of a clip as a sequence, decoded from the stored bytes on access (bounded memory)."""

    def __init__(self, encoded: list, decode):
        self._enc, self._decode = encoded, decode

    def __len__(self) -> int:
        return len(self._enc)

    def __getitem__(self, i):
        if isinstance(i, slice):
            return [self[j] for j in range(*i.indices(len(self)))]
        data = self._enc[i]
        return None if data is None else self._decode(data)


def shifted_audio(wav_source: np.ndarray, start: int, stop: int, offset: int) -> np.ndarray:
    """Samples of frames ``[start, stop)`` of the source audio delayed by ``offset`` frames (frame ``i`` gets
    the audio of source frame ``i - offset``), zero-padded past the source's ends."""
    a, b = (start - offset) * SAMPLES_PER_FRAME, (stop - offset) * SAMPLES_PER_FRAME
    out = np.zeros(b - a, np.float32)
    lo, hi = max(a, 0), min(b, len(wav_source))
    if hi > lo:
        out[lo - a:hi - a] = wav_source[lo:hi]
    return out


def measure_clip(scorer, cfg: SyncQAConfig, crops: Sequence, audio: np.ndarray, valid: np.ndarray) -> SyncMeasure:
    """The scorer's measure of one clip; an error inside the scorer becomes a missing measure with a note."""
    try:
        m = scorer.measure(crops, audio, np.asarray(valid, bool), cfg.max_windows, cfg.vshift)
    except Exception as e:  # noqa: BLE001 - a clip the scorer cannot score keeps its other columns
        log.debug("sync scorer failed", exc_info=True)
        return SyncMeasure(None, None, None, 0, f"sync scorer failed: {type(e).__name__}: {e}")
    if not isinstance(m, SyncMeasure):
        raise TypeError(f"sync scorer returned {type(m).__name__}, not a prep.syncqa.SyncMeasure")
    return m


def sync_flags(m: SyncMeasure, cfg: SyncQAConfig) -> list[str]:
    """QA flags of a measure under the thresholds (a missing measure is flagged: its sync is unknown)."""
    flags = []
    if m.conf is None or not math.isfinite(m.conf):
        if cfg.min_conf is not None or cfg.max_offset is not None:
            flags.append(f"sync: not measured ({m.note or 'no score'})")
        return flags
    if cfg.min_conf is not None and not m.conf >= cfg.min_conf:
        flags.append(f"sync_min_conf: SyncNet confidence {m.conf:.3g} < {cfg.min_conf:.3g}")
    if cfg.max_offset is not None and abs(m.offset) > cfg.max_offset:
        flags.append(f"sync_max_offset: |offset| {abs(m.offset)} > {cfg.max_offset} frames")
    return flags


def columns(m: SyncMeasure | None, shift: int, note: str | None) -> dict:
    """The clips-table sync columns."""
    if m is None:
        return {"sync_offset": None, "sync_conf": None, "sync_dist": None, "sync_windows": None,
                "sync_shift": None, "sync_note": note}
    return {"sync_offset": m.offset, "sync_conf": m.conf, "sync_dist": m.dist, "sync_windows": m.windows,
            "sync_shift": shift, "sync_note": m.note}


def manifest_entry(cfg: SyncQAConfig, unavailable: str | None) -> dict:
    """What the manifest says about sync QA: the scorer, or why the sync columns are null."""
    if cfg.scorer is None:
        return {"scorer": None, "reason": unavailable or "no sync scorer was given to prep.job.run_prep "
                "(talkbench prep passes SyncNet when syncnet_v2.model is found); sync_offset / sync_conf are null"}
    return {"scorer": cfg.scorer, "min_conf": cfg.min_conf, "max_offset": cfg.max_offset, "shift": cfg.shift,
            "max_windows": cfg.max_windows, "vshift": cfg.vshift,
            "convention": "offset > 0: audio ahead of video by that many frames; conf = LSE-C, dist = LSE-D"}


__all__ = ["SyncQAConfig", "SyncScorer", "SyncMeasure", "LazyCrops", "scorer_identity", "shifted_audio",
           "measure_clip", "sync_flags", "columns", "manifest_entry", "LATENTSYNC_MIN_CONF",
           "LATENTSYNC_MAX_OFFSET"]
