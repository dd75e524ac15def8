"""Does the generated mouth follow the audio? Mouth opening from dlib landmarks, and lip-sync statistics
with bootstrap intervals.

**Mouth opening** of a frame: the mean inner-lip gap of dlib's 68-point landmarks (pairs 61–67, 62–66,
63–65) divided by the interocular distance (eye centres 36–41 / 42–47), so it does not depend on the
face's size in the frame. :func:`video_mouth_opening` measures it on every frame of a video (an output
submission or a source clip: HOG detector on the full frame, largest face, NaN where none is found);
:func:`crop_mouth_opening` on aligned face crops (upscaled to 256 px, the box dlib finds there or the
template face box).

**Statistics** (:func:`lipsync_stats`) over clips, each a pair of per-frame series (generated opening,
true opening): the mean over clips of the per-clip Pearson r, and the amplitude ratio (std of the
generated opening / std of the true one, mean over clips). Intervals come from a moving-block bootstrap
inside each clip (:func:`block_bootstrap`): neighbouring frames are strongly correlated (a syllable lasts
~5 frames), so resampling single frames would understate the spread; blocks of ``BLOCK`` = 10 frames
(0.4 s, about two syllables) keep that dependence. Paired differences (true vs shuffled audio) resample
the same blocks for both sides.
"""
from __future__ import annotations

import logging
from typing import Callable, Sequence

import numpy as np

log = logging.getLogger(__name__)

INNER_LIP_PAIRS = ((61, 67), (62, 66), (63, 65))
BLOCK = 10  # frames per bootstrap block (0.4 s at 25 fps)
N_BOOT = 1000
LANDMARK_SIZE = 256  # crops are upscaled to this before dlib's predictor (its training scale)


def opening_from_landmarks(lm: np.ndarray) -> np.ndarray:
    """(N, 68, 2) landmarks → (N,) inner-lip gap / interocular distance (NaN where not finite)."""
    lm = np.asarray(lm, np.float64).reshape(-1, 68, 2)
    gap = np.mean([np.linalg.norm(lm[:, a] - lm[:, b], axis=1) for a, b in INNER_LIP_PAIRS], axis=0)
    iod = np.linalg.norm(lm[:, 42:48].mean(1) - lm[:, 36:42].mean(1), axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        out = gap / iod
    return np.where(np.isfinite(out) & (iod > 0), out, np.nan)


def _largest(boxes: np.ndarray) -> np.ndarray | None:
    if not len(boxes):
        return None
    return boxes[int(np.argmax((boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1]))), :4]


def frames_mouth_opening(frames, backend=None) -> np.ndarray:
    """Mouth opening of each full frame (N, H, W, 3) uint8: dlib HOG face box (largest face), 68
    landmarks; NaN where no face is found."""
    from prep.faces import get_backend

    backend = backend or get_backend("dlib")
    out = np.full(len(frames), np.nan)
    boxes = backend.detect(frames)
    for i, (frame, found) in enumerate(zip(frames, boxes)):
        box = _largest(found)
        if box is not None:
            out[i] = opening_from_landmarks(backend.landmarks([frame], box[None]))[0]
    return out


def video_mouth_opening(path, backend=None, stop: int | None = None) -> np.ndarray:
    """Mouth opening of every 25 fps frame of a video (see :func:`frames_mouth_opening`)."""
    from prep import media
    from prep.faces import get_backend

    backend = backend or get_backend("dlib")
    parts = [frames_mouth_opening(ch.frames, backend) for ch in media.iter_frames(path, stop=stop, chunk_size=32)]
    return np.concatenate(parts) if parts else np.zeros(0)


def crop_landmarks(crops: np.ndarray, backend=None) -> np.ndarray:
    """(N, 68, 2) dlib landmarks of aligned crops (N, S, S, 3), upscaled to ``LANDMARK_SIZE`` (landmarks in
    those pixels), in the box dlib's detector finds on each (the template face box when it finds none)."""
    from prep.faces import get_backend
    from prep.faces.align import template

    from .submission import upscale

    backend = backend or get_backend("dlib")
    if not len(crops):
        return np.zeros((0, 68, 2))
    big = np.stack([upscale(c, LANDMARK_SIZE) for c in crops])
    pts = template(LANDMARK_SIZE)
    fallback = np.array([pts[:, 0].min(), pts[17:27, 1].min(), pts[:, 0].max(), pts[:, 1].max()])
    boxes = np.stack([b if b is not None else fallback for b in map(_largest, backend.detect(big))])
    return backend.landmarks(big, boxes)


def crop_mouth_opening(crops: np.ndarray, backend=None) -> np.ndarray:
    """Mouth opening of aligned crops (see :func:`crop_landmarks`)."""
    return opening_from_landmarks(crop_landmarks(crops, backend))


# ------------------------------------------------------------------ statistics

