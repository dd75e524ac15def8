"""``fid_exp``: Fréchet distance between the 3DMM expression coefficients of the generated and the reference frames.

Each scored frame pair contributes the generated video's expression (``prep.threedmm.fit_clip`` on its own
landmarks, 10 coefficients) and the reference frame's (the shards' ``mm_exp``); both sets are pooled over all
scored videos and compared with the Fréchet distance of their Gaussians (:func:`evalkit.metrics.fid.frechet_distance`).
A model whose face does not move (or moves unlike the person) scores high. Needs the 3DDFA basis (weights
``3ddfa``) and shards prepped with the 3DMM fit.
"""
from __future__ import annotations

import numpy as np

from .base import MetricSpec, MetricValue
from .fid import FeatureMoments, frechet_distance

VERSION = "fid_exp-1"
DIM = 10


def _protocol(config) -> dict:
    from .head_motion import pose_source

    return {"version": VERSION, "fps": 25.0, "features": "3DMM expression coefficients (10, whitened basis of prep."
            "threedmm)", "generated": "prep.threedmm.fit_clip on the generated frames' dlib landmarks",
            "reference": "the reference shards' mm_exp", "frames": "frames with a reference face and both fits",
            "pooling": "all scored frames of all scored videos (one set per side)",
            "covariance": "unbiased (ddof 1), float64", "basis": pose_source().split(":")[0],
            "clips": f"reference clips of split {config.split!r}" if config.split else "every reference clip"}


class _Sets:
    def __init__(self):
        self.gen = FeatureMoments.empty(DIM)
        self.ref = FeatureMoments.empty(DIM)
        self.videos = 0


def _finish(acc, video) -> MetricValue:
    try:
        gen, ref = video.gen_mm_exp
    except ValueError as e:
        return MetricValue(None, reason=str(e))
    return MetricValue(None, frames=len(gen), state=(gen, ref))


def _merge(merged: _Sets, value: MetricValue) -> None:
    if value.reason is None and value.state is not None:
        gen, ref = value.state
        merged.gen = merged.gen.merge(FeatureMoments.from_features(gen))
        merged.ref = merged.ref.merge(FeatureMoments.from_features(ref))
        merged.videos += 1


def _distance(gen: FeatureMoments, ref: FeatureMoments) -> float:
    mu_g, s_g = gen.stats()
    mu_r, s_r = ref.stats()
    return frechet_distance(mu_r, s_r, mu_g, s_g)


def _summary(merged: _Sets, ctx) -> dict:
    if merged.videos == 0:
        return {"value": None, "stderr": None, "n": 0, "reason": "no video with both 3DMM fits"}
    try:
        value = _distance(merged.gen, merged.ref)
    except ValueError as e:
        return {"value": None, "stderr": None, "n": 0, "reason": str(e)}
    return {"value": max(0.0, value), "stderr": None, "n": merged.videos, "frames": merged.gen.n}


def _bootstrap(values, ctx, idx: np.ndarray) -> np.ndarray:
    gens = [FeatureMoments.from_features(v.state[0]) for v in values]
    refs = [FeatureMoments.from_features(v.state[1]) for v in values]
    out = []
    for row in idx:
        g, r = FeatureMoments.empty(DIM), FeatureMoments.empty(DIM)
        for i in row:
            g, r = g.merge(gens[i]), r.merge(refs[i])
        try:
            out.append(max(0.0, _distance(g, r)))
        except ValueError:
            out.append(np.nan)
    return np.asarray(out)


SPECS = (MetricSpec(name="fid_exp", label="FID-exp", version=VERSION, unit="", higher_is_better=False,
                    modes=("reconstruction", "cross"), needs=("gen_mm_exp",),
                    description="Fréchet distance of generated vs reference 3DMM expression coefficients",
                    protocol=_protocol, new=lambda config: None, finish=_finish, merge=_merge, summary=_summary,
                    new_merge=lambda config: _Sets(), weights=lambda config: ("3ddfa",), per_video_column=False,
                    decimals=3, valid_range=(0.0, None), order=74, bootstrap=_bootstrap),)
