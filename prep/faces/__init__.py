"""Faces: detection, landmark tracking, smoothing, aligned crops and 3DMM coefficients per frame.

``FaceTracker(config).process(chunk)`` gives the face columns of ``prep.schema.FRAMES_SCHEMA`` for a
stream of frames; ``process_frames(frames, config)`` does a whole clip, including the 3DMM fit
(:mod:`prep.threedmm`) and the clip-level checks. Heavy libraries (dlib, cv2, torch) load on first use.
"""
from . import align
from .backends import get_backend
from .config import FaceConfig
from .pipeline import clip_checks, fit_rows, process_frames
from .smoothing import OneEuroFilter, jitter
from .tracking import FaceTracker

__all__ = ["FaceConfig", "FaceTracker", "get_backend", "process_frames", "fit_rows", "clip_checks", "align",
           "OneEuroFilter", "jitter"]
