"""What every evalkit number is made from: metric versions, the evaluation config, protocol dicts, regions.

A metric's *protocol* is the dict of every setting that changes its numerics (crop, size, colour, data
range, aggregation, weights). ``protocol_hash`` over all of them goes into results.json, so results made
under different settings are never ranked together. Bump ``PROTOCOL_VERSION`` when any numerics change.

Also here: the aligned-crop geometry shared by the pixel and landmark metrics. Cheap to import (numpy only).
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field, replace

import numpy as np

PROTOCOL_VERSION = "evalkit-1.0"

# name -> (version, unit, higher_is_better)
METRICS: dict[str, tuple[str, str, bool]] = {
    "psnr": ("psnr-1", "dB", True),
    "ssim": ("ssim-1", "", True),
    "lmd_mouth": ("lmd-1", "crop px", False),
    "lmd_face": ("lmd-1", "crop px", False),
    "fid": ("fid-1", "", False),
    "lse_d": ("lse-1", "", False),
    "lse_c": ("lse-1", "", True),
    "csim": ("dlib-csim-1", "cosine", True),
    "sync_inhouse": ("sync-inhouse-1", "", True),
}

# reconstruction: same audio as the reference, so frame-by-frame comparison is meaningful
MODE_METRICS = {
    "reconstruction": tuple(METRICS),
    "cross": ("fid", "lse_d", "lse_c", "csim", "sync_inhouse"),
}

REGIONS = ("aligned", "full")
LSE_CROPS = ("aligned", "syncnet-pipeline")
LSE_DETECTORS = ("dlib", "s3fd")  # face detector of the syncnet-pipeline crop
LMD_PRESETS = ("ratnerf", "atvgnet")
MOUTH = slice(48, 68)


@dataclass(frozen=True)
class SubmissionLimits:
    """What a submitted video may look like before it is decoded at all."""

    min_side: int = 32
    max_side: int = 4096
    max_pixels: int = 4096 * 2304
    max_duration_s: float = 600.0
    max_bytes: int = 4 << 30
    length_tolerance: int = 2  # frames at 25 fps, reconstruction mode
    min_frames: int = 5  # at 25 fps, any mode (one SyncNet window)

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class EvalConfig:
    """Every setting of one evaluation. ``protocols()`` derives the per-metric protocol dicts from it."""

    mode: str = "reconstruction"
    metrics: tuple[str, ...] = ()  # empty: every metric of the mode
    split: str | None = None  # score only reference clips of this split (None: every clip)
    region: str = "aligned"  # PSNR/SSIM and FID image set: aligned face crop or full frame
    crop_size: int = 256  # declared aligned-crop size (the reference affine is rescaled to it)
    psnr_cap_db: float = 100.0  # identical frames would give +inf
    ssim_kernel: int = 11
    ssim_sigma: float = 1.5
    lmd_preset: str = "ratnerf"
    csim_stride: int = 5  # embed every k-th frame (dlib's ResNet is ~80 ms/face on one core)
    csim_chip_size: int = 150
    csim_chip_padding: float = 0.25
    fid_stride: int = 1  # every k-th frame into FID ("pool over all frames" is 1)
    lse_crop: str = "aligned"
    lse_detector: str = "dlib"  # syncnet-pipeline only: dlib (embedded) or s3fd (upstream's, sfd_face.pth)
    chunk_size: int = 32  # frames decoded at a time per video
    allow_uncalibrated_fid: bool = False
    inception_seed: int = 0
    limits: SubmissionLimits = field(default_factory=SubmissionLimits)

    def __post_init__(self):
        if self.mode not in MODE_METRICS:
            raise ValueError(f"mode must be one of {sorted(MODE_METRICS)}, got {self.mode!r}")
        if self.region not in REGIONS:
            raise ValueError(f"crop/region must be one of {REGIONS}, got {self.region!r}")
        if self.lse_crop not in LSE_CROPS:
            raise ValueError(f"lse_crop must be one of {LSE_CROPS}, got {self.lse_crop!r}")
        if self.lse_detector not in LSE_DETECTORS:
            raise ValueError(f"lse_detector must be one of {LSE_DETECTORS}, got {self.lse_detector!r}")
        if self.lmd_preset not in LMD_PRESETS:
            raise ValueError(f"lmd_preset must be one of {LMD_PRESETS}, got {self.lmd_preset!r}")
        bad = [m for m in self.metrics if m not in METRICS]
        if bad:
            raise ValueError(f"unknown metrics {bad}; known: {sorted(METRICS)}")
        not_in_mode = [m for m in self.metrics if m not in MODE_METRICS[self.mode]]
        if not_in_mode:
            raise ValueError(f"metrics {not_in_mode} need the same audio as the reference; "
                             f"{self.mode} mode allows {list(MODE_METRICS[self.mode])}")
        for name in ("crop_size", "csim_stride", "fid_stride", "chunk_size"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"{name} must be >= 1")

    @property
    def active_metrics(self) -> tuple[str, ...]:
        """Requested metrics in canonical order (all of the mode's when none were named)."""
        wanted = set(self.metrics) if self.metrics else set(MODE_METRICS[self.mode])
        return tuple(m for m in METRICS if m in wanted)

    def with_(self, **kw) -> "EvalConfig":
        return replace(self, **kw)

    def to_dict(self) -> dict:
        d = asdict(self)
        d["metrics"] = list(self.active_metrics)
        return d


def region_name(region: str) -> str:
    return "aligned_crop" if region == "aligned" else "full_frame"


def metric_protocol(name: str, config: EvalConfig, weights: dict | None = None) -> dict:
    """The settings that determine metric ``name``'s numbers under ``config`` (goes into results.json).

    ``weights`` carries facts about the network a metric used (``sha256``, ``calibrated``, ``source``).
    """
    version = METRICS[name][0]
    base = {"version": version, "fps": 25.0, "frame_resampling": "timestamp (prep.media.iter_frames)",
            "frames": "the first min(generated, reference) frames at 25 fps",
            "aggregation": "mean over videos of the per-video mean over frames",
            "stderr": "std over videos (ddof=1) / sqrt(n)",
            "clips": f"reference clips of split {config.split!r}" if config.split else "every reference clip"}
    crop = {"crop_size": config.crop_size,
            "crop_warp": "reference frame's stored affine (rescaled to crop_size), bilinear, border "
                         "replicate, applied to reference and generated frames alike (generated frames of "
                         "another size: affine composed with the size ratio)"}
    if name in ("psnr", "ssim"):
        p = {**base, "region": region_name(config.region), "data_range": 255, "color": "RGB",
             "dtype": "uint8 -> " + ("float64" if name == "psnr" else "float32"),
             "implementation": "torchmetrics.functional.image"}
        if config.region == "aligned":
            p.update(crop)
        else:
            p["resize"] = "generated frame resized to the reference size (bilinear) when they differ"
        if name == "psnr":
            p.update(per_frame="10*log10(255^2 / MSE over H,W,C)", cap_db=config.psnr_cap_db)
        else:
            p.update(gaussian_kernel=True, kernel_size=config.ssim_kernel, sigma=config.ssim_sigma,
                     k1=0.01, k2=0.03, channels="mean over RGB", border="valid (kernel//2 cropped)")
        return p
    if name in ("lmd_mouth", "lmd_face"):
        preset = config.lmd_preset
        return {**base, **crop, "points": "48-67 (mouth)" if name == "lmd_mouth" else "0-67 (face)",
                "preset": preset,
                "per_frame": ("mean over points of |(g - mean g) - (r - mean r)|" if preset == "ratnerf"
                              else "sum over points of |(g - mean g) - (r - mean r)|"),
                "centring": "each landmark set minus its own mean over the scored points",
                "landmarks": "dlib 68-point shape predictor on reference and generated frames, "
                             "given the reference face box",
                "units": f"pixels of a {config.crop_size} px aligned crop"}
    if name == "csim":
        return {**base, "embedding": "dlib_face_recognition_resnet_model_v1 (128-d)",
                "not": "ArcFace; dlib-CSIM numbers are not comparable with ArcFace CSIM",
                "chip": {"size": config.csim_chip_size, "padding": config.csim_chip_padding,
                         "landmarks": "dlib 68-point shape predictor in the reference box"},
                "pairs": "generated frame i vs reference frame i", "frame_stride": config.csim_stride,
                "per_frame": "cosine similarity", "weights": weights or {}}
    if name == "fid":
        return {"version": version, "fps": 25.0, "image_set": region_name(config.region),
                "frames": "every frame_stride-th frame (with a reference face, for aligned crops) of the first "
                          "min(generated, reference) frames",
                **(crop if config.region == "aligned" else {}),
                "network": "InceptionV3 pool3 2048-d (pytorch-fid layout)",
                "resize": "bilinear to 299x299", "scaling": "[0,1] -> [-1,1]", "color": "RGB",
                "pooling": "all frames of all scored videos (one set)", "frame_stride": config.fid_stride,
                "reference_set": "every face frame of every reference clip",
                "sqrtm": "eigendecomposition of the symmetric product", "weights": weights or {}}
    if name in ("lse_d", "lse_c"):
        crop_how = ("reference affine warped straight to 224x224 (nearest face frame's affine where the "
                    "reference has no face), RGB->BGR" if config.lse_crop == "aligned" else
                    "syncnet_python run_pipeline tracked crop (dlib boxes, 1.4x square, median filter 13), "
                    "longest track, detection on every frame at full resolution" if config.lse_detector == "dlib" else
                    "syncnet_python run_pipeline tracked crop (S3FD sfd_face.pth boxes at scale 0.25, confidence "
                    ">= 0.9, 1.4x square, median filter 13), longest track, detection on every frame")
        return {"version": version, "fps": 25.0, "frames": "the first min(generated, reference) frames and "
                "their audio from the submitted video", "crop": config.lse_crop, "crop_how": crop_how, "crop_size": 224,
                **({"detector": config.lse_detector} if config.lse_crop == "syncnet-pipeline" else {}),
                "color": "BGR 0-255", "window": 5, "mfcc": "python_speech_features, int16, 20 steps/window",
                "offsets": "-15..15, zero padded", "lse_d": "min over offsets of mean distance",
                "lse_c": "median - min of the mean distances",
                "aggregation": "mean over videos", "weights": weights or {}}
    if name == "sync_inhouse":
        return {"version": version, "fps": 25.0, "domain": "in-domain (trained on benchmark-style data)",
                "frames": "the first min(generated, reference) frames and their audio from the submitted video",
                "score": "mean cosine similarity at offset 0 over 5-frame windows with faces (clip_sync)",
                "model": "refmodel.sync_expert", "inputs": "lower half of aligned crops + Wav2Lip mel windows",
                "crop_size": config.crop_size, "aggregation": "mean over videos", "weights": weights or {}}
    raise KeyError(name)


def canonical_json(obj) -> bytes:
    """Sorted-key compact JSON: the byte string that protocol hashes are taken over."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=True, allow_nan=False).encode()


def protocol_hash(protocols: dict[str, dict]) -> str:
    """sha256 of the canonical JSON of ``{metric name: protocol dict}``."""
    return hashlib.sha256(canonical_json(protocols)).hexdigest()


# ---------------------------------------------------------------- aligned-crop geometry

def affine_matrix(values) -> np.ndarray:
    """Stored 6 floats (2x3 row-major, source px -> crop px) as a float64 (2, 3) matrix."""
    return np.asarray(values, dtype=np.float64).reshape(2, 3)


def rescale_affine(affine: np.ndarray, out_scale: float = 1.0, src_scale=(1.0, 1.0)) -> np.ndarray:
    """Affine for a crop ``out_scale`` times larger, taking a source ``src_scale`` (sx, sy) times smaller.

    ``src_scale`` maps the generated frame's pixels to the reference frame's (``ref_w / gen_w``, ...),
    so the reference affine can be applied to a generated video of another resolution.
    """
    a = np.asarray(affine, dtype=np.float64).reshape(2, 3)
    m = np.vstack([a, [0.0, 0.0, 1.0]])
    pre = np.diag([float(src_scale[0]), float(src_scale[1]), 1.0])
    post = np.diag([float(out_scale), float(out_scale), 1.0])
    return (post @ m @ pre)[:2]


def transform_points(points: np.ndarray, affine: np.ndarray) -> np.ndarray:
    """(…, 2) points through a (2, 3) affine."""
    a = np.asarray(affine, dtype=np.float64)
    p = np.asarray(points, dtype=np.float64)
    return p @ a[:, :2].T + a[:, 2]


def warp_region(frame: np.ndarray, affine: np.ndarray, size: int) -> np.ndarray:
    """The aligned crop of ``frame`` under ``affine`` (prep's own warp, so crops match the shards)."""
    from prep.faces.align import warp_crop

    return warp_crop(frame, np.asarray(affine, dtype=np.float64).reshape(2, 3), int(size))


__all__ = ["PROTOCOL_VERSION", "METRICS", "MODE_METRICS", "EvalConfig", "SubmissionLimits",
           "metric_protocol", "protocol_hash", "canonical_json", "affine_matrix", "rescale_affine",
           "transform_points", "warp_region", "region_name"]
