"""FID Inception (layout, numerics vs an independent functional re-derivation, vs pytorch-fid when
installed), Fréchet distance vs scipy, mergeable state, sample warning, reference-statistics cache."""
from __future__ import annotations

import numpy as np
import pytest
import scipy.linalg
import torch
import torch.nn.functional as F

from evalkit.metrics import fid as fidmod
from evalkit.nets import inception as inc
from talkbase.fileio import sha256_file as file_sha256
from talkbase.weights import WeightsMismatch, WeightsNotFound, WeightsUnreadable, check_layout

# ---------------------------------------------------------------- the reference architecture, as a table
# (branch, in, out, (kh, kw), stride, padding) from torchvision's Inception3 + pytorch-fid's FID blocks


def block_a(c, pool):
    return [("branch1x1", c, 64, (1, 1), 1, 0), ("branch5x5_1", c, 48, (1, 1), 1, 0),
            ("branch5x5_2", 48, 64, (5, 5), 1, 2), ("branch3x3dbl_1", c, 64, (1, 1), 1, 0),
            ("branch3x3dbl_2", 64, 96, (3, 3), 1, 1), ("branch3x3dbl_3", 96, 96, (3, 3), 1, 1),
            ("branch_pool", c, pool, (1, 1), 1, 0)]


def block_b(c):
    return [("branch3x3", c, 384, (3, 3), 2, 0), ("branch3x3dbl_1", c, 64, (1, 1), 1, 0),
            ("branch3x3dbl_2", 64, 96, (3, 3), 1, 1), ("branch3x3dbl_3", 96, 96, (3, 3), 2, 0)]


def block_c(c, c7):
    return [("branch1x1", c, 192, (1, 1), 1, 0), ("branch7x7_1", c, c7, (1, 1), 1, 0),
            ("branch7x7_2", c7, c7, (1, 7), 1, (0, 3)), ("branch7x7_3", c7, 192, (7, 1), 1, (3, 0)),
            ("branch7x7dbl_1", c, c7, (1, 1), 1, 0), ("branch7x7dbl_2", c7, c7, (7, 1), 1, (3, 0)),
            ("branch7x7dbl_3", c7, c7, (1, 7), 1, (0, 3)), ("branch7x7dbl_4", c7, c7, (7, 1), 1, (3, 0)),
            ("branch7x7dbl_5", c7, 192, (1, 7), 1, (0, 3)), ("branch_pool", c, 192, (1, 1), 1, 0)]


def block_d(c):
    return [("branch3x3_1", c, 192, (1, 1), 1, 0), ("branch3x3_2", 192, 320, (3, 3), 2, 0),
            ("branch7x7x3_1", c, 192, (1, 1), 1, 0), ("branch7x7x3_2", 192, 192, (1, 7), 1, (0, 3)),
            ("branch7x7x3_3", 192, 192, (7, 1), 1, (3, 0)), ("branch7x7x3_4", 192, 192, (3, 3), 2, 0)]


def block_e(c):
    return [("branch1x1", c, 320, (1, 1), 1, 0), ("branch3x3_1", c, 384, (1, 1), 1, 0),
            ("branch3x3_2a", 384, 384, (1, 3), 1, (0, 1)), ("branch3x3_2b", 384, 384, (3, 1), 1, (1, 0)),
            ("branch3x3dbl_1", c, 448, (1, 1), 1, 0), ("branch3x3dbl_2", 448, 384, (3, 3), 1, 1),
            ("branch3x3dbl_3a", 384, 384, (1, 3), 1, (0, 1)), ("branch3x3dbl_3b", 384, 384, (3, 1), 1, (1, 0)),
            ("branch_pool", c, 192, (1, 1), 1, 0)]


STEM = [("Conv2d_1a_3x3", 3, 32, (3, 3), 2, 0), ("Conv2d_2a_3x3", 32, 32, (3, 3), 1, 0),
        ("Conv2d_2b_3x3", 32, 64, (3, 3), 1, 1), ("Conv2d_3b_1x1", 64, 80, (1, 1), 1, 0),
        ("Conv2d_4a_3x3", 80, 192, (3, 3), 1, 0)]
