"""ArcFace-CSIM: identity cosine similarity under InsightFace's ArcFace (buffalo_l ``w600k_r50.onnx``).

The CSIM most talking-face papers report. Each face is aligned as InsightFace aligns it (five key points —
eye centres, nose tip, mouth corners — from our 68 landmarks, similarity onto ``arcface_dst``, 112×112;
:mod:`evalkit.nets.arcface`), embedded, and generated frame i is compared with reference frame i (every
``csim_stride``-th face frame). dlib-CSIM (:mod:`evalkit.metrics.csim`) stays the embedded default; the
two are different networks and their numbers are not comparable.
"""
from __future__ import annotations

from ..nets.arcface import ARCFACE_DST, FIVE_POINTS, SIZE
from .base import base_protocol, frame_mean_spec
from .csim import CSIM, csim

VERSION = "arcface-csim-1"


def _protocol(config) -> dict:
    return {**base_protocol(VERSION, config), "embedding": "InsightFace ArcFace ONNX (buffalo_l w600k_r50, 512-d)",
            "not": "dlib; ArcFace-CSIM numbers are not comparable with dlib-CSIM",
            "alignment": {"points": FIVE_POINTS, "template": ARCFACE_DST.round(4).tolist(), "size": SIZE,
                          "transform": "Umeyama similarity (skimage SimilarityTransform.estimate)",
                          "warp": "cv2.warpAffine bilinear, border 0 (insightface norm_crop)",
                          "landmarks": "dlib 68-point shape predictor in the reference box, both sides"},
            "input": "RGB, (x - mean) / std with InsightFace's rule (127.5 / 127.5 unless the graph normalises)",
            "runtime": "onnxruntime CPUExecutionProvider, 1 thread",
            "pairs": "generated frame i vs reference frame i", "frame_stride": config.csim_stride,
            "per_frame": "cosine similarity"}


def _feed(metric: CSIM, chunk) -> None:
    pos, ref_emb, gen_emb = chunk.arcface_embeddings
    if len(pos):
        metric.update(ref_emb, gen_emb)


SPECS = (frame_mean_spec(
    name="csim_arcface", label="ArcFace-CSIM", version=VERSION, unit="cosine", higher_is_better=True,
    modes=("reconstruction", "cross"), needs=("arcface_embeddings",),
    description="identity cosine similarity of ArcFace (InsightFace w600k_r50) embeddings, generated vs reference",
    protocol=_protocol, new=lambda config: CSIM(), feed=_feed, weights=lambda config: ("arcface", "dlib"), decimals=4,
    valid_range=(-1.0, 1.0), order=61),)

__all__ = ["SPECS", "csim"]
