"""The pre-issue-15 3DMM fit (torch L-BFGS on the same MAP objective), kept as a reference for the
Gauss-Newton solver in :mod:`prep.threedmm`: both must reach the same minimum."""
from __future__ import annotations

import numpy as np

from prep.threedmm import CONTOUR, NUM_EXP, NUM_ID, FitConfig, _init_poses, load_bfm, BFMKeypoints
from talkbase.threads import one_thread


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


def _bfm_tensors(bfm: BFMKeypoints):
    import torch

    d = torch.float64
    return {"mean": torch.tensor(bfm.mean, dtype=d), "id_basis": torch.tensor(bfm.id_basis, dtype=d),
            "exp_basis": torch.tensor(bfm.exp_basis, dtype=d)}


def fit_clip_lbfgs(landmarks_src, valid, image_size, config: FitConfig | None = None, bfm=None) -> dict:
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
        init[t] = _init_poses(bfm.mean, norm[t][None])[0]
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


