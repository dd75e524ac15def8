"""Configurations of the AttnWav2Lip reference model (plain dataclasses, stored in checkpoints).

``tiny`` trains on 2 CPU cores inside the 20-minute budget with its sync expert (measured in
refmodel/README.md). ``base`` is meant for one GPU: 128 px, 32 base channels, batch 32 windows × 5 frames,
60k steps (+20k sync-expert steps). Expected GPU time of ``base``: the generator costs 10.6 GFLOP per frame
forward (``torch.utils.flop_counter``), ~32 GFLOP forward + backward, 5.1 TFLOP per step of 160 frames,
0.3 EFLOP for 60k steps; with the sync expert and the perceptual network roughly 1.5–3 h on one
A100/H100-class GPU at a sustained 30–60 TFLOP/s (small convolutions reach less of the peak than the
diffusion UNet's). Not measured: no GPU was lent to this task.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field

from ..config import SyncConfig, apply_overrides, dataclass_from_dict, named_config

PERCEPTUAL = ("auto", "lpips", "msssim")


@dataclass(frozen=True)
class W2LModelConfig:
    image_size: int = 64
    base_channels: int = 16
    channel_mult: tuple = (1, 2, 4, 8, 8)  # encoder levels; every level after the first halves the side
    audio_channels: int = 32  # width of the temporal audio encoder (1-D convs; 2x this)
    audio_dim: int = 128
    cbam_reduction: int = 4  # channel-attention bottleneck ratio
    align_max_size: int = 16  # the semantic-alignment (AdaIN) modules act on feature maps up to this side


@dataclass(frozen=True)
class W2LConfig:
    name: str = "tiny"
    model: W2LModelConfig = field(default_factory=W2LModelConfig)
    sync: SyncConfig = field(default_factory=SyncConfig)
    window: int = 5  # frames per training sample (the sync loss sees 5-frame windows)
    batch_size: int = 4
    steps: int = 1500
    lr: float = 1e-3
    weight_decay: float = 0.0
    grad_clip: float = 1.0
    ema_decay: float = 0.995
    l1_weight: float = 1.0
    mouth_weight: float = 4.0  # extra L1 weight on the template mouth box
    sync_weight: float = 0.05
    perceptual: str = "auto"  # lpips (needs its weights) | msssim | auto (lpips when found, else msssim)
    perceptual_weight: float = 0.2
    ref_mouth_drop: float = 1.0  # as Diff2Lip's: 1.0 blanks the reference's lower half in training and sampling
    min_ref_gap: int = 5
    holdout_fraction: float = 0.2
    train_split: str | None = None
    shuffle_buffer: int = 512
    num_workers: int = 0
    checkpoint_every: int = 250
    log_every: int = 10
    device: str = "auto"

    def __post_init__(self):
        if self.perceptual not in PERCEPTUAL:
            raise ValueError(f"perceptual must be one of {PERCEPTUAL}, got {self.perceptual!r}")

    def to_dict(self) -> dict:
        return asdict(self)

    def with_overrides(self, overrides: dict | None) -> "W2LConfig":
        return apply_overrides(self, overrides)


CONFIGS: dict[str, W2LConfig] = {
    "tiny": W2LConfig(),
    "base": W2LConfig(
        name="base", model=W2LModelConfig(image_size=128, base_channels=32, channel_mult=(1, 2, 4, 8, 8, 8),
                                          audio_channels=64, audio_dim=256, align_max_size=32),
        sync=SyncConfig(image_size=128, dim=256, channels=64, batch_size=128, steps=20000, lr=5e-4),
        batch_size=32, steps=60000, lr=2e-4, ema_decay=0.999, sync_weight=0.1, shuffle_buffer=4096, num_workers=4,
        checkpoint_every=2000, log_every=50),
}


def get_config(config, overrides: dict | None = None) -> W2LConfig:
    """A named config (``tiny``/``base``), a config object or a stored dict, with optional overrides."""
    return named_config(config, W2LConfig, CONFIGS, lambda d: dataclass_from_dict(
        W2LConfig, d, {"model": W2LModelConfig, "sync": SyncConfig}), overrides)


__all__ = ["W2LModelConfig", "W2LConfig", "CONFIGS", "get_config", "PERCEPTUAL"]
