"""Fréchet Inception Distance: our own matrix square root, mergeable float64 moments, cached references.

``FID² = ‖μ₁ − μ₂‖² + tr Σ₁ + tr Σ₂ − 2 tr √(Σ₁Σ₂)``. The trace term uses
``tr √(Σ₁Σ₂) = tr √(√Σ₁ Σ₂ √Σ₁)`` (the two products are similar matrices), and ``√Σ₁ Σ₂ √Σ₁`` is
symmetric positive semi-definite, so both square roots come from symmetric eigendecompositions
(LAPACK ``syevd``) with round-off negative eigenvalues clipped to zero — no ``scipy.linalg.sqrtm``,
no complex parts, and stable for the rank-deficient covariances of < 2048 samples.

State is the sufficient statistics (count, Σx, Σxxᵀ) in float64, so per-shard or per-worker results
merge exactly by addition (``FID.merge_state`` / ``FeatureMoments.merge``), as torchmetrics' FID does.
Σ is the unbiased sample covariance (``numpy.cov``, ddof = 1), as pytorch-fid.
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
import tempfile
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable

import numpy as np
import torch
from torchmetrics import Metric

from .base import MetricSpec, MetricValue

log = logging.getLogger(__name__)

FEATURE_DIM = 2048
MIN_RECOMMENDED_SAMPLES = 2048  # below this Σ is rank-deficient and FID is strongly biased upwards
STATS_CACHE_VERSION = 1


class FIDSampleWarning(UserWarning):
    """FID computed from fewer samples than the feature dimension."""


# ---------------------------------------------------------------- Fréchet distance

_EIGH_CACHE: dict = {}  # digest of a matrix -> its (read-only) decomposition; the last few only
_EIGH_CACHE_SIZE = 2


def _eigh(matrix: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Symmetric eigendecomposition in float64 (LAPACK syevd via torch: several times faster than
    numpy's on few cores, same algorithm). The reference covariance is the same for every submission
    scored against it (and its value and its bootstrap both need it): a 2048² decomposition takes ~1 s
    on 2 cores, hashing the matrix ~30 ms, so the last few results are kept by content digest."""
    matrix = np.ascontiguousarray(matrix, np.float64)
    key = (matrix.shape, hashlib.blake2b(matrix.data, digest_size=16).digest())
    if key not in _EIGH_CACHE:
        vals, vecs = torch.linalg.eigh(torch.from_numpy(np.ascontiguousarray((matrix + matrix.T) / 2)))
        vals, vecs = vals.numpy(), vecs.numpy()
        vals.setflags(write=False)
        vecs.setflags(write=False)
        while len(_EIGH_CACHE) >= _EIGH_CACHE_SIZE:
            _EIGH_CACHE.pop(next(iter(_EIGH_CACHE)))
        _EIGH_CACHE[key] = (vals, vecs)
    return _EIGH_CACHE[key]


def trace_sqrt_product(sigma1: np.ndarray, sigma2: np.ndarray) -> float:
    """``tr √(Σ₁Σ₂)`` from the symmetric product ``√Σ₁ Σ₂ √Σ₁``.

    With ``Σ₁ = V Λ Vᵀ`` and ``W = V √Λ`` (columns above the numerical-rank tolerance
    ``D · eps · λ_max``), ``√Σ₁ Σ₂ √Σ₁ = V (Wᵀ Σ₂ W) Vᵀ``: the r × r matrix ``Wᵀ Σ₂ W`` has the same
    non-zero eigenvalues, so its ``eigvalsh`` gives the trace. For N < D samples r < N, which keeps
    rank-deficient covariances cheap and free of round-off eigenvalues.
    """
    sigma1, sigma2 = np.asarray(sigma1, np.float64), np.asarray(sigma2, np.float64)
    vals1, vecs1 = _eigh(sigma1)
    keep = vals1 > max(vals1.max(), 0.0) * len(vals1) * np.finfo(np.float64).eps
    w = vecs1[:, keep] * np.sqrt(vals1[keep])
    inner = w.T @ sigma2 @ w
    vals = torch.linalg.eigvalsh(torch.from_numpy(np.ascontiguousarray((inner + inner.T) / 2))).numpy()
    return float(np.sqrt(np.clip(vals, 0, None)).sum())


