"""The settings of one evaluation (``EvalConfig``) and what a submitted video may look like (``SubmissionLimits``).

Each metric builds its protocol dict from these settings and its own constants (``evalkit/metrics/``);
``protocol_hash`` over all of them goes into results.json, so results made under different settings are
never ranked together. Bump ``PROTOCOL_VERSION`` when anything shared by every metric changes.
"""
from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field, replace

PROTOCOL_VERSION = "evalkit-2.0"  # 2.0: protocols are built by each metric module from its own constants
MODES = ("reconstruction", "cross", "reference-free")  # reference-free: the video alone (evalkit.free)

REGIONS = ("aligned", "full")
LSE_CROPS = ("aligned", "syncnet-pipeline")
LSE_DETECTORS = ("dlib", "s3fd")  # face detector of the syncnet-pipeline crop
LMD_PRESETS = ("ratnerf", "atvgnet")
LPIPS_NETS = ("alex", "vgg")
SUBMISSION_KINDS = ("frames", "crops")
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
    max_files: int = 10_000  # reference-free mode: video files in one submission folder

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class EvalConfig:
    """Every setting of one evaluation; each active metric reads the fields it needs for its protocol."""

    mode: str = "reconstruction"
    metrics: tuple[str, ...] = ()  # canonical names (evalkit.metrics.select); empty: every metric of the mode
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
    cpbd_stride: int = 1  # CPBD on every k-th face frame
    lpips_net: str = "alex"  # LPIPS backbone: alex (torchvision AlexNet, the lpips default) or vgg (VGG16)
    lse_crop: str = "aligned"
    lse_detector: str = "dlib"  # syncnet-pipeline only: dlib (embedded) or s3fd (upstream's, sfd_face.pth)
    lse_preset: str = "fast"  # evalkit.lse_presets: which upstream script LSE reproduces ("fast": none, crops direct)
    lse_track_aggregation: str = "mean"  # tracked presets: "mean" over a video's face tracks or the "best" track
    ci_resamples: int = 1000  # bootstrap resamples over videos for every metric's ci95 (0: no intervals)
    ci_seed: int = 0
    chunk_size: int = 32  # frames decoded at a time per video
    allow_uncalibrated_fid: bool = False
    inception_seed: int = 0
    limits: SubmissionLimits = field(default_factory=SubmissionLimits)
    device: str = "cpu"  # where SyncNet / Inception / S3FD / the sync expert run ("cuda", "cuda:1", "mps")
    audio_check: bool = True  # a submission must carry the audio it claims (evalkit.audio_check)
    submission_kind: str = "frames"  # frames: full frames like the source; crops: the aligned face crops only

    def __post_init__(self):
        if self.mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, got {self.mode!r}")
        if self.region not in REGIONS:
            raise ValueError(f"crop/region must be one of {REGIONS}, got {self.region!r}")
        if self.lse_crop not in LSE_CROPS:
            raise ValueError(f"lse_crop must be one of {LSE_CROPS}, got {self.lse_crop!r}")
        if self.lse_detector not in LSE_DETECTORS:
            raise ValueError(f"lse_detector must be one of {LSE_DETECTORS}, got {self.lse_detector!r}")
        from .lse_presets import AGGREGATIONS, PRESETS

        if self.lse_preset not in PRESETS:
            raise ValueError(f"lse_preset must be one of {tuple(PRESETS)}, got {self.lse_preset!r}")
        if self.lse_preset != "fast" and (self.lse_crop != "aligned" or self.lse_detector != "dlib"):
            raise ValueError("lse_crop / lse_detector choose the fast preset's crop; the "
                             f"{self.lse_preset} preset fixes its own (leave them at their defaults)")
        if self.lse_track_aggregation not in AGGREGATIONS:
            raise ValueError(f"lse_track_aggregation must be one of {AGGREGATIONS}, got {self.lse_track_aggregation!r}")
        if int(self.ci_resamples) < 0:
            raise ValueError("ci_resamples must be >= 0")
        if self.lpips_net not in LPIPS_NETS:
            raise ValueError(f"lpips_net must be one of {LPIPS_NETS}, got {self.lpips_net!r}")
        if self.submission_kind not in SUBMISSION_KINDS:
            raise ValueError(f"submission_kind must be one of {SUBMISSION_KINDS}, got {self.submission_kind!r}")
        if self.submission_kind == "crops" and self.region == "full":
            raise ValueError("--crop full scores whole frames: an aligned-crop submission has none (use --crop aligned)")
        if self.lmd_preset not in LMD_PRESETS:
            raise ValueError(f"lmd_preset must be one of {LMD_PRESETS}, got {self.lmd_preset!r}")
        if not isinstance(self.device, str) or not re.fullmatch(r"cpu|mps|cuda(:\d+)?", self.device):
            raise ValueError(f"device must be cpu, cuda, cuda:N or mps, got {self.device!r}")
        for name in ("crop_size", "csim_stride", "fid_stride", "cpbd_stride", "chunk_size"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"{name} must be >= 1")

    def with_(self, **kw) -> "EvalConfig":
        return replace(self, **kw)

    def to_dict(self) -> dict:
        d = asdict(self)
        d["metrics"] = list(self.metrics)
        return d


def region_name(region: str) -> str:
    return "aligned_crop" if region == "aligned" else "full_frame"


__all__ = ["PROTOCOL_VERSION", "EvalConfig", "SubmissionLimits", "REGIONS", "LSE_CROPS", "LSE_DETECTORS",
           "LMD_PRESETS", "LPIPS_NETS", "MODES", "SUBMISSION_KINDS", "region_name"]
