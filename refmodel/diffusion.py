"""Conditional DDPM that inpaints the lower half of the aligned face crop (the Diff2Lip formulation).

Only the masked region is diffused: ``x_t = (sqrt(ᾱ_t) x_0 + sqrt(1-ᾱ_t) ε) · M`` with ``M`` the lower-half
mask; the upper half reaches the network as the *masked frame* channel instead, beside a *reference*
frame of the same person. The model predicts ε and is trained with ε-MSE (on ``M`` only). From ε the x0
estimate ``(x_t - sqrt(1-ᾱ_t) ε̂) / sqrt(ᾱ_t)`` feeds an L1 reconstruction term and the sync-expert term.

Preconditioning (EDM's, in VP form, with ``σ_d = DiffusionConfig.sigma_data`` and
``D = 1 − ᾱ + ᾱ σ_d²``): the UNet output ``F`` gives ``x̂0 = σ_d² sqrt(ᾱ)/D · x_t − σ_d sqrt(1−ᾱ)/sqrt(D) · F``
and ``ε̂ = sqrt(1−ᾱ)/D · x_t + σ_d sqrt(ᾱ)/sqrt(D) · F``. With ``σ_d = 1`` this is v-prediction
(``ε̂ = sqrt(1-ᾱ) x_t + sqrt(ᾱ) F``). At high noise ε̂ → x_t and the x0 estimate becomes a direct
regression ``−σ_d F`` instead of an ε error amplified by ``sqrt((1-ᾱ)/ᾱ)`` — what makes few-step DDIM
usable after a short CPU training run — and ``F = 0`` is the Gaussian (Wiener) denoiser of data with
std ``σ_d``, so a zero-initialised network starts from a sensible estimate.
Sampling is deterministic DDIM (η = 0) over a few evenly spaced steps, starting from noise the caller
passes in (the sampler of a video uses the same noise for every frame, which keeps the mouth stable).

Anchor (``DiffusionConfig.anchor``): ``"image"`` diffuses the lower half itself (Diff2Lip);
``"reference"`` diffuses the residual ``x0 − reference`` on the mask (with a σ_d matched to its smaller
spread), so the zero-initialised network starts out near the reference frame's mouth and learns the
audio-driven change from there. The network's inputs are the same either way; only the diffused
variable (and hence the x0 estimate, ``reference + residual``) differs.
"""
from __future__ import annotations

import math

import numpy as np
import torch

from .config import DiffusionConfig


def beta_schedule(name: str, timesteps: int) -> np.ndarray:
    """Betas of the ``linear`` (Ho et al.) or ``cosine`` (Nichol & Dhariwal) schedule, float64."""
    if name == "linear":
        scale = 1000.0 / timesteps
        return np.linspace(scale * 1e-4, scale * 0.02, timesteps, dtype=np.float64)
    if name == "cosine":
        def abar(s):
            return math.cos((s + 0.008) / 1.008 * math.pi / 2) ** 2
        return np.array([min(1 - abar((i + 1) / timesteps) / abar(i / timesteps), 0.999)
                         for i in range(timesteps)], np.float64)
    raise ValueError(f"unknown schedule {name!r} (linear or cosine)")


def to_model_range(x_uint8: torch.Tensor) -> torch.Tensor:
    """uint8 [0, 255] → float [-1, 1]."""
    return x_uint8.float().div(127.5).sub(1.0)


def to_uint8(x: torch.Tensor) -> torch.Tensor:
    """float [-1, 1] → uint8 [0, 255] (rounded, clamped)."""
    return x.add(1.0).mul(127.5).round().clamp(0, 255).to(torch.uint8)