def frechet_distance(mu1, sigma1, mu2, sigma2) -> float:
    """Squared Fréchet distance between N(μ₁, Σ₁) and N(μ₂, Σ₂), computed in float64."""
    mu1, mu2 = np.atleast_1d(np.asarray(mu1, np.float64)), np.atleast_1d(np.asarray(mu2, np.float64))
    sigma1, sigma2 = np.atleast_2d(np.asarray(sigma1, np.float64)), np.atleast_2d(np.asarray(sigma2, np.float64))
    if mu1.shape != mu2.shape or sigma1.shape != sigma2.shape or sigma1.shape != mu1.shape * 2:
        raise ValueError(f"shape mismatch: mu {mu1.shape} / {mu2.shape}, sigma {sigma1.shape} / {sigma2.shape}")
    diff = mu1 - mu2
    return float(diff @ diff + np.trace(sigma1) + np.trace(sigma2) - 2 * trace_sqrt_product(sigma1, sigma2))


def feature_stats(features) -> tuple[np.ndarray, np.ndarray]:
    """(μ, Σ) of (N, D) features in float64; Σ is the unbiased sample covariance."""
    return FeatureMoments.from_features(features).stats()


# ---------------------------------------------------------------- mergeable moments

@dataclass
class FeatureMoments:
    """Count, sum and outer-product sum of features (float64): exact, mergeable sufficient statistics."""

    n: int
    sum: np.ndarray  # (D,)
    outer: np.ndarray  # (D, D)

    @classmethod
    def empty(cls, dim: int = FEATURE_DIM) -> "FeatureMoments":
        return cls(0, np.zeros(dim), np.zeros((dim, dim)))

    @classmethod
    def from_features(cls, features) -> "FeatureMoments":
        x = np.asarray(features.detach().cpu() if isinstance(features, torch.Tensor) else features, np.float64)
        if x.ndim != 2:
            raise ValueError(f"features must be (N, D), got {x.shape}")
        return cls(len(x), x.sum(0), x.T @ x)

    def merge(self, other: "FeatureMoments") -> "FeatureMoments":
        return FeatureMoments(self.n + other.n, self.sum + other.sum, self.outer + other.outer)

    def stats(self) -> tuple[np.ndarray, np.ndarray]:
        if self.n < 2:
            raise ValueError(f"need at least 2 samples for a covariance, have {self.n}")
        mu = self.sum / self.n
        sigma = (self.outer - self.n * np.outer(mu, mu)) / (self.n - 1)
        return mu, (sigma + sigma.T) / 2

    def save(self, path, meta: dict | None = None) -> None:
        """Atomic ``.npz`` (no pickles); ``meta`` is stored as JSON."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp.npz", dir=path.parent)
        os.close(fd)
        try:
            np.savez(tmp, n=np.int64(self.n), sum=self.sum, outer=self.outer,
                     meta=np.array(json.dumps(meta or {}, sort_keys=True)))
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    @classmethod
    def load(cls, path) -> tuple["FeatureMoments", dict]:
        with np.load(path, allow_pickle=False) as f:
            return cls(int(f["n"]), f["sum"].astype(np.float64), f["outer"].astype(np.float64)), \
                json.loads(str(f["meta"]))


# ---------------------------------------------------------------- feature extraction

def _as_image_batch(item) -> torch.Tensor:
    """One image or a batch → (n, 3, H, W) float32 RGB in [0, 1]. uint8 arrays are (…, H, W, 3)
    (``/255`` as torchvision's ToTensor); float tensors/arrays are (…, 3, H, W) already in [0, 1]."""
    t = torch.from_numpy(np.asarray(item)) if not isinstance(item, torch.Tensor) else item
    if t.dtype == torch.uint8:
        t = t.unsqueeze(0) if t.ndim == 3 else t
        if t.ndim != 4 or t.shape[-1] != 3:
            raise ValueError(f"uint8 images must be (N, H, W, 3) RGB, got {tuple(t.shape)}")
        return t.permute(0, 3, 1, 2).float().div(255)
    t = t.unsqueeze(0) if t.ndim == 3 else t
    if t.ndim != 4 or t.shape[1] != 3:
        raise ValueError(f"float images must be (N, 3, H, W) in [0, 1], got {tuple(t.shape)}")
    return t.float()


def _rebatch(images: Iterable, batch_size: int):
    pending, count = [], 0
    for item in images:
        batch = _as_image_batch(item)
        if pending and batch.shape[2:] != pending[0].shape[2:]:
            yield torch.cat(pending)
            pending, count = [], 0
        while len(batch):
            take = batch[:batch_size - count]
            pending.append(take)
            count += len(take)
            batch = batch[len(take):]
            if count == batch_size:
                yield torch.cat(pending)
                pending, count = [], 0
    if pending:
        yield torch.cat(pending)


def inference_model(model: torch.nn.Module, fuse: bool = True) -> torch.nn.Module:
    """The module to run for extraction: a BN-folded copy of an FID Inception when ``fuse``."""
    if fuse and hasattr(model, "fused") and not getattr(model, "is_fused", False):
        return model.fused()
    return model.eval()


def extract_features(model: torch.nn.Module, images_iter: Iterable, batch_size: int = 50,
                     fuse: bool = True, device=None) -> np.ndarray:
    """(N, 2048) float32 pool3 features of every image in ``images_iter`` (images or batches; see
    ``_as_image_batch``), in order. ``fuse`` runs a batch-norm-folded, channels-last copy of an
    ``FIDInceptionV3`` (same function to ~1e-6 relative)."""
    net = inference_model(model, fuse)
    device = torch.device(device) if device is not None else next(net.parameters()).device
    out = []
    with torch.inference_mode():
        for batch in _rebatch(images_iter, batch_size):
            batch = batch.to(device).contiguous(memory_format=torch.channels_last)
            out.append(net(batch).float().cpu().numpy())
    return np.concatenate(out) if out else np.zeros((0, FEATURE_DIM), np.float32)


# ---------------------------------------------------------------- torchmetrics-style metric

class FID(Metric):
    """FID with float64 (count, Σx, Σxxᵀ) states for real and fake sets.

    ``update(data, real)``: ``data`` is images (uint8 (N, H, W, 3) or float (N, 3, H, W) in [0, 1]; needs
    ``model``) or features (a 2-D (N, D) array/tensor). ``reference`` (FeatureMoments) pre-fills the real
    side, e.g. cached reference statistics. ``compute()`` warns (FIDSampleWarning) below 2,048 samples.
    """

    is_differentiable = False
    higher_is_better = False
    full_state_update = False

    def __init__(self, model: torch.nn.Module | None = None, feature_dim: int = FEATURE_DIM,
                 batch_size: int = 50, reference: FeatureMoments | None = None, fuse: bool = True, **kwargs):
        super().__init__(**kwargs)
        self.feature_dim, self.batch_size = feature_dim, batch_size
        self._net = inference_model(model, fuse) if model is not None else None
        for side in ("real", "fake"):
            self.add_state(f"{side}_n", torch.tensor(0, dtype=torch.float64), dist_reduce_fx="sum")
            self.add_state(f"{side}_sum", torch.zeros(feature_dim, dtype=torch.float64), dist_reduce_fx="sum")
            self.add_state(f"{side}_outer", torch.zeros(feature_dim, feature_dim, dtype=torch.float64),
                           dist_reduce_fx="sum")
        self.reference = reference

    def _features(self, data) -> torch.Tensor:
        t = data if isinstance(data, torch.Tensor) else torch.from_numpy(np.asarray(data))
        if t.ndim == 2:
            return t
        if self._net is None:
            raise ValueError("FID got images but was built without a model")
        return torch.from_numpy(extract_features(self._net, [t], self.batch_size, fuse=False))

    def update(self, data, real: bool) -> None:
        x = self._features(data).to(torch.float64)
        if x.shape[1] != self.feature_dim:
            raise ValueError(f"features have dim {x.shape[1]}, metric expects {self.feature_dim}")
        side = "real" if real else "fake"
        setattr(self, f"{side}_n", getattr(self, f"{side}_n") + x.shape[0])
        setattr(self, f"{side}_sum", getattr(self, f"{side}_sum") + x.sum(0))
        setattr(self, f"{side}_outer", getattr(self, f"{side}_outer") + x.T @ x)

    def moments(self, real: bool) -> FeatureMoments:
        side = "real" if real else "fake"
        m = FeatureMoments(int(getattr(self, f"{side}_n")), getattr(self, f"{side}_sum").cpu().numpy(),
                           getattr(self, f"{side}_outer").cpu().numpy())
        if real and self.reference is not None:
            m = m.merge(self.reference)
        return m

    def low_sample_message(self) -> str | None:
        """A message when either side has fewer than 2,048 samples (for results.json), else None."""
        n_real, n_fake = self.moments(True).n, self.moments(False).n
        if min(n_real, n_fake) < MIN_RECOMMENDED_SAMPLES:
            return (f"FID from {n_real} reference and {n_fake} generated samples (< {MIN_RECOMMENDED_SAMPLES}): "
                    "covariances are rank-deficient and the value is biased; compare only at equal N")
        return None

    def compute(self) -> torch.Tensor:
        msg = self.low_sample_message()
        if msg:  # recorded in results.json as the metric's warning; here only for direct callers
            log.info(msg)
            warnings.warn(msg, FIDSampleWarning, stacklevel=2)
        mu1, s1 = self.moments(True).stats()
        mu2, s2 = self.moments(False).stats()
        return torch.tensor(frechet_distance(mu1, s1, mu2, s2), dtype=torch.float64)


def fid(real, fake, model: torch.nn.Module | None = None, batch_size: int = 50,
        reference: FeatureMoments | None = None, feature_dim: int | None = None) -> float:
    """Functional twin of ``FID`` (same code path): real/fake are images or (N, D) features
    (``feature_dim`` defaults to D of 2-D inputs, else 2048)."""
    if feature_dim is None:
        feature_dim = next((np.shape(x)[1] for x in (real, fake) if x is not None and np.ndim(x) == 2), FEATURE_DIM)
    metric = FID(model, feature_dim=feature_dim, batch_size=batch_size, reference=reference)
    if real is not None:
        metric.update(real, real=True)
    metric.update(fake, real=False)
    return float(metric.compute())


# ---------------------------------------------------------------- reference-statistics cache

def stats_cache_key(reference_shards_sha256: str, protocol: dict) -> str:
    """sha256 of the canonical JSON of (reference shard hash, FID protocol). The protocol should name
    the image set, resize and the Inception weights' sha256 (or 'random' + seed)."""
    blob = json.dumps({"version": STATS_CACHE_VERSION, "reference": reference_shards_sha256,
                       "protocol": protocol}, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(blob.encode()).hexdigest()


class ReferenceStatsCache:
    """Reference moments on disk, one ``.npz`` per key (file names are the key hash, so nothing escapes the
    folder). A file whose stored key differs, or that cannot be read (truncated, not a zip), is a miss."""

    def __init__(self, cache_dir):
        self.dir = Path(cache_dir)

    def path(self, key: str) -> Path:
        return self.dir / f"fid-ref-{key}.npz"

    def load(self, key: str) -> FeatureMoments | None:
        path = self.path(key)
        if not path.is_file():
            return None
        try:
            moments, meta = FeatureMoments.load(path)
        except Exception as e:  # noqa: BLE001 - zipfile.BadZipFile, EOFError, ValueError...: a miss
            log.warning("ignoring unreadable FID cache %s: %s", path, e)
            return None
        if meta.get("key") != key:
            log.warning("ignoring FID cache %s: key mismatch", path)
            return None
        log.info("FID reference statistics from cache %s (n=%d)", path, moments.n)
        return moments

    def store(self, key: str, moments: FeatureMoments, meta: dict) -> None:
        moments.save(self.path(key), meta={**meta, "key": key})


def cached_reference_moments(cache_dir, reference_shards_sha256: str, protocol: dict,
                             compute: Callable[[], FeatureMoments]) -> tuple[FeatureMoments, bool]:
    """Reference moments from ``cache_dir`` if present for this (shards, protocol), else ``compute()``
    and store them. Returns (moments, was_cached)."""
    cache = ReferenceStatsCache(cache_dir)
    key = stats_cache_key(reference_shards_sha256, protocol)
    moments = cache.load(key)
    if moments is not None:
        return moments, True
    moments = compute()
    cache.store(key, moments, {"reference": reference_shards_sha256, "protocol": protocol})
    return moments, False


# ---------------------------------------------------------------- the metric spec

VERSION = "fid-1"


def _protocol(config) -> dict:
    from ..config import region_name
    from ..geometry import CROP_PROTOCOL

    return {"version": VERSION, "fps": 25.0, "image_set": region_name(config.region),
            "frames": "every frame_stride-th frame (with a reference face, for aligned crops) of the first "
                      "min(generated, reference) frames",
            **({**CROP_PROTOCOL, "crop_size": config.crop_size} if config.region == "aligned" else {}),
            "network": "InceptionV3 pool3 2048-d (pytorch-fid layout)", "resize": "bilinear to 299x299",
            "scaling": "[0,1] -> [-1,1]", "color": "RGB", "pooling": "all frames of all scored videos (one set)",
            "frame_stride": config.fid_stride, "reference_set": "every face frame of every reference clip",
            "covariance": "unbiased (ddof 1), float64 sums", "sqrtm": "eigendecomposition of the symmetric product",
            }


class _VideoFeatures:
    def __init__(self):
        self.parts: list[np.ndarray] = []


class _SetMoments:
    """The merge side: moments of every generated feature, in clip order."""

    def __init__(self):
        self.fake: FeatureMoments | None = None
        self.videos = 0


def _feed(acc, chunk) -> None:
    f = chunk.fid_features
    if len(f):
        acc.parts.append(f)


def _finish(acc: _VideoFeatures, video) -> MetricValue:
    f = np.concatenate(acc.parts) if acc.parts else np.zeros((0, FEATURE_DIM), np.float32)
    if not len(f):
        return MetricValue(None, reason="no frame in the FID image set")
    return MetricValue(None, frames=len(f), state=f, columns={"fid_frames": int(len(f))})


def _merge(merged: _SetMoments, value: MetricValue) -> None:
    if value.reason is None and value.state is not None:
        m = FeatureMoments.from_features(value.state)
        merged.fake = m if merged.fake is None else merged.fake.merge(m)
        merged.videos += 1


def _summary(merged: _SetMoments, ctx) -> dict:
    if merged.fake is None:
        return {"value": None, "stderr": None, "n": 0, "reason": "no generated FID samples"}
    if ctx.reference_fid is None:
        return {"value": None, "stderr": None, "n": 0, "reason": "no reference FID statistics"}
    metric = FID(feature_dim=merged.fake.sum.shape[0], reference=ctx.reference_fid)
    metric.fake_n += merged.fake.n
    metric.fake_sum += torch.from_numpy(merged.fake.sum)
    metric.fake_outer += torch.from_numpy(merged.fake.outer)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            value = float(metric.compute())
        except ValueError as e:
            return {"value": None, "stderr": None, "n": 0, "reason": str(e)}
    return {"value": value, "stderr": None, "n": merged.videos, "frames": merged.fake.n,
            "n_samples": merged.fake.n, "n_reference_samples": ctx.reference_fid.n,
            "warning": metric.low_sample_message()}


def _new(config):
    return _VideoFeatures()


def _bootstrap(values, ctx, idx: np.ndarray) -> np.ndarray:
    """FID of each resample of the generated videos against the fixed reference moments.

    Per resample the generated moments are the multiplicity-weighted sums of the videos' features (exactly
    the moments of the resampled set); the reference's eigendecomposition is computed once."""
    if ctx.reference_fid is None:
        return np.full(len(idx), np.nan)
    feats = [np.asarray(v.state, np.float32) for v in values]
    counts = np.array([len(f) for f in feats])
    sums = np.stack([f.astype(np.float64).sum(0) for f in feats])
    mu_r, s_r = ctx.reference_fid.stats()
    vals, vecs = _eigh(s_r)
    keep = vals > max(vals.max(), 0.0) * len(vals) * np.finfo(np.float64).eps
    w = vecs[:, keep] * np.sqrt(vals[keep])
    wf = [f.astype(np.float64) @ w for f in feats]  # each video's features projected once: (n_i, r)
    tr_r = float(np.trace(s_r))
    sq = [np.einsum("ij,ij->j", f.astype(np.float64), f.astype(np.float64)) for f in feats]  # per-dim Σx²
    out = []
    for row in idx:
        c = np.bincount(row, minlength=len(feats)).astype(np.float64)
        n = float(c @ counts)
        if n < 2:
            out.append(np.nan)
            continue
        mu = (c @ sums) / n
        inner = sum(ci * (p.T @ p) for ci, p in zip(c, wf) if ci)  # Wᵀ (Σ c_i X_iᵀ X_i) W
        wmu = w.T @ mu
        inner = (inner - n * np.outer(wmu, wmu)) / (n - 1)  # Wᵀ Σ_gen W
        tr_g = float((sum(ci * q for ci, q in zip(c, sq) if ci) - n * mu * mu).sum() / (n - 1))
        ev = torch.linalg.eigvalsh(torch.from_numpy(np.ascontiguousarray((inner + inner.T) / 2))).numpy()
        diff = mu - mu_r
        out.append(float(diff @ diff + tr_r + tr_g - 2 * np.sqrt(np.clip(ev, 0, None)).sum()))
    return np.asarray(out)


def _spec() -> MetricSpec:
    return MetricSpec(
        name="fid", label="FID", version=VERSION, unit="", higher_is_better=False,
        modes=("reconstruction", "cross"), needs=("fid_features",),
        description="Fréchet Inception distance of the generated frames' set to the reference frames' set",
        protocol=_protocol, new=_new, feed=_feed, finish=_finish, merge=_merge, summary=_summary,
        new_merge=lambda config: _SetMoments(), weights=lambda config: ("inception",), per_video_column=False,
        columns=(("fid_frames", "int32"),), decimals=2, order=40, bootstrap=_bootstrap)


SPECS = (_spec(),)

__all__ = ["frechet_distance", "trace_sqrt_product", "feature_stats", "FeatureMoments", "extract_features",
           "inference_model", "FID", "fid", "FIDSampleWarning", "stats_cache_key", "cached_reference_moments", "SPECS",
           "ReferenceStatsCache",
           "MIN_RECOMMENDED_SAMPLES"]
