"""Motion statistics of one video from its own 68-point landmarks (and audio): no downloaded weights.

Every function takes the *generated* video's landmarks in its own pixel coordinates ((T, 68, 2), NaN rows
where no face), so each statistic is computable from the generated video alone:

- blinks: the eye aspect ratio (Soukupová & Čech 2016) ``EAR = (|p2−p6| + |p3−p5|) / (2 |p1−p4|)`` averaged
  over both eyes; a blink is a maximal run of frames whose EAR is below ``BLINK_THRESHOLD`` (0.75) × the
  video's median EAR (relative, so it does not depend on the person's eye shape);
- head pose: yaw / pitch / roll in degrees, from the 3DMM fit (``prep.threedmm.fit_clip``) when the 3DDFA basis
  is available, else from ``cv2.solvePnP`` of six landmarks on a generic 3-D face (:func:`landmark_head_pose`);
- mouth aperture: the mean of the three inner-lip gaps (61–67, 62–66, 63–65) over the outer-eye-corner distance
  (36–45); speech and silence from the audio's per-frame RMS relative to its 95th percentile.
"""
from __future__ import annotations

import numpy as np

from talkbase.timebase import FPS, SAMPLES_PER_FRAME

BLINK_THRESHOLD = 0.75  # × the video's median EAR
MIN_BLINK_VALID_S = 2.0  # seconds of frames with landmarks needed for a blink rate
SPEECH_LEVEL, SILENCE_LEVEL = 0.3, 0.1  # × the 95th-percentile frame RMS (≈ −10 dB / −20 dB)
MIN_STRETCH_FRAMES = 10  # frames of speech and of silence needed for lipleak
MOTION_EPS = 1e-3  # aperture units per frame added to the speech motion (a frozen mouth scores ~0, not 0/0)

# a generic 3-D face (mm): nose tip, chin, left / right outer eye corner, left / right mouth corner
_MODEL_POINTS = np.array([(0.0, 0.0, 0.0), (0.0, -330.0, -65.0), (-225.0, 170.0, -135.0), (225.0, 170.0, -135.0),
                          (-150.0, -150.0, -125.0), (150.0, -150.0, -125.0)])
_MODEL_INDEX = [30, 8, 36, 45, 48, 54]


def eye_aspect_ratio(lm: np.ndarray) -> np.ndarray:
    """(T,) mean EAR of both eyes (NaN where the frame has no landmarks)."""
    lm = np.asarray(lm, np.float64)

    def one(e):
        return (np.linalg.norm(e[:, 1] - e[:, 5], axis=-1) + np.linalg.norm(e[:, 2] - e[:, 4], axis=-1)) / \
            (2 * np.linalg.norm(e[:, 0] - e[:, 3], axis=-1))

    with np.errstate(invalid="ignore", divide="ignore"):
        return (one(lm[:, 36:42]) + one(lm[:, 42:48])) / 2


def blink_runs(ear: np.ndarray) -> list[tuple[int, int]]:
    """``[(first, last)]`` frames of each blink: maximal runs with EAR < threshold × median (NaN breaks a run)."""
    ear = np.asarray(ear, np.float64)
    ok = np.isfinite(ear)
    if not ok.any():
        return []
    low = ok & (ear < BLINK_THRESHOLD * np.median(ear[ok]))
    runs, start = [], None
    for i, b in enumerate(low):
        if b and start is None:
            start = i
        elif not b and start is not None:
            runs.append((start, i - 1))
            start = None
    if start is not None:
        runs.append((start, len(low) - 1))
    return runs


def blink_rate(lm: np.ndarray, fps: float = FPS) -> tuple[float | None, int, int]:
    """(blinks per minute, blinks, frames with landmarks); None below ``MIN_BLINK_VALID_S`` of landmarks."""
    ear = eye_aspect_ratio(lm)
    valid = int(np.isfinite(ear).sum())
    if valid < MIN_BLINK_VALID_S * fps:
        return None, 0, valid
    n = len(blink_runs(ear))
    return n / (valid / fps) * 60.0, n, valid


