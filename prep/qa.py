"""Per-clip quality measures and the ``--filter`` rules that mark (never drop) clips."""
from __future__ import annotations

import math

import numpy as np

from .config import QAFilters


def mouth_region(crop: np.ndarray) -> np.ndarray:
    """Lower-middle of an aligned crop (rows 55–95 %, columns 25–75 %): where the mouth sits in the template."""
    s = crop.shape[0]
    return crop[int(0.55 * s):int(0.95 * s), int(0.25 * s):int(0.75 * s)]


def blur_score(crop: np.ndarray) -> float:
    """Variance of the Laplacian of the mouth region's grey levels (higher = sharper), at 256-px scale."""
    import cv2

    region = mouth_region(crop)
    grey = cv2.cvtColor(np.ascontiguousarray(region), cv2.COLOR_RGB2GRAY)
    scale = 256.0 / crop.shape[0]
    if scale != 1.0:  # make the score comparable across crop sizes
        grey = cv2.resize(grey, None, fx=scale, fy=scale, interpolation=cv2.INTER_LINEAR)
    return float(cv2.Laplacian(grey, cv2.CV_64F, ksize=3).var())


def loudness_db(wav: np.ndarray) -> float:
    """RMS level in dBFS (full-scale sine ≈ −3 dB; digital silence → −120)."""
    rms = float(np.sqrt(np.mean(np.square(wav, dtype=np.float64)))) if len(wav) else 0.0
    return max(-120.0, 20.0 * math.log10(rms + 1e-12))


def _nan(x) -> float:
    return float("nan") if x is None else float(x)


def apply_filters(qa: dict, filters: QAFilters) -> tuple[list[str], bool]:
    """Reasons this clip fails the thresholds (``qa_flags``) and whether it passes (``qa_pass``)."""
    flags = []

    def below(name, value, threshold, what):
        if threshold is not None and not (value >= threshold):  # NaN fails too
            flags.append(f"{name}: {what} {value:.3g} < {threshold:.3g}")

    def above(name, value, threshold, what):
        if threshold is not None and not (value <= threshold):
            flags.append(f"{name}: {what} {value:.3g} > {threshold:.3g}")

    below("min_face_fraction", _nan(qa.get("qa_face_fraction")), filters.min_face_fraction, "face fraction")
    below("min_face_size", _nan(qa.get("qa_face_size")), filters.min_face_size, "face size px")
    above("max_jitter", _nan(qa.get("qa_jitter")), filters.max_jitter, "landmark jitter")
    below("min_blur", _nan(qa.get("qa_blur")), filters.min_blur, "mouth sharpness")
    below("min_loudness_db", _nan(qa.get("qa_loudness_db")), filters.min_loudness_db, "loudness dBFS")
    above("max_fit_residual", _nan(qa.get("qa_fit_residual")), filters.max_fit_residual, "3DMM residual px")
    below("min_audio_coverage", _nan(qa.get("qa_audio_coverage")), filters.min_audio_coverage,
          "fraction of the clip with real audio (the rest is zero padding)")
    above("max_num_faces", _nan(qa.get("qa_num_faces")), filters.max_num_faces, "faces seen in one frame")
    return flags, not flags


__all__ = ["blur_score", "loudness_db", "apply_filters", "mouth_region"]
