"""``blink_rate``: blinks per minute of the generated video, from eye-aspect-ratio dips of its own landmarks.

A blink is a maximal run of frames whose mean eye aspect ratio is below 0.75 × the video's median
(:mod:`evalkit.metrics._motion`); the rate is blinks over the seconds that have landmarks. Real talking
people blink roughly 10–30 times a minute; a model that never closes the eyes scores 0. It is a statistic to
compare with the ground-truth row, not a score with a direction of its own (``headline`` off; higher counts
as better only because stiffness, not excess blinking, is the common failure).

Checked against a count made by looking at the frames (``tests/evalkit/test_motion_metrics.py``).
"""
from __future__ import annotations

from . import _motion
from .base import base_protocol, video_value_spec

VERSION = "blink_rate-1"


def _protocol(config) -> dict:
    return {**base_protocol(VERSION, config), "statistic": "blinks per minute of frames with landmarks",
            "ear": "(|p2-p6| + |p3-p5|) / (2 |p1-p4|), both eyes averaged", "blink": _motion.PROTOCOL["blink"],
            "landmarks": _motion.PROTOCOL["landmarks"], "min_valid_s": _motion.MIN_BLINK_VALID_S}


def _value(video, config):
    rate, n, valid = _motion.blink_rate(video.gen_landmarks_px)
    if rate is None:
        return None, f"fewer than {_motion.MIN_BLINK_VALID_S:g} s of frames with landmarks ({valid})", {}
    return rate, None, {"blinks": n, "_frames": valid}


SPECS = (video_value_spec(name="blink_rate", label="Blinks/min", version=VERSION, unit="1/min", higher_is_better=True,
                          modes=("reconstruction", "cross", "reference-free"), needs=("gen_landmarks_px",),
                          description="blinks per minute of the generated video (eye-aspect-ratio dips; compare "
                                      "with the ground truth)",
                          protocol=_protocol, value=_value, columns=(("blinks", "int32"),), valid_range=(0.0, None),
                          decimals=1, headline=False, order=70),)
