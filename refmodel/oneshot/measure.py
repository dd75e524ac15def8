"""What a generated talking video does, measured from the outside with dlib: the face, the mouth opening,
blinks and head motion. These are the acceptance measures of the one-shot model and its sample report.

- :func:`video_landmarks`: every 25 fps frame of a video through dlib's HOG detector (largest face) and
  68-point predictor (``prep.faces`` dlib backend); NaN rows where no face is found.
- mouth opening: :func:`refmodel.oneshot.features.mouth_opening` (inner-lip gap over the interocular).
- :func:`count_blinks`: eye-aspect-ratio dips — runs of frames whose EAR is below ``(1 - rel_drop)`` of the
  video's median EAR (eyes are open most of the time), runs closer than ``merge_gap`` frames merged.
- :func:`head_motion`: spread over frames of the face centre (eye midpoint, px and interocular units)
  and of the in-plane angle of the eye line (degrees).
"""
from __future__ import annotations

import numpy as np

from .features import eye_aspect_ratio, interocular, mouth_opening

BLINK_REL_DROP = 0.2
BLINK_MERGE_GAP = 3


def video_landmarks(path, scale: float = 1.0) -> tuple[np.ndarray, int]:
    """(landmarks (T, 68, 2) source px, NaN without a face; T) for every frame of ``path`` at 25 fps."""
    from prep.faces import get_backend
    from prep.media import iter_frames

    backend = get_backend("dlib")
    out = []
    for chunk in iter_frames(path):
        for frame in chunk.frames:
            boxes = backend.detect([frame], scale)[0]
            if not len(boxes):
                out.append(np.full((68, 2), np.nan))
                continue
            box = boxes[np.argmax((boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1]))]
            out.append(backend.landmarks([frame], box[None, :4])[0])
    lm = np.stack(out) if out else np.zeros((0, 68, 2))
    return lm, len(lm)


def count_blinks(ear: np.ndarray, rel_drop: float = BLINK_REL_DROP, merge_gap: int = BLINK_MERGE_GAP) -> list[int]:
    """Frames where a blink starts (see the module docstring); NaN frames count as open."""
    ear = np.asarray(ear, np.float64)
    ok = np.isfinite(ear)
    if not ok.any():
        return []
    low = np.where(ok, ear < (1.0 - rel_drop) * np.median(ear[ok]), False)
    starts, last_end = [], -10 ** 9
    for i in np.flatnonzero(low):
        if i - last_end > merge_gap and (i == 0 or not low[i - 1]):
            starts.append(int(i))
        if low[i]:
            last_end = i
    return starts


def head_motion(landmarks: np.ndarray) -> dict:
    """Spread of the face over frames: ``centre_std_px`` (RMS of the eye-midpoint's std in x and y),
    ``centre_std_io`` (the same in interocular units), ``angle_std_deg`` (eye-line angle)."""
    lm = np.asarray(landmarks, np.float64)
    ok = np.isfinite(lm).all(axis=(1, 2))
    if ok.sum() < 2:
        return {"centre_std_px": float("nan"), "centre_std_io": float("nan"), "angle_std_deg": float("nan")}
    lm = lm[ok]
    left, right = lm[:, 36:42].mean(1), lm[:, 42:48].mean(1)
    mid = (left + right) / 2
    d = right - left
    angle = np.degrees(np.arctan2(d[:, 1], d[:, 0]))
    spread = float(np.sqrt((mid.std(0) ** 2).sum()))
    return {"centre_std_px": spread, "centre_std_io": spread / float(np.median(interocular(lm))),
            "angle_std_deg": float(angle.std())}


def correlation(a, b) -> float:
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    n = min(len(a), len(b))
    a, b = a[:n], b[:n]
    ok = np.isfinite(a) & np.isfinite(b)
    if ok.sum() < 3 or np.std(a[ok]) == 0 or np.std(b[ok]) == 0:
        return float("nan")
    return float(np.corrcoef(a[ok], b[ok])[0, 1])


def correlation_interval(a, b, block: int = 25, n_boot: int = 2000, seed: int = 0, level: float = 0.95
                         ) -> tuple[float, float]:
    """Moving-block bootstrap interval of :func:`correlation` (blocks of ``block`` frames keep the frames'
    autocorrelation; ``n_boot`` resamples from ``seed``)."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    n = min(len(a), len(b))
    if n < 2 * block:
        return float("nan"), float("nan")
    rng = np.random.default_rng(seed)
    starts = rng.integers(0, n - block + 1, (n_boot, int(np.ceil(n / block))))
    idx = (starts[..., None] + np.arange(block)).reshape(n_boot, -1)[:, :n]
    rs = np.array([correlation(a[i], b[i]) for i in idx])
    rs = rs[np.isfinite(rs)]
    lo, hi = np.quantile(rs, [(1 - level) / 2, (1 + level) / 2]) if len(rs) else (np.nan, np.nan)
    return float(lo), float(hi)


def video_report(path, true_opening=None) -> dict:
    """Face fraction, per-frame mouth opening, blinks (and per 10 s), head motion of a video; with
    ``true_opening`` (per frame) also their correlation ``r_mouth``."""
    lm, n = video_landmarks(path)
    found = np.isfinite(lm).all(axis=(1, 2))
    opening = mouth_opening(lm)
    ear = eye_aspect_ratio(lm)
    blinks = count_blinks(ear)
    out = {"frames": int(n), "face_fraction": float(found.mean()) if n else 0.0,
           "mouth_opening": [None if not np.isfinite(v) else round(float(v), 4) for v in opening],
           "ear": [None if not np.isfinite(v) else round(float(v), 4) for v in ear],
           "blinks": blinks, "blinks_per_10s": 10.0 * len(blinks) / max(n / 25.0, 1e-9), **head_motion(lm)}
    if true_opening is not None:
        out["r_mouth"] = correlation(opening, true_opening)
        out["r_mouth_95ci"] = list(correlation_interval(opening, true_opening))
    return out


__all__ = ["video_landmarks", "count_blinks", "head_motion", "video_report", "correlation", "correlation_interval",
           "BLINK_REL_DROP"]
