"""dlib-CSIM: identity cosine similarity with dlib's face-embedding ResNet (``dlib_face_recognition_resnet_model_v1``).

This is *not* the ArcFace CSIM many papers report: dlib's 128-d embedding is another network, so
dlib-CSIM numbers are only comparable with dlib-CSIM numbers. Each face is turned into an aligned
150 px chip by ``dlib.get_face_chip`` from the 68-point shape predictor's landmarks inside the given
face box (the reference box for both sides), embedded, and compared frame i to frame i.
"""
from __future__ import annotations

import logging
from functools import lru_cache

import numpy as np

from .base import VideoMeanMetric, base_protocol, frame_mean_spec

log = logging.getLogger(__name__)

EMBEDDING_MODEL = "dlib_face_recognition_resnet_model_v1.dat"
SHAPE_MODEL = "shape_predictor_68_face_landmarks.dat"
VERSION = "dlib-csim-1"


@lru_cache(maxsize=4)
def _dlib_models(shape_path: str, embed_path: str):
    import dlib

    return dlib.shape_predictor(shape_path), dlib.face_recognition_model_v1(embed_path)


def model_paths() -> dict[str, str]:
    """Paths of the embedded dlib models (from the face_recognition_models wheel)."""
    from talkbase.weights import dlib_model

    return {"shape_predictor": str(dlib_model(SHAPE_MODEL)), "embedding": str(dlib_model(EMBEDDING_MODEL))}


class DlibFaceEmbedder:
    """128-d dlib face embeddings of faces given by boxes (x0, y0, x1, y1 in frame pixels)."""

    def __init__(self, chip_size: int = 150, padding: float = 0.25, paths: dict | None = None):
        paths = paths or model_paths()
        self.chip_size = int(chip_size)
        self.padding = float(padding)
        self._sp, self._rec = _dlib_models(paths["shape_predictor"], paths["embedding"])

    def chips(self, frames, boxes) -> list:
        """Aligned face chips (``chip_size``² RGB uint8), None where the box is missing."""
        import dlib

        out = []
        for frame, box in zip(frames, boxes):
            if box is None or not np.all(np.isfinite(box)):
                out.append(None)
                continue
            img = np.ascontiguousarray(frame, dtype=np.uint8)
            x0, y0, x1, y1 = (int(round(float(v))) for v in box)
            shape = self._sp(img, dlib.rectangle(x0, y0, x1, y1))
            out.append(dlib.get_face_chip(img, shape, size=self.chip_size, padding=self.padding))
        return out

    def embed(self, frames, boxes) -> np.ndarray:
        """(N, 128) float64 embeddings; rows of NaN where there was no box."""
        chips = self.chips(frames, boxes)
        emb = np.full((len(chips), 128), np.nan)
        have = [i for i, c in enumerate(chips) if c is not None]
        if have:
            vecs = self._rec.compute_face_descriptor([chips[i] for i in have])
            for i, v in zip(have, vecs):
                emb[i] = np.asarray(v, dtype=np.float64)
        return emb


def cosine_similarity(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Row-wise cosine similarity of two (N, D) arrays (NaN where a row is missing or zero)."""
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    if a.shape != b.shape:
        raise ValueError(f"embedding arrays differ in shape: {a.shape} vs {b.shape}")
    na = np.linalg.norm(a, axis=-1)
    nb = np.linalg.norm(b, axis=-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.sum(a * b, axis=-1) / (na * nb)


def csim(ref_emb: np.ndarray, gen_emb: np.ndarray) -> float:
    """dlib-CSIM of one video from paired embeddings (functional twin of :class:`CSIM`)."""
    v = cosine_similarity(ref_emb, gen_emb)
    v = v[np.isfinite(v)]
    return float(v.mean()) if v.size else float("nan")


class CSIM(VideoMeanMetric):
    """dlib-CSIM over videos: ``update(ref_embeddings, gen_embeddings)``, ``end_video()`` per video."""

    higher_is_better = True

    def frame_values(self, ref_emb, gen_emb) -> np.ndarray:
        return cosine_similarity(ref_emb, gen_emb)


def _protocol(config) -> dict:
    return {**base_protocol(VERSION, config), "embedding": "dlib_face_recognition_resnet_model_v1 (128-d)",
            "not": "ArcFace; dlib-CSIM numbers are not comparable with ArcFace CSIM",
            "chip": {"size": config.csim_chip_size, "padding": config.csim_chip_padding,
                     "landmarks": "dlib 68-point shape predictor in the reference box"},
            "pairs": "generated frame i vs reference frame i", "frame_stride": config.csim_stride,
            "per_frame": "cosine similarity"}


def _feed(metric: CSIM, chunk) -> None:
    pos, ref_emb, gen_emb = chunk.embeddings  # only the strided frames count (skipped: those without a face)
    if len(pos):
        metric.update(ref_emb, gen_emb)


SPECS = (frame_mean_spec(
    name="csim", label="dlib-CSIM", version=VERSION, unit="cosine", higher_is_better=True,
    modes=("reconstruction", "cross"), needs=("embeddings",),
    description="identity cosine similarity of dlib face embeddings, generated vs reference frame",
    protocol=_protocol, new=lambda config: CSIM(), feed=_feed, weights=lambda config: ("dlib",), decimals=4,
    valid_range=(-1.0, 1.0), order=60),)

__all__ = ["CSIM", "csim", "cosine_similarity", "DlibFaceEmbedder", "model_paths", "EMBEDDING_MODEL", "SPECS"]
