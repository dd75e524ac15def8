"""evalkit metrics: PSNR/SSIM against skimage, LMD presets on hand-computed cases, dlib-CSIM, mergeable state."""
from __future__ import annotations

import numpy as np
import pytest

from evalkit.metrics.psnr import PSNR, psnr, psnr_frames
from evalkit.metrics.ssim import SSIM, ssim, ssim_frames
from evalkit.metrics.lmd import LMD, lmd, lmd_frames


@pytest.fixture(scope="module")
def real_pair(videos_dir):
    """Three real 256x256 face regions and degraded copies (noise; blur) - what the metrics see in practice."""
    import cv2

    from prep.media import read_frames

    ref = read_frames(videos_dir / "w2l_input3.mp4", stop=30)[::10, 100:356, 150:406]  # the face region
    rng = np.random.default_rng(0)
    noisy = np.clip(ref.astype(np.float64) + rng.normal(0, 8, ref.shape), 0, 255).astype(np.uint8)
    blurred = np.stack([cv2.GaussianBlur(f, (0, 0), 2.0) for f in ref])
    return ref, noisy, blurred


def _sk_psnr(a, b):
    from skimage.metrics import peak_signal_noise_ratio

    return peak_signal_noise_ratio(a, b, data_range=255)


def _sk_ssim(a, b):
    from skimage.metrics import structural_similarity

    # the gaussian SSIM of Wang et al.: 11-tap (truncate 3.5 x sigma 1.5), population covariance
    return structural_similarity(a, b, data_range=255, channel_axis=-1, gaussian_weights=True, sigma=1.5,
                                 use_sample_covariance=False)


def test_psnr_matches_skimage_on_real_frames(real_pair):
    ref, noisy, blurred = real_pair
    for gen in (noisy, blurred):
        ours = psnr_frames(ref, gen)
        want = np.array([_sk_psnr(r, g) for r, g in zip(ref, gen)])
        np.testing.assert_allclose(ours, want, rtol=0, atol=1e-5)  # dB (torchmetrics takes log(255) in float32)
    assert psnr(ref, noisy) == pytest.approx(float(np.mean(psnr_frames(ref, noisy))), abs=0)
    # noise sigma 8 -> PSNR ~ 20*log10(255/8) = 30.07 dB (a bit more: clipping at 0/255)
    assert 29.5 < psnr(ref, noisy) < 31.5


def test_ssim_matches_skimage_on_real_frames(real_pair):
    ref, noisy, blurred = real_pair
    for gen in (noisy, blurred):
        ours = ssim_frames(ref, gen)
        want = np.array([_sk_ssim(r, g) for r, g in zip(ref, gen)])
        np.testing.assert_allclose(ours, want, rtol=0, atol=2e-5)  # torch float32 vs skimage float64
    assert ssim(ref, ref) == pytest.approx(1.0, abs=1e-5)  # float32 maps
    assert ssim(ref, blurred) < 0.95 and ssim(ref, noisy) < 0.95


def test_psnr_of_identical_frames_is_capped_not_inf(real_pair):
    ref = real_pair[0]
    assert np.all(psnr_frames(ref, ref) == 100.0)
    assert np.isinf(psnr_frames(ref, ref, cap_db=None)).all()


def test_metric_classes_equal_functional_and_merge_in_order(real_pair):
    ref, noisy, blurred = real_pair
    whole = PSNR()
    whole.update(ref[:2], noisy[:2])  # one video in two chunks
    whole.update(ref[2:], noisy[2:])
    v1 = whole.end_video()
    assert v1 == pytest.approx(psnr(ref, noisy), abs=1e-12)
    whole.update(ref, blurred)
    v2 = whole.end_video()
    # two workers, one video each, merged in clip order == one metric that saw both
    a, b = SSIM(), SSIM()
    a.update(ref, noisy)
    a.end_video()
    b.update(ref, blurred)
    b.end_video()
    merged = SSIM()
    merged.merge_state(a.metric_state)
    merged.merge_state(b.metric_state)
    np.testing.assert_array_equal(merged.values(), [ssim(ref, noisy), ssim(ref, blurred)])
    res = whole.compute()
    assert res["n"] == 2 and res["frames"] == 2 * len(ref)
    assert res["value"] == pytest.approx((v1 + v2) / 2, abs=1e-12)
    assert res["stderr"] == pytest.approx(np.std([v1, v2], ddof=1) / np.sqrt(2), abs=1e-12)


def test_nan_frames_are_skipped_and_counted():
    m = LMD("mouth")
    m.add_frame_values([1.0, np.nan, 3.0])
    assert m.end_video() == 2.0
    m.add_frame_values([np.nan])
    assert m.end_video() is None  # a video without one valid frame contributes nothing
    out = m.compute()
    assert out["n"] == 1 and out["frames"] == 2 and out["frames_skipped"] == 2


# ---------------------------------------------------------------- LMD on hand-computed cases

