"""Named configurations of the one-shot 3DMM model (``oneshot3dmm``): plain dataclasses, no torch import.

One dataclass per part (they are trained in this order, each its own resumable stage):

- :class:`AEConfig`      the fully-connected expression autoencoder (lip code + blink code)
- :class:`LipSyncConfig` the deterministic audio → lip-code model (InfoNCE with offset negatives + regression)
- :class:`MotionConfig`  the transformer VAE over pose + blink sequences
- :class:`RenderConfig`  the conditional DDPM renderer (source face + per-frame condition → face crop)

``tiny`` trains on 2 CPU cores inside 20 minutes (measured in ``refmodel/README.md``); ``base`` is sized for
one GPU (128 px renderer, wider networks, longer schedules; not measured here).
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields, replace


@dataclass(frozen=True)
class AEConfig:
    lip_dim: int = 6  # lip-motion code size (the blink code is one number)
    hidden: int = 64
    steps: int = 1500
    batch_size: int = 256
    lr: float = 3e-3
    blink_weight: float = 4.0  # blink code -> relative eye-aspect-ratio drop
    mouth_weight: float = 1.0  # lip code -> mouth shape from the landmarks (linear head)
    decorrelation_weight: float = 1.0  # squared correlation of each lip-code unit with the blink target
    open_quantile: float = 0.9  # the clip's open-eye EAR: this quantile of its EAR


@dataclass(frozen=True)
class LipSyncConfig:
    channels: int = 64
    dim: int = 64  # embedding size of the contrastive head
    window: int = 5  # frames predicted from one 16-step mel window (Wav2Lip / SyncNet pairing)
    temperature: float = 0.1
    num_offset_negatives: int = 8
    min_negative_offset: int = 2
    max_offset: int = 15
    regression_weight: float = 1.0  # L1 between predicted and true lip codes
    steps: int = 800
    batch_size: int = 64
    lr: float = 2e-3
    dropout: float = 0.1


@dataclass(frozen=True)
class MotionConfig:
    window: int = 64  # frames per training sequence (2.56 s)
    token_every: int = 8  # one latent token per this many frames
    z_dim: int = 4
    d_model: int = 64
    heads: int = 4
    layers: int = 2  # encoder and decoder each
    kl_weight: float = 0.02
    kl_warmup: int = 300  # steps of linear KL warm-up
    blink_weight: float = 4.0  # reconstruction weight of the blink channel (sparse events)
    velocity_weight: float = 1.0  # MSE on first differences: keeps blink edges sharp
    steps: int = 1000
    batch_size: int = 16
    lr: float = 2e-3
    dropout: float = 0.1


@dataclass(frozen=True)
class RenderConfig:
    image_size: int = 64
    patch: int = 2  # space-to-depth factor of the input (the UNet runs at image_size / patch): 2.6x faster
    base_channels: int = 32
    channel_mult: tuple = (1, 2, 4)
    num_res_blocks: int = 1
    attention_resolutions: tuple = ()  # (the middle block always attends)
    dropout: float = 0.0
    timesteps: int = 1000
    schedule: str = "cosine"
    sample_steps: int = 1
    sigma_data: float = 0.15  # std of the residual target - source (measured 0.15 on the demo data, 64 px)
    t_power: float = 3.0  # t = T * u^(1/t_power): > 1 trains the high-noise (few-step) end more
    eye_weight: float = 8.0  # loss weight on the eye regions (a blink is a few pixels at 64 px)
    mouth_weight: float = 3.0
    l1_weight: float = 1.0
    cond_noise: float = 0.05  # std of Gaussian noise on the condition codes during training
    steps: int = 2400
    batch_size: int = 10
    lr: float = 1e-3
    ema_decay: float = 0.995
    grad_clip: float = 1.0
    checkpoint_every: int = 200


@dataclass(frozen=True)
class OneShotConfig:
    name: str = "tiny"
    ae: AEConfig = field(default_factory=AEConfig)
    lipsync: LipSyncConfig = field(default_factory=LipSyncConfig)
    motion: MotionConfig = field(default_factory=MotionConfig)
    render: RenderConfig = field(default_factory=RenderConfig)
    train_splits: tuple = ("train", None)  # clips these splits train every stage (all clips when none is)
    max_cached_frames: int = 200_000  # renderer crops held in memory at image_size
    device: str = "auto"

    PARTS = ("ae", "lipsync", "motion", "render")

    def to_dict(self) -> dict:
        return asdict(self)

    def with_overrides(self, overrides: dict | None) -> "OneShotConfig":
        """A copy with top-level or dotted (``"render.steps"``) fields replaced."""
        cfg = self
        for key, value in (overrides or {}).items():
            if "." in key:
                part, sub = key.split(".", 1)
                if part not in self.PARTS:
                    raise ValueError(f"unknown config part {part!r} (one of {', '.join(self.PARTS)})")
                value = tuple(value) if isinstance(value, list) else value
                cfg = replace(cfg, **{part: replace(getattr(cfg, part), **{sub: value})})
            else:
                cfg = replace(cfg, **{key: tuple(value) if isinstance(value, list) else value})
        return cfg


_PART_CLASSES = {"ae": AEConfig, "lipsync": LipSyncConfig, "motion": MotionConfig, "render": RenderConfig}


def from_dict(d: dict) -> OneShotConfig:
    """Rebuild a config stored in a checkpoint (lists back to tuples)."""
    def build(cls, values):
        names = {f.name for f in fields(cls)}
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in (values or {}).items() if k in names})

    top = {k: (tuple(v) if isinstance(v, list) else v) for k, v in d.items() if k not in _PART_CLASSES}
    return OneShotConfig(**top, **{p: build(c, d.get(p)) for p, c in _PART_CLASSES.items()})


CONFIGS: dict[str, OneShotConfig] = {
    "tiny": OneShotConfig(),
    "base": OneShotConfig(
        name="base",
        ae=AEConfig(lip_dim=8, hidden=128, steps=5000),
        lipsync=LipSyncConfig(channels=128, dim=128, steps=20000, batch_size=256, lr=1e-3),
        motion=MotionConfig(window=200, token_every=8, z_dim=8, d_model=128, layers=4, steps=30000,
                            batch_size=64, lr=5e-4),
        render=RenderConfig(image_size=128, patch=1, base_channels=96, channel_mult=(1, 2, 2, 3, 4), num_res_blocks=2,
                            attention_resolutions=(16, 8), dropout=0.1, sample_steps=25, t_power=1.0,
                            steps=100000, batch_size=32, lr=1e-4, ema_decay=0.9999, checkpoint_every=2000),
    ),
}


def get_config(config: "str | OneShotConfig | dict", overrides: dict | None = None) -> OneShotConfig:
    """A named config (``tiny``/``base``), a config object or a stored dict, with optional overrides."""
    from ..config import named_config

    return named_config(config, OneShotConfig, CONFIGS, from_dict, overrides)


__all__ = ["AEConfig", "LipSyncConfig", "MotionConfig", "RenderConfig", "OneShotConfig", "CONFIGS",
           "get_config", "from_dict"]
