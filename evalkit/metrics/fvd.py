"""FVD: Fréchet video distance between I3D features of generated and reference 16-frame clips.

The protocol drifts between papers (clip length, stride, resolution, which I3D); this one is fixed and
recorded: clips are the windows ``[16k, 16k + 16)`` of a video at 25 fps (hop 16, from frame 0; a partial
last window is dropped) of the scored region — the aligned face crop at ``crop_size`` (a window is used
only when all 16 frames have a reference face) or full frames with ``--crop full`` — each frame
preprocessed as StyleGAN-V's ``preprocess_single`` (shorter side bilinearly to 224, centre crop,
[-1, 1]; :func:`evalkit.nets.i3d.preprocess`) and the clip embedded by the TorchScript I3D
(``rescale=False, resize=False, return_features=True`` → 400-d). The reference set is the same windows of
the reference videos; both sets are pooled over all scored videos as float64 moments and compared with
the Fréchet distance FID uses (:func:`evalkit.metrics.fid.frechet_distance`). With fewer clips than 400
per side the covariances are rank-deficient and FVD is biased upwards: compare only at equal N.
"""
from __future__ import annotations

import numpy as np

from ..config import region_name
from ..geometry import CROP_PROTOCOL
from ..nets.i3d import DETECTOR_KWARGS, FEATURE_DIM, RESOLUTION
from .base import MetricSpec, MetricValue
from .fid import FeatureMoments, frechet_distance

VERSION = "fvd-1"
CLIP_LENGTH = 16
CLIP_HOP = 16  # = CLIP_LENGTH: windows do not overlap (a frame belongs to window index // CLIP_HOP)
assert CLIP_HOP == CLIP_LENGTH


def fvd(real_features, fake_features) -> float:
    """FVD of two (N, 400) feature sets (μ, unbiased Σ in float64; the Fréchet code of FID)."""
    mu1, s1 = FeatureMoments.from_features(real_features).stats()
    mu2, s2 = FeatureMoments.from_features(fake_features).stats()
    return frechet_distance(mu1, s1, mu2, s2)


class _VideoClips:
    """One video: frames of the open windows (by window index) and the features of the finished ones."""

    def __init__(self):
        self.open: dict[int, dict[int, tuple[np.ndarray, np.ndarray]]] = {}
        self.real: list[np.ndarray] = []
        self.fake: list[np.ndarray] = []


class _SetMoments:
    def __init__(self):
        self.real: FeatureMoments | None = None
        self.fake: FeatureMoments | None = None
        self.videos = 0


def _feed(acc: _VideoClips, chunk) -> None:
    import torch

    from ..nets.i3d import preprocess

    ref, gen, pos = chunk.fvd_frames
    for j, p in enumerate(pos):
        i = int(chunk.index[p])
        acc.open.setdefault(i // CLIP_HOP, {})[i % CLIP_HOP] = (ref[j], gen[j])
    end = int(chunk.index[-1]) + 1 if chunk.size else 0
    for w in sorted(acc.open):
        frames = acc.open[w]
        if len(frames) == CLIP_LENGTH:
            order = sorted(frames)
            clips = torch.stack([preprocess(np.stack([frames[k][side] for k in order])) for side in (0, 1)])
            f = chunk.i3d_features(clips)
            acc.real.append(f[:1])
            acc.fake.append(f[1:])
            del acc.open[w]
        elif (w + 1) * CLIP_HOP <= end:
            del acc.open[w]  # the window is over and incomplete (a frame without a face): not a clip


def _finish(acc: _VideoClips, video) -> MetricValue:
    acc.open.clear()
    if not acc.fake:
        return MetricValue(None, reason=f"no complete {CLIP_LENGTH}-frame clip (with a face on every frame)")
    real, fake = np.concatenate(acc.real), np.concatenate(acc.fake)
    return MetricValue(None, frames=len(fake) * CLIP_LENGTH, state=(real, fake), columns={"fvd_clips": int(len(fake))})


def _merge(merged: _SetMoments, value: MetricValue) -> None:
    if value.reason is None and value.state is not None:
        real, fake = (FeatureMoments.from_features(x) for x in value.state)
        merged.real = real if merged.real is None else merged.real.merge(real)
        merged.fake = fake if merged.fake is None else merged.fake.merge(fake)
        merged.videos += 1


def _summary(merged: _SetMoments, ctx) -> dict:
    if merged.fake is None:
        return {"value": None, "stderr": None, "n": 0, "reason": "no FVD clip"}
    try:
        mu1, s1 = merged.real.stats()
        mu2, s2 = merged.fake.stats()
    except ValueError as e:
        return {"value": None, "stderr": None, "n": 0, "reason": f"FVD: {e}"}
    n = merged.fake.n
    warning = (f"FVD from {n} clips a side (< {FEATURE_DIM}): covariances are rank-deficient and the value is "
               "biased; compare only at equal N") if n < FEATURE_DIM else None
    return {"value": frechet_distance(mu1, s1, mu2, s2), "stderr": None, "n": merged.videos,
            "frames": n * CLIP_LENGTH, "n_samples": n, "n_reference_samples": merged.real.n, "warning": warning}


def _protocol(config) -> dict:
    aligned = config.region == "aligned"
    return {"version": VERSION, "fps": 25.0, "clip_length": CLIP_LENGTH, "clip_hop": CLIP_HOP, "clip_start": 0,
            "clips": f"every window [{CLIP_HOP}k, {CLIP_HOP}k+{CLIP_LENGTH}) of the first min(generated, reference) "
                     "frames" + (" whose frames all have a reference face" if aligned else ""),
            "clips_per_video": "all", "region": region_name(config.region),
            **({**CROP_PROTOCOL, "crop_size": config.crop_size} if aligned else
               {"resize_to_reference": "generated frames resized to the reference size (bilinear)"}),
            "resolution": RESOLUTION, "preprocess": "StyleGAN-V preprocess_single: shorter side to 224 (bilinear, "
            "align_corners=False), centre crop, [0,1] -> [-1,1]", "color": "RGB",
            "network": "I3D Kinetics-400 TorchScript (StyleGAN-V i3d_torchscript.pt)", "detector_kwargs":
            dict(DETECTOR_KWARGS), "feature_dim": FEATURE_DIM, "reference_set": "the same windows of the reference "
            "videos", "pooling": "all clips of all scored videos (one set per side)",
            "covariance": "unbiased (ddof 1), float64 sums", "distance": "evalkit.metrics.fid.frechet_distance"}


SPECS = (MetricSpec(
    name="fvd", label="FVD", version=VERSION, unit="", higher_is_better=False, modes=("reconstruction", "cross"),
    needs=("fvd_frames", "i3d_features"),
    description="Fréchet video distance of generated to reference 16-frame clips (I3D features)",
    protocol=_protocol, new=lambda config: _VideoClips(), feed=_feed, finish=_finish, merge=_merge,
    summary=_summary, new_merge=lambda config: _SetMoments(), weights=lambda config: ("i3d",),
    per_video_column=False, columns=(("fvd_clips", "int32"),), decimals=2, valid_range=(0.0, None), order=45),)

__all__ = ["fvd", "CLIP_LENGTH", "CLIP_HOP", "SPECS"]