def _face(seed=0):
    return np.random.default_rng(seed).uniform(20, 230, size=(1, 68, 2))


def test_lmd_is_zero_for_a_translated_face():
    ref = _face()
    gen = ref + np.array([7.0, -3.0])  # centring removes a global shift
    for preset in ("ratnerf", "atvgnet"):
        for points in ("mouth", "face"):
            assert lmd_frames(ref, gen, points, preset)[0] == pytest.approx(0.0, abs=1e-9)


def test_lmd_one_moved_mouth_point():
    ref = _face(1)
    gen = ref.copy()
    gen[0, 57] += (3.0, 4.0)  # |v| = 5 px on one mouth point
    # mouth (20 points): centring moves every point by v/20, so the moved point is off by 0.95*5 = 4.75
    # and the other 19 by 0.25 each -> sum 9.5, mean 0.475
    assert lmd_frames(ref, gen, "mouth", "ratnerf")[0] == pytest.approx(0.475, abs=1e-9)
    assert lmd_frames(ref, gen, "mouth", "atvgnet")[0] == pytest.approx(9.5, abs=1e-9)
    # face (68 points): 5*67/68 + 67 * 5/68 = 670/68, mean over 68
    assert lmd_frames(ref, gen, "face", "atvgnet")[0] == pytest.approx(670 / 68, abs=1e-9)
    assert lmd_frames(ref, gen, "face", "ratnerf")[0] == pytest.approx(670 / 68 / 68, abs=1e-9)


def test_lmd_scaled_mouth_on_a_circle():
    ref = np.zeros((1, 68, 2))
    ang = np.linspace(0, 2 * np.pi, 20, endpoint=False)
    ref[0, 48:68] = np.stack([100 + 10 * np.cos(ang), 150 + 10 * np.sin(ang)], axis=1)  # radius 10
    gen = ref.copy()
    gen[0, 48:68] = np.stack([100 + 13 * np.cos(ang), 150 + 13 * np.sin(ang)], axis=1)  # mouth opens to 13
    assert lmd_frames(ref, gen, "mouth", "ratnerf")[0] == pytest.approx(3.0, abs=1e-9)
    assert lmd_frames(ref, gen, "mouth", "atvgnet")[0] == pytest.approx(60.0, abs=1e-9)


def test_lmd_video_mean_and_missing_landmarks():
    ref = np.concatenate([_face(2), _face(3), _face(4)])
    gen = ref.copy()
    gen[1, 60] += (0.0, 2.0)  # |v| = 2 -> ratnerf mouth 2*0.95/20 + 19*0.1/20 = 0.19
    gen[2] = np.nan  # no landmarks found on the generated frame
    per = lmd_frames(ref, gen, "mouth", "ratnerf")
    assert per[0] == pytest.approx(0.0, abs=1e-9) and per[1] == pytest.approx(0.19, abs=1e-9)
    assert np.isnan(per[2])
    assert lmd(ref, gen) == pytest.approx(0.095, abs=1e-9)
    m = LMD("mouth", "ratnerf")
    m.update(ref, gen)
    assert m.end_video() == pytest.approx(0.095, abs=1e-9)
    with pytest.raises(ValueError):
        lmd_frames(ref, gen, "mouth", "nope")


# ---------------------------------------------------------------- dlib-CSIM

def test_csim_same_face_high_other_face_lower(videos_dir):
    from prep.faces import get_backend
    from prep.media import read_frames

    from evalkit.metrics.csim import CSIM, DlibFaceEmbedder, cosine_similarity, csim

    backend = get_backend("dlib")
    a = read_frames(videos_dir / "w2l_input3.mp4", stop=11)[[0, 10]]
    b = read_frames(videos_dir / "latentsync_demo1.mp4", stop=1)
    box_a = [d[0, :4] for d in backend.detect(a)]
    box_b = backend.detect(b)[0][0, :4]
    emb = DlibFaceEmbedder()
    ea = emb.embed(a, box_a)
    eb = emb.embed(b, [box_b])
    same = cosine_similarity(ea[:1], ea[1:])[0]
    other = cosine_similarity(ea[:1], eb)[0]
    assert same > 0.95  # same person, 10 frames apart
    assert other < same - 0.1  # another person
    # a non-face patch in the same box is far from the face too
    noise = np.random.default_rng(0).integers(0, 256, a[:1].shape, dtype=np.uint8)
    en = emb.embed(noise, box_a[:1])
    assert cosine_similarity(ea[:1], en)[0] < same - 0.1
    # missing boxes give NaN rows that the metric skips
    ex = emb.embed(a, [box_a[0], None])
    assert np.isnan(ex[1]).all()
    m = CSIM()
    m.update(ea[:1].repeat(2, 0), np.concatenate([ea[1:], ex[1:]]))
    assert m.end_video() == pytest.approx(same, abs=1e-12)
    assert csim(ea[:1], ea[1:]) == pytest.approx(same, abs=1e-12)