def landmark_head_rotation(lm: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """(T, 3, 3) head rotations from ``cv2.solvePnP`` (iterative, started from the previous frame's pose) of six
    landmarks on a generic face; a pinhole camera with focal length = image width, principal point at the
    centre. NaN where the frame has no landmarks."""
    import cv2

    w, h = size
    cam = np.array([[w, 0, w / 2], [0, w, h / 2], [0, 0, 1]], np.float64)
    out = np.full((len(lm), 3, 3), np.nan)
    rvec = tvec = None
    for t, pts in enumerate(np.asarray(lm, np.float64)):
        if not np.isfinite(pts).all():
            continue
        guess = rvec is not None
        ok, rvec2, tvec2 = cv2.solvePnP(_MODEL_POINTS, pts[_MODEL_INDEX], cam, np.zeros(4), rvec=rvec, tvec=tvec,
                                        useExtrinsicGuess=guess, flags=cv2.SOLVEPNP_ITERATIVE)
        if not ok:
            continue
        rvec, tvec = rvec2, tvec2
        out[t] = cv2.Rodrigues(rvec)[0]
    return out


def euler_rotation(angles_rad: np.ndarray) -> np.ndarray:
    """(T, 3, 3) ``Rz(roll) Ry(yaw) Rx(pitch)`` of (T, 3) yaw, pitch, roll (``prep.threedmm``'s convention)."""
    a = np.asarray(angles_rad, np.float64)
    cy, sy, cp, sp, cr, sr = np.cos(a[:, 0]), np.sin(a[:, 0]), np.cos(a[:, 1]), np.sin(a[:, 1]), np.cos(a[:, 2]), \
        np.sin(a[:, 2])
    z, o = np.zeros_like(cy), np.ones_like(cy)
    rx = np.stack([o, z, z, z, cp, -sp, z, sp, cp], 1).reshape(-1, 3, 3)
    ry = np.stack([cy, z, sy, z, o, z, -sy, z, cy], 1).reshape(-1, 3, 3)
    rz = np.stack([cr, -sr, z, sr, cr, z, z, z, o], 1).reshape(-1, 3, 3)
    return rz @ ry @ rx


def _geodesic_deg(r: np.ndarray) -> np.ndarray:
    """Rotation angle (degrees) of each (…, 3, 3) rotation."""
    tr = np.trace(r, axis1=-2, axis2=-1)
    return np.degrees(np.arccos(np.clip((tr - 1) / 2, -1.0, 1.0)))


def head_motion(rot: np.ndarray, fps: float = FPS) -> tuple[float | None, float | None, int]:
    """(mean head-rotation speed in deg/s: the angle of ``R_t R_{t−1}ᵀ`` over consecutive frames with a pose,
    spread: RMS angle in degrees from the video's mean rotation (chordal mean), frame pairs)."""
    r = np.asarray(rot, np.float64)
    ok = np.isfinite(r).all(axis=(1, 2))
    pairs = ok[1:] & ok[:-1]
    if pairs.sum() < 1:
        return None, None, 0
    rel = r[1:][pairs] @ np.swapaxes(r[:-1][pairs], 1, 2)
    speed = _geodesic_deg(rel) * fps
    u, _, vt = np.linalg.svd(r[ok].mean(axis=0))
    mean = u @ np.diag([1, 1, np.sign(np.linalg.det(u @ vt))]) @ vt
    spread = float(np.sqrt(np.mean(_geodesic_deg(r[ok] @ mean.T) ** 2)))
    return float(speed.mean()), spread, int(pairs.sum())


def mouth_aperture(lm: np.ndarray) -> np.ndarray:
    """(T,) inner-lip opening over the outer-eye-corner distance (NaN without landmarks)."""
    lm = np.asarray(lm, np.float64)
    gap = (np.linalg.norm(lm[:, 61] - lm[:, 67], axis=-1) + np.linalg.norm(lm[:, 62] - lm[:, 66], axis=-1)
           + np.linalg.norm(lm[:, 63] - lm[:, 65], axis=-1)) / 3
    with np.errstate(invalid="ignore", divide="ignore"):
        return gap / np.linalg.norm(lm[:, 36] - lm[:, 45], axis=-1)


def speech_frames(audio: np.ndarray, n_frames: int) -> tuple[np.ndarray, np.ndarray]:
    """(speech, silence) boolean masks over video frames from the per-frame RMS of 16 kHz audio."""
    a = np.zeros(n_frames * SAMPLES_PER_FRAME, np.float64)
    x = np.asarray(audio, np.float64).ravel()[:len(a)]
    a[:len(x)] = x
    rms = np.sqrt((a.reshape(n_frames, SAMPLES_PER_FRAME) ** 2).mean(axis=1))
    level = np.percentile(rms, 95) if n_frames else 0.0
    if level <= 0:
        return np.zeros(n_frames, bool), np.ones(n_frames, bool)
    return rms >= SPEECH_LEVEL * level, rms < SILENCE_LEVEL * level


def lipleak(lm: np.ndarray, audio: np.ndarray) -> tuple[float | None, dict]:
    """Mouth-aperture motion (mean |Δ aperture| per frame) in silent frames over that in speech frames
    (+ ``MOTION_EPS``); None with fewer than ``MIN_STRETCH_FRAMES`` of either."""
    ap = mouth_aperture(lm)
    n = len(ap)
    speech, silence = speech_frames(audio, n)
    motion = np.full(n, np.nan)
    motion[1:] = np.abs(ap[1:] - ap[:-1])
    ok = np.isfinite(motion)
    s_ok, q_ok = ok & speech, ok & silence
    info = {"lipleak_speech_frames": int(s_ok.sum()), "lipleak_silent_frames": int(q_ok.sum())}
    if s_ok.sum() < MIN_STRETCH_FRAMES or q_ok.sum() < MIN_STRETCH_FRAMES:
        return None, info
    sp, si = float(motion[s_ok].mean()), float(motion[q_ok].mean())
    info.update(lipleak_speech_motion=sp, lipleak_silent_motion=si)
    return si / (sp + MOTION_EPS), info


PROTOCOL = {"landmarks": "dlib 68-point landmarks of the generated frames from their own dlib HOG detection "
                         "(longest side downscaled to <= 720 px, the largest face), generated-frame pixels",
            "blink": f"runs of EAR < {BLINK_THRESHOLD} x the video's median EAR (both eyes averaged)",
            "blink_min_valid_s": MIN_BLINK_VALID_S,
            "speech": f"frame RMS >= {SPEECH_LEVEL} x its 95th percentile", "silence": f"< {SILENCE_LEVEL} x",
            "lipleak_min_frames": MIN_STRETCH_FRAMES, "motion_eps": MOTION_EPS,
            "landmark_pose": "cv2.solvePnP (iterative), 6 landmarks on a generic face, focal = width"}

__all__ = ["eye_aspect_ratio", "blink_runs", "blink_rate", "landmark_head_rotation", "euler_rotation", "head_motion", "mouth_aperture",
           "speech_frames", "lipleak", "PROTOCOL", "BLINK_THRESHOLD"]
