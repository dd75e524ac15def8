"""Lip-sync measures: the mouth opening from dlib landmarks follows the synthetic set's audio-driven mouth,
the bootstrap intervals cover what they should, and the held-out evaluation catches a generator that
copies the source's own mouth instead of following the audio."""
from __future__ import annotations

import numpy as np
import pytest

from refmodel import lipsync as L


def _face(gap: float) -> np.ndarray:
    """The alignment template (256 px) with the inner lips ``gap`` px apart."""
    from prep.faces.align import template

    lm = template(256).copy()
    mid = lm[[61, 62, 63, 65, 66, 67], 1].mean()
    lm[[61, 62, 63], 1] = mid - gap / 2
    lm[[67, 66, 65], 1] = mid + gap / 2
    lm[[67, 66, 65], 0] = lm[[61, 62, 63], 0]  # each pair one above the other
    return lm


def test_opening_is_the_inner_lip_gap_over_the_interocular_distance():
    lms = np.stack([_face(g) for g in (0.0, 10.0, 20.0)])
    iod = np.linalg.norm(lms[0, 42:48].mean(0) - lms[0, 36:42].mean(0))
    np.testing.assert_allclose(L.opening_from_landmarks(lms), np.array([0.0, 10.0, 20.0]) / iod, atol=1e-9)
    # twice the face size: the same opening
    np.testing.assert_allclose(L.opening_from_landmarks(lms * 2), L.opening_from_landmarks(lms))
    bad = lms.copy()
    bad[1] = np.nan
    assert np.isnan(L.opening_from_landmarks(bad)[1])


def test_pearson_amplitude_and_block_bootstrap():
    rng = np.random.default_rng(0)
    t = np.cumsum(rng.standard_normal((3, 200)), axis=1)  # smooth-ish series, autocorrelated like openings
    follow = [(0.5 * x + 0.2 * rng.standard_normal(200), x) for x in t]
    assert L.pearson(*follow[0]) > 0.9 and abs(L.pearson(np.ones(10), np.arange(10.0))) == 0.0
    assert L.amplitude_ratio(*follow[0]) == pytest.approx(0.5, abs=0.05)
    good = L.block_bootstrap(follow, L.mean_r, n_boot=300, seed=1)
    assert good["lo"] <= good["value"] <= good["hi"] and good["lo"] > 0.9

    def ar1(n, phi=0.8):  # autocorrelated like a mouth-opening series (a syllable spans ~5 frames)
        x = np.zeros(n)
        e = rng.standard_normal(n)
        for i in range(1, n):
            x[i] = phi * x[i - 1] + e[i]
        return x

    pairs = [(ar1(150), ar1(150)) for _ in range(40)]  # independent: the true r is 0

    def coverage(block):
        cis = [L.block_bootstrap([p], L.mean_r, n_boot=200, seed=i, block=block) for i, p in enumerate(pairs)]
        return np.mean([c["lo"] <= 0 <= c["hi"] for c in cis])

    # blocks keep the autocorrelation, so the 95 % interval covers the true 0 about as often as it should;
    # resampling single frames understates the spread and covers it less often
    assert coverage(L.BLOCK) >= 0.8
    assert coverage(1) < coverage(L.BLOCK)
    assert L.block_bootstrap(follow, L.mean_r, n_boot=50, seed=3) == L.block_bootstrap(follow, L.mean_r, n_boot=50,
                                                                                       seed=3)
    # paired difference: the same blocks for both sides, so a constant shift has a zero-width interval
    d = L.block_bootstrap([(x + 1.0, x) for x in t], L.mean_diff, n_boot=100)
    assert d["value"] == pytest.approx(1.0) and d["hi"] - d["lo"] < 1e-9
    idx = L.block_indices(95, np.random.default_rng(0), 10)
    assert len(idx) == 95 and idx.min() >= 0 and idx.max() < 95


@pytest.fixture(scope="module")
def synthetic_clip(tmp_path_factory):
    from talkbench.demo_data import mouth_openness, synthesize_dataset
    from prep.media import decode_clip

    out = tmp_path_factory.mktemp("lipsync_clip")
    path = synthesize_dataset(out, n_identities=1, clips_per_identity=1, seconds=3.0, seed=11, alt_fps=None)[0]
    return path, mouth_openness(decode_clip(path).audio)


def test_video_mouth_opening_follows_the_synthetic_audio(synthetic_clip):
    path, drive = synthetic_clip
    opening = L.video_mouth_opening(path)
    assert opening.shape == (75,) and np.isfinite(opening).mean() > 0.95
    assert L.pearson(opening, drive) > 0.85
    assert L.pearson(opening[2:], drive[:-2]) < L.pearson(opening, drive) - 0.2  # frame-accurate
    # wide-open frames measure clearly larger than closed ones
    assert np.nanmean(opening[drive > 0.8]) - np.nanmean(opening[drive < 0.1]) > 0.15


class _CopySource:
    """A 'model' that returns the source crop itself: the mouth of the clip's own video, whatever the audio."""

    name, image_size, min_ref_gap, holdout_fraction, step = "copy-source", 64, 5, 0.2, 0
    sync_expert, settings = None, {}

    def generate(self, crops, references, mels, seed=0, batch_size=64, progress=None):
        return crops.copy()


def test_evaluation_catches_a_model_that_ignores_the_audio(synthetic_prep):
    """Copying the source mouth scores r ≈ 1 with its own opening — the naive measure — but the shuffled
    and cross conditions expose it: r with the shuffled audio's opening and with the driving clip's
    opening stay near 0 (intervals), which is what a lip-sync model must raise."""
    from refmodel.evaluate import evaluate_heldout, summary_lines

    res = evaluate_heldout("copy-source", synthetic_prep, frames="all", split="test", generator=_CopySource(),
                           n_boot=200)
    ls = res["lipsync"]
    assert res["frames"] == 150 and set(res["clips"]) == {"spk00/clip01", "spk01/clip01"}
    assert ls["true_audio"]["r"]["value"] > 0.95
    assert ls["shuffled_vs_true_opening"]["r"]["value"] > 0.95
    for key in ("shuffled_vs_shuffled_opening", "cross_vs_driver"):
        r = ls[key]["r"]
        assert r["lo"] <= r["value"] <= r["hi"] and abs(r["value"]) < 0.35, (key, r)
    assert ls["cross_vs_own"]["r"]["value"] > 0.95
    assert res["methods"]["model"]["psnr"] > 40 and res["methods"]["mean-fill"]["psnr"] < 30
    assert ls["lmd_true_minus_shuffled"]["value"] == pytest.approx(0.0, abs=1e-9)
    assert any("opening r cross_vs_driver" in line for line in summary_lines(res))
