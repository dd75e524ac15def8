"""One conformance harness for every registered metric (in the spirit of torchmetrics' ``MetricTester``).

For each spec, synthetic videos (with missing faces / landmarks) are fed through the spec exactly as the
worker feeds it, and the harness checks: the spec equals the metric's functional form; feeding a video in
chunks equals feeding it whole; the merged dataset value does not depend on the order videos are merged
in; a video with nothing to score gives no value and a reason, and leaves the dataset value alone.
Adding a metric means adding its case here: the first test fails for a registered metric without one.
"""
from __future__ import annotations

import itertools
import math

import numpy as np
import pytest

from evalkit import metrics
from evalkit.config import EvalConfig
from evalkit.metrics.base import MergeContext
from evalkit.metrics.cpbd import cpbd
from evalkit.metrics.csim import csim
from evalkit.metrics.lmd import lmd
from evalkit.metrics.psnr import psnr
from evalkit.metrics.ssim import ssim

CONFIG = EvalConfig(csim_stride=1)
N_VIDEOS, FRAMES = 5, 23


class FakeChunk:
    """What a metric's ``feed`` reads from :class:`evalkit.inputs.ChunkInputs`, given directly."""

    def __init__(self, size: int, **inputs):
        self.size = size
        self.__dict__.update(inputs)


class FakeVideo:
    """What a metric's ``finish`` reads from :class:`evalkit.inputs.VideoInputs`."""

    def __init__(self, n_frames: int, **inputs):
        self.n_frames = n_frames
        self.__dict__.update(inputs)


# ---------------------------------------------------------------- per-metric cases

def _images(rng, valid):
    ref = rng.integers(0, 256, (FRAMES, 24, 24, 3), dtype=np.uint8)
    noise = rng.integers(-20, 21, ref.shape)
    return {"ref": ref, "gen": np.clip(ref.astype(int) + noise, 0, 255).astype(np.uint8), "valid": valid}


def _region_chunk(v, a, b):
    pos = np.flatnonzero(v["valid"][a:b])
    return FakeChunk(b - a, region_pairs=(v["ref"][a:b][pos], v["gen"][a:b][pos], pos))


def _landmarks(rng, valid):
    ref = rng.normal(100, 20, (FRAMES, 68, 2))
    gen = ref + rng.normal(0, 2, ref.shape)
    gen[~valid] = np.nan
    return {"ref": ref, "gen": gen, "valid": valid}


def _lm_chunk(v, a, b):
    return FakeChunk(b - a, landmarks=(v["ref"][a:b], v["gen"][a:b]))


def _embeddings(rng, valid):
    ref = rng.normal(0, 1, (FRAMES, 128))
    return {"ref": ref, "gen": ref + rng.normal(0, 0.5, ref.shape), "valid": valid}


def _emb_chunk(v, a, b):
    pos = np.flatnonzero(v["valid"][a:b])
    return FakeChunk(b - a, embeddings=(pos, v["ref"][a:b][pos], v["gen"][a:b][pos]))


def _features(rng, valid):
    return {"fake": rng.normal(0.3, 1, (FRAMES, 8))[valid], "valid": valid}


def _fid_chunk(v, a, b):
    keep = np.flatnonzero(v["valid"])
    sel = keep[(keep >= a) & (keep < b)]
    return FakeChunk(b - a, fid_features=v["fake"][np.searchsorted(keep, sel)])


def _faces(rng, valid):
    """64-px face crops (one CPBD block) with edges of random sharpness."""
    import cv2

    base = rng.integers(0, 256, (FRAMES, 16, 16, 3), dtype=np.uint8)
    crops = np.stack([cv2.resize(b, (64, 64), interpolation=cv2.INTER_NEAREST) for b in base])
    crops = np.stack([cv2.GaussianBlur(c, (0, 0), s) for c, s in zip(crops, rng.uniform(0.3, 2.0, FRAMES))])
    return {"crops": crops, "valid": valid}


def _face_chunk(v, a, b):
    pos = np.flatnonzero(v["valid"][a:b])
    return FakeChunk(b - a, gen_face_crops=(v["crops"][a:b][pos], pos), index=np.arange(a, b), config=CONFIG)


def _lpips_values(rng, valid):
    return {"d": rng.uniform(0.05, 0.6, FRAMES), "valid": valid}


def _lpips_chunk(v, a, b):
    pos = np.flatnonzero(v["valid"][a:b])
    return FakeChunk(b - a, lpips=(v["d"][a:b][pos], pos))


def _arc_chunk(v, a, b):
    pos = np.flatnonzero(v["valid"][a:b])
    return FakeChunk(b - a, arcface_embeddings=(pos, v["ref"][a:b][pos], v["gen"][a:b][pos]))


