"""Named configurations of the Diff2Lip reference model. Plain dataclasses (no torch import), stored in
checkpoints.

``tiny`` trains on 2 CPU cores within 20 minutes (used by tests and the demo); ``base`` is meant for one
GPU. Expected training time of ``base`` (128×128, 60k steps at 16 windows × 5 frames): its UNet costs
112 GFLOP per frame forward (``torch.utils.flop_counter``), ~335 GFLOP forward + backward, 27 TFLOP per
step, 1.6 EFLOP for the 60k steps (the sync expert's 20k steps add a few %): roughly 5–10 h on one
A100/H100-class GPU at a sustained 50–100 TFLOP/s (bf16 / TF32). Not measured: no GPU was lent to this task.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields, replace


@dataclass(frozen=True)
class ModelConfig:
    image_size: int = 64  # side of the square face crop the model sees
    base_channels: int = 24
    channel_mult: tuple = (1, 2, 3, 4)
    num_res_blocks: int = 1
    attention_resolutions: tuple = (8,)  # feature-map sides with self-attention
    audio_channels: int = 32  # width of the first audio-encoder conv
    audio_dim: int = 128  # audio embedding size
    dropout: float = 0.0
    # "pooled": convs over (mel bins, time), global mean pool (where in the 0.2-s window a sound is, is
    # lost); "temporal": 1-D convs over time with the mel bins as channels, flattened (keeps 4 time steps)
    audio_encoder: str = "pooled"
    # "time": the audio embedding is added to the time embedding (one FiLM per block for both);
    # "film": its own scale/shift per block, applied after the time one (AdaIN-style, audio only)
    audio_path: str = "time"


@dataclass(frozen=True)
class DiffusionConfig:
    timesteps: int = 1000
    schedule: str = "cosine"  # cosine | linear
    sample_steps: int = 10  # DDIM steps at sampling time
    # what is diffused in the mouth region: "image" (Diff2Lip: the lower half itself) or "reference"
    # (the residual target − reference frame, so an untrained model already outputs the reference's
    # mouth and training only has to learn the audio-driven change; what makes a CPU-budget model usable)
    anchor: str = "image"
    # std of the diffused variable the preconditioning assumes (EDM's σ_data); 1.0 = plain v-prediction
    sigma_data: float = 1.0
    # training timesteps are drawn uniformly from [train_t_min, timesteps): match them to the sampler
    # (a 1-step DDIM sampler only ever evaluates t = T-1, so training the low-noise levels is wasted)
    train_t_min: int = 0
    # classifier-free guidance on the audio at sampling: x0 = x0(no audio) + guidance·(x0(audio) − x0(no
    # audio)); 1.0 = the plain conditional model (needs TrainConfig.audio_drop > 0 to mean anything else)
    guidance: float = 1.0


@dataclass(frozen=True)
class SyncConfig:
    """The sync expert: its architecture (``arch()``, an ``evalkit.nets.sync_expert.ExpertArch``: image_size,
    window, dim, channels, max_offset) and how it is trained (the other fields, ``training_dict()``)."""

    image_size: int = 64  # crops are resized to this; the expert looks at their lower half
    window: int = 5  # frames per mouth window (paired with one 16-step mel window)
    dim: int = 128  # embedding size
    channels: int = 32
    temperature: float = 0.07
    max_offset: int = 15  # offsets (frames) searched for the clip-level sync offset
    min_negative_offset: int = 2  # offset negatives are at least this far from the true alignment
    num_offset_negatives: int = 8
    batch_size: int = 64
    steps: int = 600
    lr: float = 1e-3
    weight_decay: float = 1e-4

    ARCH_FIELDS = ("image_size", "window", "dim", "channels", "max_offset")

    def arch(self):
        """The expert's architecture (``evalkit.nets.sync_expert.ExpertArch``; imports torch)."""
        from evalkit.nets.sync_expert import ExpertArch

        return ExpertArch(**{k: getattr(self, k) for k in self.ARCH_FIELDS})

    def training_dict(self) -> dict:
        """The training settings (stored beside the arch in the expert's checkpoint)."""
        return {k: v for k, v in asdict(self).items() if k not in self.ARCH_FIELDS}


