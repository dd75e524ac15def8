"""``lipleak``: how much the generated mouth moves while the audio is silent, relative to while it speaks.

Mouth aperture = inner-lip opening over the outer-eye-corner distance (generated landmarks); motion = mean
|Δ aperture| per frame; speech and silence from the audio's frame RMS (≥ 0.3 / < 0.1 × its 95th percentile).
``lipleak = silent motion / (speech motion + 0.001)``: a model whose lips keep moving through pauses leaks
(→ 1 or more); good lip sync stays low; a frozen mouth scores ~0 (see the ``lipleak_speech_motion`` column:
near zero for a frozen video, not for real speech). Videos with fewer than 10 frames of either are skipped.
"""
from __future__ import annotations

from . import _motion
from .base import base_protocol, video_value_spec

VERSION = "lipleak-1"


def _protocol(config) -> dict:
    p = _motion.PROTOCOL
    return {**base_protocol(VERSION, config), "statistic": "silent mouth motion / (speech mouth motion + eps)",
            "aperture": "mean inner-lip gap (61-67, 62-66, 63-65) / outer eye corners (36-45)",
            "speech": p["speech"], "silence": p["silence"], "min_frames": p["lipleak_min_frames"],
            "eps": p["motion_eps"], "landmarks": p["landmarks"], "audio": "the submitted video's audio at 16 kHz"}


def _value(video, config):
    v, info = _motion.lipleak(video.gen_landmarks_px, video.gen_audio)
    if v is None:
        return None, (f"fewer than {_motion.MIN_STRETCH_FRAMES} frames of speech ({info['lipleak_speech_frames']}) "
                      f"or of silence ({info['lipleak_silent_frames']}) with landmarks"), {}
    return v, None, {"lipleak_speech_motion": info["lipleak_speech_motion"],
                     "lipleak_silent_motion": info["lipleak_silent_motion"]}


SPECS = (video_value_spec(name="lipleak", label="LipLeak", version=VERSION, unit="", higher_is_better=False,
                          modes=("reconstruction", "cross", "reference-free"), needs=("gen_landmarks_px", "gen_audio"),
                          description="mouth motion during silence relative to speech (lower: lips rest in pauses)",
                          protocol=_protocol, value=_value,
                          columns=(("lipleak_speech_motion", "float64"), ("lipleak_silent_motion", "float64")),
                          valid_range=(0.0, None), order=73),)