_PROJ = np.random.default_rng(42).normal(0, 1, (48, 6))


def _fake_i3d(clips):
    """A deterministic stand-in for the I3D: per-frame channel means of the clip, projected to 6-d."""
    return clips.mean(dim=(3, 4)).flatten(1).double().numpy() @ _PROJ


def _clips(rng, valid):
    """Mostly-face videos (FVD needs all 16 frames of a window): the case's gaps would leave no clip."""
    own = np.full(FRAMES, bool(valid.any()))
    if own.any() and rng.random() < 0.5:
        own[rng.integers(0, 16)] = False  # the first window loses a frame: no clip from this video
    ref = rng.integers(0, 256, (FRAMES, 8, 8, 3), dtype=np.uint8)
    gen = np.clip(ref.astype(int) + rng.integers(-30, 31, ref.shape), 0, 255).astype(np.uint8)
    return {"ref": ref, "gen": gen, "valid": own}


def _clip_chunk(v, a, b):
    pos = np.flatnonzero(v["valid"][a:b])
    return FakeChunk(b - a, fvd_frames=(v["ref"][a:b][pos], v["gen"][a:b][pos], pos), index=np.arange(a, b),
                     i3d_features=_fake_i3d)


def _lse(rng, valid):
    from evalkit.metrics.lse import scores_from_distances

    import torch

    if not valid.any():
        return {"error": ValueError("no reference face in any frame")}
    r = scores_from_distances(torch.from_numpy(rng.uniform(5, 15, (int(valid.sum()), 31))).float())
    return {"lse": {**r, "num_windows": int(valid.sum())}}


def _sync(rng, valid):
    score = float(rng.uniform(-1, 1)) if valid.any() else float("nan")
    return {"sync_expert": {"score": score, "offset": 0, "confidence": 0.1, "num_windows": int(valid.sum())}}


def _face_landmarks(rng, valid, n=80):
    """n frames of a plausible 68-point face (eyes open, with a few blinks and mouth motion); all NaN when
    ``valid`` has no frame (nothing to score)."""

    base = np.zeros((68, 2))
    base[:, 0] = np.linspace(60, 140, 68)
    base[:, 1] = 100 + rng.normal(0, 3, 68)
    for eye, x0 in ((slice(36, 42), 70.0), (slice(42, 48), 110.0)):  # p1..p6 of each eye
        base[eye] = [(x0, 80), (x0 + 6, 76), (x0 + 14, 76), (x0 + 20, 80), (x0 + 14, 84), (x0 + 6, 84)]
    base[60:68] = [(90, 130), (95, 128), (100, 128), (105, 128), (110, 130), (105, 132), (100, 132), (95, 132)]
    lm = np.repeat(base[None], n, 0) + rng.normal(0, 0.2, (n, 68, 2))
    for t0 in rng.choice(np.arange(5, n - 5), 3, replace=False):
        lm[t0:t0 + 2, [37, 38, 43, 44], 1] += 3.5  # upper lids down: EAR dips
        lm[t0:t0 + 2, [40, 41, 46, 47], 1] -= 3.5
    lm[:, [65, 66, 67], 1] += 3 * np.abs(np.sin(np.arange(n) / 3))[:, None]  # the mouth opens and closes
    lm[rng.random(n) < 0.1] = np.nan
    if not valid.any():
        lm[:] = np.nan
    return lm


def _motion_video(rng, valid):
    from evalkit.metrics._motion import euler_rotation

    lm = _face_landmarks(rng, valid)
    n = len(lm)
    audio = rng.normal(0, 0.3, n * 640) * np.repeat(np.arange(n) % 30 < 18, 640)  # speech 18, silence 12 frames
    rot = euler_rotation(np.cumsum(rng.normal(0, 0.01, (n, 3)), axis=0))
    rot[~np.isfinite(lm).all(axis=(1, 2))] = np.nan
    return {"gen_landmarks_px": lm, "gen_audio": audio, "gen_head_pose": (rot, "landmarks")}


def _exp_video(rng, valid):
    k = int(valid.sum())
    if not k:
        return {"error": ValueError("no frame with both a reference and a generated 3DMM fit"), "key": "gen_mm_exp"}
    ref = rng.normal(0, 1, (k, 10))
    return {"gen_mm_exp": (ref * 0.5 + rng.normal(0, 0.3, ref.shape), ref)}


_VIDEO_KEYS = ("lse", "sync_expert", "gen_landmarks_px", "gen_audio", "gen_head_pose", "gen_mm_exp")


def _video_inputs(v):
    if "error" in v:
        key = v.get("key", "lse")

        class Failing(FakeVideo):
            def __getattr__(self, name):
                if name == key:
                    raise v["error"]
                raise AttributeError(name)
        return Failing(FRAMES)
    return FakeVideo(FRAMES, **{k: v[k] for k in _VIDEO_KEYS if k in v})


