"""``head_motion`` (mean head-rotation speed, deg/s) and ``head_motion_spread`` (RMS angle from the video's mean
head pose, deg) of the generated video.

The pose is the 3DMM fit of the generated frames' landmarks (``prep.threedmm.fit_clip``) when the 3DDFA basis
is present, else ``cv2.solvePnP`` of six landmarks on a generic face (noisier: landmark jitter adds speed);
the protocol says which. Speed is the angle of ``R_t R_{t−1}ᵀ`` times 25 fps, averaged over consecutive frames
with a pose. A frozen video scores ~0; real talking heads move. Statistics to compare with the ground-truth
row (``headline`` off).
"""
from __future__ import annotations

from . import _motion
from .base import base_protocol, video_value_spec

VERSION = "head_motion-1"


def basis_available() -> bool:
    """Whether the 3DDFA keypoint basis can be found (path / ``TALKBENCH_3DDFA_DIR`` / cache dir)."""
    from prep.threedmm import bfm_paths

    try:
        bfm_paths()
    except Exception:  # noqa: BLE001 - WeightsNotFound / mismatch: fall back to landmark pose
        return False
    return True


def pose_source() -> str:
    if basis_available():
        from prep.threedmm import SPEC

        return f"3dmm: prep.threedmm.fit_clip on the generated landmarks (3DDFA basis {SPEC.name})"
    return "landmarks: " + _motion.PROTOCOL["landmark_pose"] + " (the 3DDFA basis is absent)"


def _protocol_for(what: str):
    def protocol(config) -> dict:
        return {**base_protocol(VERSION, config), "statistic": what, "pose": pose_source(),
                "landmarks": _motion.PROTOCOL["landmarks"]}
    return protocol


def _value(index: int):
    def value(video, config):
        rot, source = video.gen_head_pose
        speed, spread, pairs = _motion.head_motion(rot)
        if speed is None:
            return None, "no two consecutive frames with a head pose", {}
        return (speed, spread)[index], None, {"head_pose_source": source, "_frames": pairs + 1}
    return value


_COLS = (("head_pose_source", "string"),)
SPECS = (
    video_value_spec(name="head_motion", label="Head speed", version=VERSION, unit="deg/s", higher_is_better=True,
                     modes=("reconstruction", "cross", "reference-free"), needs=("gen_head_pose",),
                     description="mean head-rotation speed of the generated video (compare with the ground truth)",
                     protocol=_protocol_for("mean angle of R_t R_(t-1)^T x 25 fps over consecutive frames"),
                     value=_value(0), columns=_COLS, valid_range=(0.0, None), decimals=2, headline=False, order=71),
    video_value_spec(name="head_motion_spread", label="Head pose spread", version=VERSION, unit="deg",
                     higher_is_better=True, modes=("reconstruction", "cross", "reference-free"), needs=("gen_head_pose",),
                     description="RMS head-rotation angle from the video's mean pose (compare with the ground truth)",
                     protocol=_protocol_for("RMS angle from the chordal mean rotation"), value=_value(1),
                     columns=_COLS, valid_range=(0.0, None), decimals=2, headline=False, order=72),
)