@dataclass(frozen=True)
class TrainConfig:
    name: str = "tiny"
    model: ModelConfig = field(default_factory=ModelConfig)
    diffusion: DiffusionConfig = field(default_factory=DiffusionConfig)
    sync: SyncConfig = field(default_factory=SyncConfig)
    window: int = 5  # consecutive frames per training sample (the sync loss needs 5)
    batch_size: int = 4  # windows per step (batch_size * window frames)
    # with the 600-step sync expert inside the acceptance budget (20 min of 2 cores; refmodel/README.md):
    # 1500 steps cost 2803 CPU-s on 2026-12-01, over it; on the synthetic set r(opening) was 0.80 by then
    steps: int = 1200
    lr: float = 1e-3
    weight_decay: float = 0.0
    grad_clip: float = 1.0
    ema_decay: float = 0.995
    l1_weight: float = 1.0  # L1 on the predicted x0 (masked region)
    sync_weight: float = 0.05  # sync-expert loss on the predicted x0 (0 = no expert)
    min_ref_gap: int = 5  # reference frame at least this many frames from every target frame
    # probability of blanking the reference frame's lower half in training; 1.0 blanks it at sampling too
    # (no mouth to copy: the mouth must come from the audio, its texture from the upper face + identity)
    ref_mouth_drop: float = 0.0
    mouth_weight: float = 0.0  # extra loss weight on the template mouth box (the mouth is ~5 % of the crop)
    audio_drop: float = 0.0  # probability of training without audio (classifier-free guidance)
    sync_weighting: str = "abar"  # sync loss per window weighted by ᾱ_t ("abar") or not ("uniform")
    train_split: str | None = None  # train on clips of this split only (None: every clip)
    holdout_fraction: float = 0.2  # tail of every clip kept out of training (held-out frames)
    shuffle_buffer: int = 512
    num_workers: int = 0  # DataLoader workers
    checkpoint_every: int = 250
    log_every: int = 10
    device: str = "auto"  # auto | cpu | cuda

    def to_dict(self) -> dict:
        return asdict(self)

    def with_overrides(self, overrides: dict | None) -> "TrainConfig":
        """A copy with top-level or dotted (``"sync.steps"``) fields replaced."""
        return apply_overrides(self, overrides)


def apply_overrides(cfg, overrides: dict | None):
    """A copy of a (nested) config dataclass with top-level or dotted (``"sync.steps"``) fields replaced;
    an unknown field raises ``TypeError``."""
    for key, value in (overrides or {}).items():
        if "." in key:
            part, sub = key.split(".", 1)
            cfg = replace(cfg, **{part: replace(getattr(cfg, part), **{sub: value})})
        else:
            cfg = replace(cfg, **{key: value})
    return cfg


def dataclass_from_dict(cls, values: dict, nested: dict | None = None):
    """``cls`` from a stored dict: unknown keys dropped, missing ones default, lists back to tuples;
    ``nested`` maps field names to the dataclass their sub-dict is rebuilt as."""
    nested = nested or {}
    kw = {}
    for f in fields(cls):
        if f.name not in values:
            continue
        v = values[f.name]
        if f.name in nested:
            v = dataclass_from_dict(nested[f.name], v or {})
        kw[f.name] = tuple(v) if isinstance(v, list) else v
    return cls(**kw)


def from_dict(d: dict) -> TrainConfig:
    """Rebuild a config stored in a checkpoint (lists back to tuples)."""
    return dataclass_from_dict(TrainConfig, d, {"model": ModelConfig, "diffusion": DiffusionConfig,
                                                "sync": SyncConfig})


CONFIGS: dict[str, TrainConfig] = {
    # residual std measured on the shared clips' 64-px crops: 0.27 (the lower half itself: 0.39).
    # One DDIM step: after the CPU budget the low-noise denoiser is the weak part, and every extra step
    # adds error (held-out PSNR 17.7 / 16.6 / 16.0 dB at 1 / 4 / 10 steps; refmodel/README.md)
    "tiny": TrainConfig(diffusion=DiffusionConfig(anchor="reference", sigma_data=0.3, sample_steps=1)),
    "base": TrainConfig(
        name="base",
        model=ModelConfig(image_size=128, base_channels=96, channel_mult=(1, 2, 2, 3, 4), num_res_blocks=2,
                          attention_resolutions=(16, 8), audio_channels=64, audio_dim=256, dropout=0.1),
        diffusion=DiffusionConfig(timesteps=1000, schedule="cosine", sample_steps=25, anchor="image"),
        sync=SyncConfig(image_size=128, dim=256, channels=64, batch_size=128, steps=20000, lr=5e-4),
        batch_size=16, steps=60000, lr=1e-4, ema_decay=0.9999, sync_weight=0.1, shuffle_buffer=4096,
        num_workers=4, checkpoint_every=2000, log_every=50,
    ),
}


def named_config(config, cls, configs: dict, from_stored, overrides: dict | None = None):
    """``config`` as a ``cls``: a name in ``configs`` (``tiny``/``base``), a ``cls`` object, or a stored dict
    (rebuilt by ``from_stored``), with optional overrides (the config's own ``with_overrides``, else
    :func:`apply_overrides`). Every model's ``get_config`` is this with its own classes."""
    if isinstance(config, cls):
        cfg = config
    elif isinstance(config, dict):
        cfg = from_stored(config)
    elif config in configs:
        cfg = configs[config]
    else:
        raise ValueError(f"unknown config {config!r}; choose one of {sorted(configs)}")
    return cfg.with_overrides(overrides) if hasattr(cfg, "with_overrides") else apply_overrides(cfg, overrides)


def get_config(config: "str | TrainConfig | dict", overrides: dict | None = None) -> TrainConfig:
    """A named config (``tiny``/``base``), a config object or a stored dict, with optional overrides."""
    return named_config(config, TrainConfig, CONFIGS, from_dict, overrides)


__all__ = ["ModelConfig", "DiffusionConfig", "SyncConfig", "TrainConfig", "CONFIGS", "get_config", "from_dict",
           "apply_overrides", "dataclass_from_dict", "named_config"]