BLOCKS = [("Mixed_5b", "A", block_a(192, 32)), ("Mixed_5c", "A", block_a(256, 64)),
          ("Mixed_5d", "A", block_a(288, 64)), ("Mixed_6a", "B", block_b(288)),
          ("Mixed_6b", "C", block_c(768, 128)), ("Mixed_6c", "C", block_c(768, 160)),
          ("Mixed_6d", "C", block_c(768, 160)), ("Mixed_6e", "C", block_c(768, 192)),
          ("Mixed_7a", "D", block_d(768)), ("Mixed_7b", "E_avg", block_e(1280)), ("Mixed_7c", "E_max", block_e(2048))]


def official_layout() -> dict[str, tuple]:
    convs = [(name, spec) for name, *spec in STEM]
    convs += [(f"{blk}.{name}", spec) for blk, _, table in BLOCKS for name, *spec in table]
    keys = {}
    for name, (cin, cout, k, _, _) in convs:
        keys[f"{name}.conv.weight"] = (cout, cin, *k)
        keys.update({f"{name}.bn.{p}": (cout,) for p in ("weight", "bias", "running_mean", "running_var")})
        keys[f"{name}.bn.num_batches_tracked"] = ()
    keys.update({"fc.weight": (1008, 2048), "fc.bias": (1008,)})
    return keys


def reference_pool3(sd: dict, images: torch.Tensor) -> torch.Tensor:
    """An independent functional FID-Inception forward over a state dict (F.conv2d / F.batch_norm)."""
    specs = {name: spec for name, *spec in STEM}
    specs.update({f"{blk}.{name}": spec for blk, _, table in BLOCKS for name, *spec in table})

    def conv(name, x):
        _, _, _, stride, pad = specs[name]
        y = F.conv2d(x, sd[f"{name}.conv.weight"], None, stride, pad)
        y = F.batch_norm(y, sd[f"{name}.bn.running_mean"], sd[f"{name}.bn.running_var"],
                         sd[f"{name}.bn.weight"], sd[f"{name}.bn.bias"], False, 0.0, 1e-3)
        return F.relu(y)

    def chain(blk, names, x):
        for n in names:
            x = conv(f"{blk}.{n}", x)
        return x

    def tf_avg(x):
        return F.avg_pool2d(x, 3, 1, 1, count_include_pad=False)

    x = F.interpolate(images, size=(299, 299), mode="bilinear", align_corners=False) * 2 - 1
    for name in ("Conv2d_1a_3x3", "Conv2d_2a_3x3", "Conv2d_2b_3x3"):
        x = conv(name, x)
    x = F.max_pool2d(x, 3, 2)
    x = conv("Conv2d_4a_3x3", conv("Conv2d_3b_1x1", x))
    x = F.max_pool2d(x, 3, 2)
    for blk, kind, _ in BLOCKS:
        if kind == "A":
            parts = [conv(f"{blk}.branch1x1", x), chain(blk, ["branch5x5_1", "branch5x5_2"], x),
                     chain(blk, ["branch3x3dbl_1", "branch3x3dbl_2", "branch3x3dbl_3"], x),
                     conv(f"{blk}.branch_pool", tf_avg(x))]
        elif kind == "B":
            parts = [conv(f"{blk}.branch3x3", x), chain(blk, ["branch3x3dbl_1", "branch3x3dbl_2", "branch3x3dbl_3"], x),
                     F.max_pool2d(x, 3, 2)]
        elif kind == "C":
            parts = [conv(f"{blk}.branch1x1", x), chain(blk, ["branch7x7_1", "branch7x7_2", "branch7x7_3"], x),
                     chain(blk, [f"branch7x7dbl_{i}" for i in range(1, 6)], x), conv(f"{blk}.branch_pool", tf_avg(x))]
        elif kind == "D":
            parts = [chain(blk, ["branch3x3_1", "branch3x3_2"], x),
                     chain(blk, [f"branch7x7x3_{i}" for i in range(1, 5)], x), F.max_pool2d(x, 3, 2)]
        else:
            b3 = conv(f"{blk}.branch3x3_1", x)
            bd = chain(blk, ["branch3x3dbl_1", "branch3x3dbl_2"], x)
            pooled = tf_avg(x) if kind == "E_avg" else F.max_pool2d(x, 3, 1, 1)
            parts = [conv(f"{blk}.branch1x1", x),
                     torch.cat([conv(f"{blk}.branch3x3_2a", b3), conv(f"{blk}.branch3x3_2b", b3)], 1),
                     torch.cat([conv(f"{blk}.branch3x3dbl_3a", bd), conv(f"{blk}.branch3x3dbl_3b", bd)], 1),
                     conv(f"{blk}.branch_pool", pooled)]
        x = torch.cat(parts, 1)
    return x.mean(dim=(2, 3))


