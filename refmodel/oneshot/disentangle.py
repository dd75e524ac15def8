"""Part 1, face-attribute disentangling: a fully-connected autoencoder that splits the 3DMM expression
coefficients into a **lip-motion code** and a **blink code** (DFA-NeRF's idea; our own implementation).

``encode(mm_exp) -> (lip (N, lip_dim), blink (N,))`` and ``decode(lip, blink) -> mm_exp``. Losses, on the
expression standardised by the training set's mean / std:

- reconstruction: MSE of the decoded expression;
- blink supervision: the blink code regresses the relative eye-aspect-ratio drop from the landmarks
  (:func:`refmodel.oneshot.features.blink_target`), weight ``blink_weight``;
- lip supervision: a linear head on the lip code regresses the standardised mouth shape from the
  landmarks (inner-lip gap, outer-lip height, width), weight ``mouth_weight``;
- disentangling: the squared batch correlation of every lip-code unit with the blink target, weight
  ``decorrelation_weight`` (the lip code must not carry the blink).

Pose never enters: the 3DMM fit already separates it (``mm_pose``).
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from .config import AEConfig

EXP_DIM = 10
MOUTH_DIM = 3


def _mlp(sizes: list[int]) -> nn.Sequential:
    layers = []
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
        layers.append(nn.Linear(a, b))
        if i < len(sizes) - 2:
            layers.append(nn.SiLU())
    return nn.Sequential(*layers)


class ExpressionAE(nn.Module):
    def __init__(self, cfg: AEConfig):
        super().__init__()
        self.cfg = cfg
        self.lip_dim = cfg.lip_dim
        self.enc = _mlp([EXP_DIM, cfg.hidden, cfg.hidden, cfg.lip_dim + 1])
        self.dec = _mlp([cfg.lip_dim + 1, cfg.hidden, cfg.hidden, EXP_DIM])
        self.mouth_head = nn.Linear(cfg.lip_dim, MOUTH_DIM)
        for name, dim in (("exp_mean", EXP_DIM), ("exp_std", EXP_DIM), ("mouth_mean", MOUTH_DIM), ("mouth_std", MOUTH_DIM)):
            self.register_buffer(name, torch.zeros(dim) if "mean" in name else torch.ones(dim))

    def set_statistics(self, exp: np.ndarray, mouth: np.ndarray) -> None:
        for name, x in (("exp", exp), ("mouth", mouth)):
            x = torch.as_tensor(np.asarray(x, np.float32))
            getattr(self, f"{name}_mean").copy_(x.mean(0))
            getattr(self, f"{name}_std").copy_(x.std(0).clamp_min(1e-4))

    def encode(self, exp: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        z = self.enc((exp - self.exp_mean) / self.exp_std)
        return z[:, :self.lip_dim], z[:, self.lip_dim]

    def decode(self, lip: torch.Tensor, blink: torch.Tensor) -> torch.Tensor:
        return self.dec(torch.cat([lip, blink[:, None]], 1)) * self.exp_std + self.exp_mean

    def mouth(self, lip: torch.Tensor) -> torch.Tensor:
        """The mouth shape the lip code implies (inner gap, outer height, width over interocular)."""
        return self.mouth_head(lip) * self.mouth_std + self.mouth_mean

    @torch.no_grad()
    def codes(self, exp: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """numpy (N, 10) → (lip (N, lip_dim), blink (N,)) float32."""
        lip, blink = self.encode(torch.as_tensor(np.asarray(exp, np.float32)))
        return lip.numpy(), blink.numpy()


def _corr2(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Squared Pearson correlation of each column of ``a`` (N, d) with ``b`` (N,), summed."""
    a = a - a.mean(0)
    b = b - b.mean()
    cov = (a * b[:, None]).mean(0)
    return (cov ** 2 / (a.var(0, unbiased=False) * b.var(unbiased=False) + 1e-6)).sum()


def ae_loss(model: ExpressionAE, exp, blink, mouth) -> dict:
    cfg = model.cfg
    lip, b = model.encode(exp)
    rec = model.decode(lip, b)
    terms = {"recon": F.mse_loss((rec - model.exp_mean) / model.exp_std, (exp - model.exp_mean) / model.exp_std),
             "blink": F.mse_loss(b, blink),
             "mouth": F.mse_loss(model.mouth_head(lip), (mouth - model.mouth_mean) / model.mouth_std),
             "decor": _corr2(lip, blink)}
    terms["total"] = (terms["recon"] + cfg.blink_weight * terms["blink"] + cfg.mouth_weight * terms["mouth"]
                      + cfg.decorrelation_weight * terms["decor"])
    return terms


def frame_table(series) -> dict[str, np.ndarray]:
    """Every valid frame of the clips: ``exp`` (N, 10), ``blink`` (N,), ``mouth`` (N, 3)."""
    exp = np.concatenate([s.mm_exp[s.valid] for s in series])
    blink = np.concatenate([s.blink[s.valid] for s in series])
    mouth = np.concatenate([s.mouth[s.valid] for s in series])
    return {"exp": exp.astype(np.float32), "blink": blink.astype(np.float32), "mouth": mouth.astype(np.float32)}


def make_stage(series, cfg: AEConfig, key: dict, device="cpu"):
    """The :class:`~refmodel.oneshot.stages.Stage` that trains the autoencoder on ``series``."""
    from .stages import Stage

    table = frame_table(series)
    model = ExpressionAE(cfg)
    model.set_statistics(table["exp"], table["mouth"])
    model.to(device)
    data = {k: torch.from_numpy(v).to(device) for k, v in table.items()}
    n = len(table["exp"])

    def loss(step, rng, gen):
        idx = torch.from_numpy(rng.integers(0, n, min(cfg.batch_size, n))).to(device)
        return ae_loss(model, data["exp"][idx], data["blink"][idx], data["mouth"][idx])

    return Stage("ae", model, cfg.steps, cfg.lr, loss, key, checkpoint_every=max(1, cfg.steps // 4))


def disentangling_report(model: ExpressionAE, series) -> dict:
    """How well the codes carry what they should: r(blink code, EAR drop), r(lip-code mouth head, inner-lip
    gap), and the largest |r| of a lip-code unit with the blink target, over the valid frames of ``series``."""
    t = frame_table(series)
    lip, blink = model.codes(t["exp"])
    with torch.no_grad():
        mouth = model.mouth(torch.from_numpy(lip)).numpy()

    def r(a, b):
        return float(np.corrcoef(a, b)[0, 1]) if np.std(a) > 0 and np.std(b) > 0 else float("nan")

    return {"frames": len(blink), "r_blink_ear_drop": r(blink, t["blink"]),
            "r_mouth_gap": r(mouth[:, 0], t["mouth"][:, 0]),
            "max_abs_r_lip_blink": float(max(abs(r(lip[:, k], t["blink"])) for k in range(lip.shape[1])))}


__all__ = ["ExpressionAE", "ae_loss", "make_stage", "frame_table", "disentangling_report", "EXP_DIM"]