def mouth_mask(size: int, device=None) -> torch.Tensor:
    """(1, 1, S, S) float: 1 on the lower half that is generated."""
    m = torch.zeros(1, 1, size, size, device=device)
    m[..., size // 2:, :] = 1.0
    return m


class MaskedDiffusion:
    """Schedule + training loss terms + DDIM sampler for the masked-region model."""

    def __init__(self, cfg: DiffusionConfig):
        self.cfg = cfg
        self.timesteps = cfg.timesteps
        betas = beta_schedule(cfg.schedule, cfg.timesteps)
        self.alphas_cumprod = torch.from_numpy(np.cumprod(1.0 - betas)).float()
        if cfg.anchor not in ("image", "reference"):
            raise ValueError(f"unknown diffusion anchor {cfg.anchor!r} (image or reference)")
        self.anchor = cfg.anchor

    def _origin(self, reference: torch.Tensor) -> torch.Tensor:
        """What the diffused variable is measured from: 0 (``image``) or the reference frame."""
        return reference if self.anchor == "reference" else torch.zeros_like(reference)

    def _abar(self, t: torch.Tensor) -> torch.Tensor:
        return self.alphas_cumprod.to(t.device)[t].view(-1, 1, 1, 1)

    def q_sample(self, x0: torch.Tensor, t: torch.Tensor, noise: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        a = self._abar(t)
        return (a.sqrt() * x0 + (1 - a).sqrt() * noise) * mask

    def predict_x0(self, x_t: torch.Tensor, t: torch.Tensor, eps: torch.Tensor) -> torch.Tensor:
        a = self._abar(t)
        return (x_t - (1 - a).sqrt() * eps) / a.sqrt()

    def network(self, model, x_t, t, masked, reference, mel, audio_keep=None, guidance: float = 1.0):
        """The network output F; with ``guidance`` ≠ 1, classifier-free guidance on the audio:
        ``F(no audio) + guidance · (F(audio) − F(no audio))`` (linear in F, so the same holds for ε̂ and x̂0)."""
        if guidance == 1.0:
            return model(x_t, t, masked, reference, mel) if audio_keep is None else \
                model(x_t, t, masked, reference, mel, audio_keep)
        n = x_t.shape[0]
        keep = torch.cat([torch.ones(n, dtype=torch.bool), torch.zeros(n, dtype=torch.bool)]).to(x_t.device)
        both = model(torch.cat([x_t, x_t]), torch.cat([t, t]), torch.cat([masked, masked]),
                     torch.cat([reference, reference]), torch.cat([mel, mel]), keep)
        cond, uncond = both[:n], both[n:]
        return uncond + guidance * (cond - uncond)

    def predict(self, model, x_t, t, masked, reference, mel, mask, audio_keep=None,
                guidance: float = 1.0) -> tuple[torch.Tensor, torch.Tensor]:
        """(ε̂, x0 estimate) of the preconditioned model (see the module docstring), zero outside the mask.

        Both come straight from the network output F, which stays well conditioned where ᾱ → 0
        (dividing by sqrt(ᾱ) would amplify float error there). Under the ``reference`` anchor the
        "x0" here is the residual from the reference frame."""
        a = self._abar(t)
        f = self.network(model, x_t, t, masked, reference, mel, audio_keep, guidance)
        sd = self.cfg.sigma_data
        d = 1 - a + a * sd * sd
        eps = (1 - a).sqrt() / d * x_t + sd * a.sqrt() / d.sqrt() * f
        x0 = sd * sd * a.sqrt() / d * x_t - sd * (1 - a).sqrt() / d.sqrt() * f
        return eps * mask, x0 * mask

    def predict_eps(self, model, x_t, t, masked, reference, mel, mask) -> torch.Tensor:
        return self.predict(model, x_t, t, masked, reference, mel, mask)[0]

    def training_terms(self, model, target, masked, reference, mel, t, noise, weight=None, audio_keep=None,
                       origin_reference=None) -> dict:
        """Per-frame loss terms (each (N,)) and the composited x0 estimate.

        ``target``/``masked``/``reference`` are float images in [-1, 1]; ``masked`` has the lower half 0.
        ``weight``: a (1, 1, S, S) per-pixel loss weight on the mask (default uniform); ``audio_keep``:
        (N,) bool, False trains that sample without audio; ``origin_reference``: the reference the
        ``reference`` anchor measures from when the network sees a modified one (default ``reference``).
        """
        mask = mouth_mask(target.shape[-1], target.device)
        origin = self._origin(reference if origin_reference is None else origin_reference)
        x_t = self.q_sample(target - origin, t, noise, mask)
        eps, y0 = self.predict(model, x_t, t, masked, reference, mel, mask, audio_keep)
        x0 = (y0 + origin) * mask
        w = mask if weight is None else weight * mask
        denom = w.sum() * target.shape[1]
        mse = ((eps - noise) ** 2 * w).sum(dim=(1, 2, 3)) / denom
        l1 = ((x0 - target).abs() * w).sum(dim=(1, 2, 3)) / denom  # unclamped: no dead gradients
        composite = masked * (1 - mask) + x0.clamp(-1, 1) * mask
        return {"mse": mse, "l1": l1, "x0": composite, "abar": self._abar(t).view(-1)}

    def ddim_timesteps(self, steps: int) -> list[int]:
        """Evenly spaced timesteps, high to low, always ending at 0."""
        steps = max(1, min(steps, self.timesteps))
        ts = np.linspace(self.timesteps - 1, 0, steps).round().astype(int)  # one step: t = T-1
        return sorted(set(ts.tolist()), reverse=True)

    @torch.no_grad()
    def sample(self, model, masked, reference, mel, noise, steps: int | None = None,
               guidance: float | None = None, origin_reference=None) -> torch.Tensor:
        """DDIM (η = 0) inpainting of the lower half; returns full images in [-1, 1].

        ``noise`` is x_T (N, 3, S, S): pass the same tensor for every frame of a video for a stable mouth.
        ``guidance``: classifier-free guidance on the audio (default ``DiffusionConfig.guidance``);
        ``origin_reference``: what the ``reference`` anchor measures from when the network sees a
        modified reference (default ``reference``; see ``training_terms``).
        """
        guidance = self.cfg.guidance if guidance is None else float(guidance)
        mask = mouth_mask(masked.shape[-1], masked.device)
        origin = self._origin(reference if origin_reference is None else origin_reference)
        x = noise * mask
        ts = self.ddim_timesteps(steps or self.cfg.sample_steps)
        y0 = x
        for i, t in enumerate(ts):
            tt = torch.full((masked.shape[0],), t, dtype=torch.long, device=masked.device)
            eps, y0 = self.predict(model, x, tt, masked, reference, mel, mask, guidance=guidance)
            a = self.alphas_cumprod[t].item()
            y0 = ((y0 + origin).clamp(-1, 1) - origin) * mask  # the image it implies stays in range
            eps = (x - math.sqrt(a) * y0) / math.sqrt(1 - a)  # consistent with the clamped estimate
            a_prev = self.alphas_cumprod[ts[i + 1]].item() if i + 1 < len(ts) else 1.0
            x = (math.sqrt(a_prev) * y0 + math.sqrt(1 - a_prev) * eps) * mask
        return masked * (1 - mask) + (y0 + origin) * mask


__all__ = ["MaskedDiffusion", "beta_schedule", "to_model_range", "to_uint8", "mouth_mask"]