def _frame_mean(fn):
    def expected(v):
        ok = v["valid"]
        return fn(v, ok) if ok.any() else None
    return expected


CASES = {
    "psnr": (_images, _region_chunk, _frame_mean(lambda v, ok: psnr(v["ref"][ok], v["gen"][ok], CONFIG.psnr_cap_db))),
    "ssim": (_images, _region_chunk,
             _frame_mean(lambda v, ok: ssim(v["ref"][ok], v["gen"][ok], CONFIG.ssim_kernel, CONFIG.ssim_sigma))),
    "lmd_mouth": (_landmarks, _lm_chunk, _frame_mean(lambda v, ok: lmd(v["ref"], v["gen"], "mouth", CONFIG.lmd_preset))),
    "lmd_face": (_landmarks, _lm_chunk, _frame_mean(lambda v, ok: lmd(v["ref"], v["gen"], "face", CONFIG.lmd_preset))),
    "csim": (_embeddings, _emb_chunk, _frame_mean(lambda v, ok: csim(v["ref"][ok], v["gen"][ok]))),
    "cpbd": (_faces, _face_chunk, _frame_mean(lambda v, ok: float(np.mean([cpbd(c) for c in v["crops"][ok]])))),
    "fid": (_features, _fid_chunk, None),  # a set-level metric: checked on the dataset value below
    "fvd": (_clips, _clip_chunk, None),  # set-level, like FID
    "lpips": (_lpips_values, _lpips_chunk, _frame_mean(lambda v, ok: float(v["d"][ok].mean()))),
    "csim_arcface": (_embeddings, _arc_chunk, _frame_mean(lambda v, ok: csim(v["ref"][ok], v["gen"][ok]))),
    "lse_d": (_lse, None, lambda v: v["lse"]["lse_d"] if "lse" in v else None),
    "lse_c": (_lse, None, lambda v: v["lse"]["lse_c"] if "lse" in v else None),
    "sync_inhouse": (_sync, None, lambda v: v["sync_expert"]["score"] if v["valid"].any() else None),
    "blink_rate": (_motion_video, None, lambda v: _m().blink_rate(v["gen_landmarks_px"])[0]),
    "head_motion": (_motion_video, None, lambda v: _m().head_motion(v["gen_head_pose"][0])[0]),
    "head_motion_spread": (_motion_video, None, lambda v: _m().head_motion(v["gen_head_pose"][0])[1]),
    "lipleak": (_motion_video, None, lambda v: _m().lipleak(v["gen_landmarks_px"], v["gen_audio"])[0]),
    "fid_exp": (_exp_video, None, None),  # set-level: checked on the dataset value below
}


def _m():
    from evalkit.metrics import _motion

    return _motion


def _videos(name, seed=0):
    make = CASES[name][0]
    rng = np.random.default_rng(seed)
    out = []
    for i in range(N_VIDEOS):
        valid = rng.random(FRAMES) > 0.3
        if i == N_VIDEOS - 1:
            valid[:] = False  # nothing to score in the last video
        v = make(rng, valid)
        v.setdefault("valid", valid)
        out.append(v)
    return out


def _score(spec, v, cuts):
    """Feed one video in the chunks given by ``cuts`` and finish it, as the worker does."""
    acc = spec.new(CONFIG)
    if spec.feed is not None:
        bounds = [0, *cuts, FRAMES]
        for a, b in zip(bounds[:-1], bounds[1:]):
            spec.feed(acc, CASES[spec.name][1](v, a, b))
    return spec.finish(acc, _video_inputs(v))


def _ctx(name, videos):
    if name != "fid":
        return MergeContext(CONFIG)
    from evalkit.metrics.fid import FeatureMoments

    real = np.random.default_rng(99).normal(0, 1, (40, 8))
    return MergeContext(CONFIG, FeatureMoments.from_features(real))


def _summary(spec, values, ctx):
    merged = spec.merger(CONFIG)
    for v in values:
        spec.merge(merged, v)
    return spec.summary(merged, ctx)


# ---------------------------------------------------------------- the harness

def test_every_registered_metric_has_a_conformance_case():
    assert set(CASES) == {s.name for s in metrics.all_specs()}