def pearson(a, b) -> float:
    """Pearson r over the frames where both are finite (NaN with < 3 frames or a constant side)."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    ok = np.isfinite(a) & np.isfinite(b)
    if ok.sum() < 3:
        return float("nan")
    a, b = a[ok] - a[ok].mean(), b[ok] - b[ok].mean()
    den = np.sqrt((a * a).sum() * (b * b).sum())
    return float((a * b).sum() / den) if den > 1e-12 else 0.0


def amplitude_ratio(gen, true) -> float:
    """std of the generated series / std of the true one (over frames where both are finite)."""
    g, t = np.asarray(gen, np.float64), np.asarray(true, np.float64)
    ok = np.isfinite(g) & np.isfinite(t)
    if ok.sum() < 2 or np.std(t[ok]) <= 1e-12:
        return float("nan")
    return float(np.std(g[ok]) / np.std(t[ok]))


def block_indices(n: int, rng: np.random.Generator, block: int = BLOCK) -> np.ndarray:
    """Moving-block bootstrap resample of ``range(n)``: ceil(n / block) random blocks of ``block``
    consecutive indices, cut to ``n``."""
    if n <= block:
        return rng.integers(0, n, n)
    starts = rng.integers(0, n - block + 1, -(-n // block))
    return (starts[:, None] + np.arange(block)).ravel()[:n]


def block_bootstrap(clips: Sequence[tuple], stat: Callable[[list[tuple]], float], n_boot: int = N_BOOT,
                    seed: int = 0, block: int = BLOCK, level: float = 0.95) -> dict:
    """``stat`` over ``clips`` (each a tuple of equal-length per-frame arrays) and its bootstrap interval.

    Every replicate resamples blocks of frames inside each clip (the same indices for every array of a
    clip, so paired comparisons stay paired). Returns ``{"value", "lo", "hi", "level", "n_boot", "block"}``.
    """
    clips = [tuple(np.asarray(a) for a in c) for c in clips]
    value = float(stat(clips))
    rng = np.random.default_rng(seed)
    reps = []
    for _ in range(n_boot):
        sample = []
        for c in clips:
            idx = block_indices(len(c[0]), rng, block)
            sample.append(tuple(a[idx] for a in c))
        reps.append(stat(sample))
    reps = np.asarray(reps, np.float64)
    reps = reps[np.isfinite(reps)]
    q = (1 - level) / 2
    lo, hi = (np.quantile(reps, [q, 1 - q]) if len(reps) else (np.nan, np.nan))
    return {"value": value, "lo": float(lo), "hi": float(hi), "level": level, "n_boot": n_boot, "block": block}


def mean_r(clips: list[tuple]) -> float:
    """Mean over clips of Pearson r(first array, second array)."""
    rs = [pearson(c[0], c[1]) for c in clips]
    rs = [r for r in rs if np.isfinite(r)]
    return float(np.mean(rs)) if rs else float("nan")


def mean_amplitude(clips: list[tuple]) -> float:
    vals = [amplitude_ratio(c[0], c[1]) for c in clips]
    vals = [v for v in vals if np.isfinite(v)]
    return float(np.mean(vals)) if vals else float("nan")


def mean_diff(clips: list[tuple]) -> float:
    """Mean over all finite frames of (first − second)."""
    a = np.concatenate([c[0] for c in clips]).astype(np.float64)
    b = np.concatenate([c[1] for c in clips]).astype(np.float64)
    ok = np.isfinite(a) & np.isfinite(b)
    return float(np.mean(a[ok] - b[ok])) if ok.any() else float("nan")


def lipsync_stats(pairs: dict[str, tuple], seed: int = 0, n_boot: int = N_BOOT) -> dict:
    """Correlation and amplitude of generated vs true opening over clips ``{clip: (gen, true)}``, with
    block-bootstrap intervals: ``{"r": {...}, "amplitude": {...}, "clips": {clip: {r, amplitude, frames}}}``."""
    clips = [pairs[k] for k in sorted(pairs)]
    return {"r": block_bootstrap(clips, mean_r, n_boot, seed),
            "amplitude": block_bootstrap(clips, mean_amplitude, n_boot, seed),
            "clips": {k: {"r": pearson(*pairs[k]), "amplitude": amplitude_ratio(*pairs[k]),
                          "frames": int(len(pairs[k][0]))} for k in sorted(pairs)}}


def fmt_ci(d: dict, digits: int = 2) -> str:
    """``0.61 [0.52, 0.69]``."""
    return f"{d['value']:.{digits}f} [{d['lo']:.{digits}f}, {d['hi']:.{digits}f}]"


__all__ = ["opening_from_landmarks", "frames_mouth_opening", "video_mouth_opening", "crop_landmarks",
           "crop_mouth_opening", "pearson", "amplitude_ratio", "block_indices", "block_bootstrap", "mean_r",
           "mean_amplitude", "mean_diff", "lipsync_stats", "fmt_ci", "INNER_LIP_PAIRS", "BLOCK"]