@pytest.fixture(scope="module")
def random_inception():
    net = inc.FIDInceptionV3()
    net.load_state_dict(inc.random_state_dict(0))
    return net.eval()


@pytest.fixture(scope="module")
def fused_inception(random_inception):
    return random_inception.fused()


def test_state_dict_matches_official_layout():
    ours = {k: tuple(v.shape) for k, v in inc.FIDInceptionV3().state_dict().items()}
    assert ours == official_layout()
    assert len(ours) == 94 * 6 + 2  # 94 conv+BN units in the FID graph


def test_pool3_equals_functional_reference(random_inception, fused_inception):
    g = torch.Generator().manual_seed(1)
    image = torch.rand(1, 3, 96, 128, generator=g)  # non-square, not 299: exercises the resize
    with torch.inference_mode():
        ours = random_inception(image)
        ref = reference_pool3(inc.random_state_dict(0), image)
        resized = F.interpolate(image, size=(299, 299), mode="bilinear", align_corners=False)
        fused_at_299 = fused_inception(resized.contiguous(memory_format=torch.channels_last))
    assert ours.shape == (1, 2048)
    torch.testing.assert_close(ours, ref, rtol=1e-4, atol=1e-5)
    assert ours.std() > 0.1  # features are not degenerate (so the comparison means something)
    # the BN-folded copy is the same function, and resizing a 299x299 input again is the identity
    assert fused_inception.is_fused and not random_inception.is_fused
    torch.testing.assert_close(fused_at_299, ours, rtol=1e-4, atol=1e-5)


def test_against_pytorch_fid(random_inception, monkeypatch):
    pf = pytest.importorskip("pytorch_fid.inception", reason="pytorch-fid (needs torchvision) not installed")
    state = inc.random_state_dict(0)
    monkeypatch.setattr(pf, "load_state_dict_from_url", lambda *a, **k: state)  # shared random weights
    theirs = pf.InceptionV3([3], resize_input=True, normalize_input=True).eval()
    images = torch.rand(2, 3, 120, 100, generator=torch.Generator().manual_seed(3))
    with torch.inference_mode():
        torch.testing.assert_close(random_inception(images), theirs(images)[0].flatten(1), rtol=1e-5, atol=1e-6)


def test_frechet_distance_against_pytorch_fid():
    fs = pytest.importorskip("pytorch_fid.fid_score", reason="pytorch-fid (needs torchvision) not installed")
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(300, 64)), rng.normal(size=(300, 64)) * 1.1 + 0.2
    stats = [(x.mean(0), np.cov(x, rowvar=False)) for x in (a, b)]
    theirs = fs.calculate_frechet_distance(*stats[0], *stats[1])
    assert fidmod.frechet_distance(*stats[0], *stats[1]) == pytest.approx(theirs, rel=1e-9)