@pytest.mark.parametrize("name", sorted(CASES))
def test_chunked_equals_whole_and_equals_the_functional(name):
    spec = metrics.get(name)
    expected = CASES[name][2]
    for v in _videos(name):
        whole = _score(spec, v, [])
        chunked = _score(spec, v, [4, 5, 17])
        if expected is not None:
            want = expected(v)
            if want is None:
                assert whole.value is None and whole.reason, name
            else:
                assert whole.value == pytest.approx(want, rel=1e-9, abs=1e-12), name
        assert (whole.value is None) == (chunked.value is None)
        if whole.value is not None:
            assert chunked.value == pytest.approx(whole.value, rel=1e-12, abs=1e-12)
        assert whole.reason == chunked.reason
        if name == "fid" and whole.reason is None:
            np.testing.assert_array_equal(whole.state, chunked.state)
        if name in ("blink_rate", "lipleak") and whole.value is not None:
            assert whole.value > 0, name  # the planted blinks / mouth motion are found
        if name == "fvd" and whole.reason is None:
            for a, b in zip(whole.state, chunked.state):
                np.testing.assert_array_equal(a, b)


@pytest.mark.filterwarnings("ignore::evalkit.metrics.fid.FIDSampleWarning")
@pytest.mark.parametrize("name", sorted(CASES))
def test_merge_order_does_not_matter_and_empty_videos_count_nothing(name):
    spec = metrics.get(name)
    videos = _videos(name, seed=1)
    values = [_score(spec, v, [7]) for v in videos]
    ctx = _ctx(name, videos)
    ref = _summary(spec, values, ctx)
    for perm in itertools.islice(itertools.permutations(range(len(values))), 0, 24, 5):
        got = _summary(spec, [values[i] for i in perm], ctx)
        if name in ("fid", "fid_exp", "fvd"):  # float64 moment sums: order changes the last bits (clip order in the runner)
            assert got["value"] == pytest.approx(ref["value"], rel=1e-12) and got["n"] == ref["n"]
        else:  # per-video values are summarised sorted: exactly the same
            assert got == ref
    scored = [v for v in values if v.reason is None]
    assert values[-1].reason and values[-1].value is None  # the video with nothing to score
    assert _summary(spec, values[:-1], ctx) == ref
    if name == "fid_exp":
        from evalkit.metrics.fid import fid

        gen = np.concatenate([v["gen_mm_exp"][0] for v in videos if "gen_mm_exp" in v])
        ref_set = np.concatenate([v["gen_mm_exp"][1] for v in videos if "gen_mm_exp" in v])
        assert ref["value"] == pytest.approx(fid(ref_set, gen), rel=1e-9) and ref["frames"] == len(gen)
    elif name == "fvd":
        import torch

        from evalkit.metrics.fvd import fvd
        from evalkit.nets.i3d import preprocess

        whole = [v for v in videos if v["valid"][:16].all()]
        assert len(whole) >= 2 and ref["n"] == len(whole) and ref["n_samples"] == len(whole)
        feats = [[_fake_i3d(torch.stack([preprocess(v[side][:16])])) for v in whole] for side in ("ref", "gen")]
        assert ref["value"] == pytest.approx(fvd(np.concatenate(feats[0]), np.concatenate(feats[1])), rel=1e-9)
        assert ref["value"] > 0 and "biased" in ref["warning"]
    elif name == "fid":
        from evalkit.metrics.fid import fid

        real = np.random.default_rng(99).normal(0, 1, (40, 8))
        fake = np.concatenate([v["fake"] for v in videos if len(v["fake"])])
        assert ref["value"] == pytest.approx(fid(real, fake), rel=1e-9) and ref["n_samples"] == len(fake)
    else:
        per_video = np.array([v.value for v in scored])
        assert ref["n"] == len(scored) and ref["value"] == pytest.approx(per_video.mean(), rel=1e-12)
        assert ref["stderr"] == pytest.approx(per_video.std(ddof=1) / math.sqrt(len(per_video)), rel=1e-9)


@pytest.mark.parametrize("name", sorted(CASES))
def test_protocol_is_strict_json_built_from_the_config(name):
    from talkbase.results import canonical_json

    spec = metrics.get(name)
    p = spec.protocol(CONFIG)
    assert p["version"] == spec.version and canonical_json(p) == canonical_json(spec.protocol(EvalConfig(csim_stride=1)))
    assert spec.modes and spec.label and isinstance(spec.higher_is_better, bool)


def test_protocol_follows_the_settings_it_is_made_of():
    changed = {"psnr": dict(region="full"), "ssim": dict(ssim_sigma=2.0), "lmd_mouth": dict(lmd_preset="atvgnet"),
               "fid": dict(fid_stride=3), "lse_d": dict(lse_crop="syncnet-pipeline"), "csim": dict(csim_stride=7),
               "cpbd": dict(cpbd_stride=2), "lpips": dict(lpips_net="vgg"), "fvd": dict(region="full"),
               "csim_arcface": dict(csim_stride=3)}
    for name, kw in changed.items():
        spec = metrics.get(name)
        assert spec.protocol(CONFIG) != spec.protocol(CONFIG.with_(**kw)), name
