"""In-domain sync: the mean similarity of 5-frame mouth windows with their audio under a sync expert trained
on benchmark-style data (:mod:`evalkit.nets.sync_expert`). It is what the offline demo can measure without
the official SyncNet weights; it is *not* LSE and is only comparable under the same expert (its sha256)."""
from __future__ import annotations

import math

from .base import base_protocol, video_value_spec

VERSION = "sync-inhouse-1"


def _protocol(config) -> dict:
    return {**base_protocol(VERSION, config), "domain": "in-domain (trained on benchmark-style data)",
         "frames": ("every frame" if config.mode == "reference-free" else "the first min(generated, reference) frames")
                   + " and their audio from the submitted video",
         "score": "mean cosine similarity at offset 0 over 5-frame windows with faces (clip_sync)",
         "model": "evalkit.nets.sync_expert", "inputs": "lower half of aligned crops + Wav2Lip mel windows",
         "crop_size": 224, "aggregation": "mean over videos"}


def _value(video, config):
    r = video.sync_expert
    if not math.isfinite(r["score"]):
        return None, "no complete 5-frame window with faces", {}
    return float(r["score"]), None, {"sync_inhouse_offset": int(r["offset"]),
                                     "sync_inhouse_confidence": float(r["confidence"]),
                                     "_frames": int(r["num_windows"])}


SPECS = (video_value_spec(
    name="sync_inhouse", label="Sync (in-domain)", version=VERSION, unit="cosine", higher_is_better=True,
    modes=("reconstruction", "cross", "reference-free"), needs=("gen_audio", "sync_expert"),
    description="in-domain sync expert: mean mouth/audio similarity at offset 0 (not LSE)", protocol=_protocol,
    value=_value, weights=lambda config: ("sync_expert",),
    columns=(("sync_inhouse_offset", "int32"), ("sync_inhouse_confidence", "float64")), valid_range=(-1.0, 1.0), order=70),)

__all__ = ["SPECS"]