def test_load_inception(tmp_path, monkeypatch):
    monkeypatch.setenv("TALKBENCH_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("TALKBENCH_INCEPTION", str(tmp_path / "absent.pth"))
    with pytest.raises(WeightsNotFound, match="TALKBENCH_INCEPTION"):
        inc.load_inception()
    rnd = inc.load_inception(allow_random=True, seed=0)
    assert not rnd.calibrated and rnd.weights_sha256 is None
    # other weights in the official layout (here without num_batches_tracked, as old files) load, but
    # uncalibrated: the sha256 does not start with the official 6726825d
    state = {k: v for k, v in inc.random_state_dict(0).items() if not k.endswith("num_batches_tracked")}
    torch.save(state, tmp_path / inc.WEIGHTS_FILE)
    with pytest.raises(WeightsMismatch):
        inc.load_inception(tmp_path / inc.WEIGHTS_FILE, require_official=True)
    net = inc.load_inception(tmp_path / inc.WEIGHTS_FILE)
    assert not net.calibrated and net.weights_sha256 == file_sha256(tmp_path / inc.WEIGHTS_FILE)
    assert torch.equal(net.Mixed_7c.branch_pool.conv.weight, state["Mixed_7c.branch_pool.conv.weight"])
    with pytest.raises(WeightsUnreadable, match="missing"):
        check_layout(inc.FIDInceptionV3(), {k: v for k, v in state.items() if "fc" not in k}, "inception")


# ---------------------------------------------------------------- Fréchet distance and state

def scipy_frechet(mu1, s1, mu2, s2):
    covmean = scipy.linalg.sqrtm(s1 @ s2)
    covmean = np.real(covmean)
    d = mu1 - mu2
    return float(d @ d + np.trace(s1) + np.trace(s2) - 2 * np.trace(covmean))


def test_frechet_distance_equals_scipy_reference():
    rng = np.random.default_rng(0)
    for dim, n in ((8, 50), (64, 400)):
        a = rng.normal(size=(n, dim)) @ rng.normal(size=(dim, dim))
        b = rng.normal(size=(n, dim)) @ rng.normal(size=(dim, dim)) * 0.7 + 0.3
        mu1, s1 = fidmod.feature_stats(a)
        mu2, s2 = fidmod.feature_stats(b)
        np.testing.assert_allclose(s1, np.cov(a, rowvar=False), rtol=1e-10, atol=1e-10)
        ours = fidmod.frechet_distance(mu1, s1, mu2, s2)
        assert abs(ours - scipy_frechet(mu1, s1, mu2, s2)) < 1e-6
        assert ours > 1.0
        assert abs(fidmod.frechet_distance(mu1, s1, mu1, s1)) < 1e-6


def test_reference_decomposition_is_reused_by_content_only():
    """The cached eigendecomposition (one reference, many submissions) is keyed by the matrix's content:
    reusing it changes no value, and a matrix changed in place is decomposed anew."""
    rng = np.random.default_rng(3)
    a, b = rng.normal(size=(80, 16)), rng.normal(size=(60, 16)) + 0.2
    (mu1, s1), (mu2, s2) = fidmod.feature_stats(a), fidmod.feature_stats(b)
    first = fidmod.frechet_distance(mu1, s1, mu2, s2)
    assert fidmod.frechet_distance(mu1, s1, mu2, s2) == first  # from the cache: bit for bit
    assert abs(first - scipy_frechet(mu1, s1, mu2, s2)) < 1e-8
    vals, vecs = fidmod._eigh(s1)
    assert not vals.flags.writeable and not vecs.flags.writeable  # a caller cannot corrupt the cache
    s1 *= 2.0  # same array object, new content
    assert abs(fidmod.frechet_distance(mu1, s1, mu2, s2) - scipy_frechet(mu1, s1, mu2, s2)) < 1e-8
    for _ in range(3):  # more matrices than the cache holds: still exact
        m = np.cov(rng.normal(size=(40, 16)), rowvar=False)
        np.testing.assert_allclose(fidmod._eigh(m)[0], np.linalg.eigvalsh(m), rtol=1e-9, atol=1e-12)
    assert len(fidmod._EIGH_CACHE) <= fidmod._EIGH_CACHE_SIZE


def test_rank_deficient_self_distance_is_zero():
    rng = np.random.default_rng(1)
    feats = np.abs(rng.normal(size=(100, 512)))  # N < D, like an evaluation set of < 2048 frames
    mu, sigma = fidmod.feature_stats(feats)
    assert abs(fidmod.frechet_distance(mu, sigma, mu, sigma)) < 1e-6 * np.trace(sigma)


def test_mergeable_state_equals_one_pass():
    rng = np.random.default_rng(2)
    real = rng.normal(size=(300, 64)).astype(np.float32) + 1
    fake = rng.normal(size=(260, 64)).astype(np.float32) * 1.1 + 1.05
    one = fidmod.FID(feature_dim=64)
    one.update(real, real=True)
    one.update(fake, real=False)
    a, b = fidmod.FID(feature_dim=64), fidmod.FID(feature_dim=64)
    a.update(real[:120], real=True)
    a.update(fake[:200], real=False)
    b.update(torch.from_numpy(real[120:]), real=True)
    b.update(fake[200:], real=False)
    a.merge_state(b)
    with pytest.warns(fidmod.FIDSampleWarning):
        v_one, v_merged = float(one.compute()), float(a.compute())
        v_functional = fidmod.fid(real, fake)
    assert abs(v_one - v_merged) < 1e-9 * v_one
    mu, sigma = fidmod.feature_stats(real)
    assert abs(v_one - fidmod.frechet_distance(mu, sigma, *fidmod.feature_stats(fake))) < 1e-8 * v_one
    m = fidmod.FeatureMoments.from_features(real[:100]).merge(fidmod.FeatureMoments.from_features(real[100:]))
    np.testing.assert_allclose(m.stats()[1], sigma, rtol=1e-9, atol=1e-9)
    assert v_functional == pytest.approx(v_one, rel=1e-12)  # the functional twin: same code path


def test_sample_warning_threshold():
    rng = np.random.default_rng(3)
    small = fidmod.FID(feature_dim=4)
    small.update(rng.normal(size=(100, 4)), real=True)
    small.update(rng.normal(size=(100, 4)), real=False)
    assert "100 reference and 100 generated" in small.low_sample_message()
    with pytest.warns(fidmod.FIDSampleWarning):
        small.compute()
    big = fidmod.FID(feature_dim=4, reference=fidmod.FeatureMoments.from_features(rng.normal(size=(2048, 4))))
    big.update(rng.normal(size=(2048, 4)), real=False)
    assert big.low_sample_message() is None


def test_reference_stats_cache(tmp_path):
    rng = np.random.default_rng(4)
    calls = []

    def compute():
        calls.append(1)
        return fidmod.FeatureMoments.from_features(rng.normal(size=(50, 8)))

    proto = {"image_set": "aligned_crop", "crop_size": 256, "weights_sha256": "abc"}
    m1, cached1 = fidmod.cached_reference_moments(tmp_path, "shardhash", proto, compute)
    m2, cached2 = fidmod.cached_reference_moments(tmp_path, "shardhash", dict(reversed(proto.items())), compute)
    assert (cached1, cached2, len(calls)) == (False, True, 1)
    np.testing.assert_array_equal(m1.outer, m2.outer)
    assert m1.n == m2.n == 50
    _, cached3 = fidmod.cached_reference_moments(tmp_path, "shardhash", {**proto, "crop_size": 224}, compute)
    _, cached4 = fidmod.cached_reference_moments(tmp_path, "otherhash", proto, compute)
    assert (cached3, cached4, len(calls)) == (False, False, 3)
    key = fidmod.stats_cache_key("shardhash", proto)
    (tmp_path / f"fid-ref-{key}.npz").write_bytes(b"not an npz")  # corrupt: recomputed, not trusted
    _, cached5 = fidmod.cached_reference_moments(tmp_path, "shardhash", proto, compute)
    assert not cached5 and len(calls) == 4


# ---------------------------------------------------------------- images through the network

@pytest.fixture(scope="module")
def real_frames(videos_dir):
    from prep.media import read_frames

    frames = read_frames(videos_dir / "w2l_input3.mp4", start=0, stop=80)
    return np.ascontiguousarray(frames[::20, 100:356, 140:396])  # 4 face-region crops, 256x256 RGB


def test_extract_features_batching_and_inputs(random_inception, fused_inception, real_frames):
    as_float = torch.from_numpy(real_frames[:3]).permute(0, 3, 1, 2).float() / 255
    # items of 1 (uint8 HWC) and 2 (float CHW) images, regrouped into batches of 2
    feats = fidmod.extract_features(fused_inception, [real_frames[:1], as_float[1:3]], batch_size=2)
    assert feats.shape == (3, 2048) and feats.dtype == np.float32
    with torch.inference_mode():
        exact = random_inception(as_float).numpy()
    np.testing.assert_allclose(feats, exact, rtol=1e-4, atol=1e-5)


@pytest.mark.filterwarnings("ignore::evalkit.metrics.fid.FIDSampleWarning")
def test_fid_of_set_against_itself_and_planted_noise(fused_inception, real_frames):
    feats = fidmod.extract_features(fused_inception, [real_frames], batch_size=8)
    metric = fidmod.FID(fused_inception)
    metric.update(feats, real=True)
    metric.update(feats, real=False)
    self_fid = float(metric.compute())
    rng = np.random.default_rng(5)
    noisy = np.clip(real_frames + rng.normal(0, 40, real_frames.shape), 0, 255).astype(np.uint8)
    noisy_fid = fidmod.fid(feats, noisy, model=fused_inception)  # images through the metric's model
    trace = np.trace(metric.moments(True).stats()[1])
    assert abs(self_fid) < 1e-9 * trace
    assert noisy_fid > 0.05 * trace  # a planted degradation moves FID far from 0
