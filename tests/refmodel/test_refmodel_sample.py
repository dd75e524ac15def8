"""refmodel sampling and baselines write real submissions: ``<clip_id>.mp4`` that decode with the right
frame count and the driving audio, change only the pasted mouth region, pass evalkit's validation and
score end to end."""
from __future__ import annotations

import json

import numpy as np
import pytest


from prep import media  # noqa: E402
from prep.output import PrepOutput  # noqa: E402

# ``prep_out`` (the real prep job on the first N frames of the two clips) comes from tests/refmodel/conftest.py
CLIPS = ["w2l_input3", "w2l_input4"]
N = 60


def _sources(prep_out) -> dict:
    po = PrepOutput.open(prep_out)
    return {c.clip_id: po.verified_source(c) for c in po.clips()}


@pytest.fixture(scope="module")
def run_dir(prep_out, tmp_path_factory):
    from refmodel.sync_training import train_sync_expert
    from refmodel.train import train

    run = tmp_path_factory.mktemp("run")
    train_sync_expert(prep_out, run / "sync_expert.pt", "tiny", steps=5, seed=0)
    train(prep_out, run, "tiny", steps=4, seed=0, overrides={"batch_size": 1}, progress=False)
    return run


@pytest.fixture(scope="module")
def sampled(run_dir, prep_out, tmp_path_factory):
    from refmodel.sample import sample_videos

    out = tmp_path_factory.mktemp("sub")
    return out, sample_videos(run_dir / "checkpoint.pt", prep_out, out, steps=2, seed=0, progress=False)


def _mask_in_source(prep_out, clip, shape):
    """Per frame: where the pasted mouth mask lands in the source frame (> 0), via the stored affine."""
    import cv2

    from refmodel.submission import paste_mask

    mask = paste_mask(256)
    t = PrepOutput.open(prep_out).clip_frames(clip, ["frame_index", "affine"]).to_pylist()
    return {r["frame_index"]: cv2.warpAffine(mask, np.asarray(r["affine"], np.float64).reshape(2, 3),
                                             (shape[1], shape[0]), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP)
            for r in t}


def test_sampling_writes_reconstruction_submissions(sampled, prep_out):
    out, paths = sampled
    assert [p.name for p in paths] == [f"{c}.mp4" for c in CLIPS]
    sources = _sources(prep_out)
    for clip, path in zip(CLIPS, paths):
        got = media.decode_clip(path)
        src = media.decode_clip(sources[clip])
        assert got.frames.shape == src.frames.shape == (N,) + src.frames.shape[1:]
        assert len(got.audio) == len(src.audio) == N * 640
        # own audio muxed (AAC round trip: correlation, not equality)
        assert np.corrcoef(got.audio, src.audio)[0, 1] > 0.95
        masks = _mask_in_source(prep_out, clip, src.frames.shape[1:3])
        diff = np.abs(got.frames.astype(np.int16) - src.frames.astype(np.int16)).mean(axis=3)
        inside = np.mean([diff[f][masks[f] > 0.5].mean() for f in range(N)])
        outside = np.mean([diff[f][masks[f] == 0].mean() for f in range(N)])
        assert outside < 3.0, "pixels outside the pasted mouth region must stay the source's"
        assert inside > outside + 3.0, "the mouth region must be the generated one"
    report = json.loads((out / "sample_report.json").read_text())
    for clip in CLIPS:
        r = report["clips"][clip]
        assert r["frames"] == N and r["generated_frames"] == N
        assert np.isfinite(r["flicker"]) and r["flicker"] >= 0 and np.isfinite(r["source_flicker"])


def test_cross_audio_and_baselines(run_dir, prep_out, tmp_path):
    from refmodel.baselines import write_baseline
    from refmodel.sample import sample_videos

    cross = sample_videos(run_dir, prep_out, tmp_path / "cross", clip_ids=["w2l_input3"], audio_from="w2l_input4",
                          steps=1, progress=False)
    got = media.decode_clip(cross[0])
    other = media.decode_clip(_sources(prep_out)["w2l_input4"])
    assert len(got.frames) == N and np.corrcoef(got.audio, other.audio)[0, 1] > 0.95

    for name in ("mean-fill", "copy-reference", "clip-mean"):
        paths = write_baseline(name, prep_out, tmp_path / name, progress=False)
        assert sorted(p.name for p in paths) == sorted(f"{c}.mp4" for c in CLIPS)
        for p in paths:
            d = media.decode_clip(p)
            assert len(d.frames) == N and len(d.audio) == N * 640


def test_baseline_crops():
    from refmodel.baselines import baseline_crops

    rng = np.random.default_rng(0)
    crops = {f: rng.integers(0, 256, (8, 8, 3), dtype=np.uint8) for f in range(12)}
    clip_mean = baseline_crops("clip-mean", crops)
    want = np.rint(np.mean([c[4:].astype(float) for c in crops.values()], axis=0))
    for f, c in clip_mean.items():
        np.testing.assert_array_equal(c[:4], crops[f][:4])
        np.testing.assert_array_equal(c[4:], want)
    dataset_mean = rng.uniform(0, 255, (8, 8, 3)).astype(np.float32)
    for f, c in baseline_crops("mean-fill", crops, mean_crop=dataset_mean).items():
        np.testing.assert_array_equal(c[:4], crops[f][:4])
        np.testing.assert_array_equal(c[4:], np.rint(dataset_mean[4:]))
    with pytest.raises(ValueError):
        baseline_crops("mean-fill", crops)  # needs the dataset mean
    copy = baseline_crops("copy-reference", crops, min_ref_gap=5)
    for f, c in copy.items():
        np.testing.assert_array_equal(c[:4], crops[f][:4])
        assert any(np.array_equal(c[4:], crops[r][4:]) for r in crops if abs(r - f) >= 5)
    with pytest.raises(ValueError):
        baseline_crops("nope", crops)


def test_dataset_mean_crop(prep_out):
    from prep.output import decode_crop
    from refmodel.baselines import dataset_mean_crop

    crops = [decode_crop(b) for batch in PrepOutput.open(prep_out).frame_batches(["crop"])
             for b in batch.column("crop").to_pylist()]
    np.testing.assert_allclose(dataset_mean_crop(prep_out), np.mean(crops, axis=0), atol=1e-3)
    assert dataset_mean_crop(prep_out, size=32).shape == (32, 32, 3)
    sub = dataset_mean_crop(prep_out, max_frames=30)  # every 4th of 120 rows
    np.testing.assert_allclose(sub, np.mean(crops[::4], axis=0), atol=1e-3)


def test_submissions_pass_evalkit_and_score(sampled, run_dir, prep_out, tmp_path):
    import evalkit.submission as evalkit_sub
    from evalkit.runner import evaluate

    out, _ = sampled
    accepted, skipped = evalkit_sub.validate_submission(prep_out, out)
    assert [v.clip_id for v in accepted] == CLIPS and skipped == []
    res = evaluate(prep_out, out, tmp_path / "eval", metrics=["psnr", "sync_inhouse"], scheduler="synchronous",
                   sync_expert=run_dir / "sync_expert.pt")
    for name in ("psnr", "sync_inhouse"):
        m = res["metrics"][name]
        assert m["n_scored"] == 2 and m["skipped_reason"] is None and np.isfinite(m["value"]), (name, m)
    assert 10.0 < res["metrics"]["psnr"]["value"] < 60.0  # whole aligned crop: only the mouth was replaced
    assert -1.0 <= res["metrics"]["sync_inhouse"]["value"] <= 1.0
    assert (tmp_path / "eval" / "results.json").exists()


def test_cli_train_and_sample(prep_out, run_dir, tmp_path):
    from talkbench.cli import main

    rc = main(["sample", "--baseline", "mean-fill", str(prep_out), "--out", str(tmp_path / "mf"), "--clips",
               "w2l_input3", "--no-progress"])
    assert rc == 0 and (tmp_path / "mf" / "w2l_input3.mp4").exists()
    assert not (tmp_path / "mf" / "w2l_input4.mp4").exists()
    rc = main(["train", str(prep_out), "--out", str(tmp_path / "run"), "--steps", "2", "--set", "batch_size=1",
               "--set", "sync_weight=0", "--no-progress"])
    assert rc == 0 and (tmp_path / "run" / "checkpoint.pt").exists()
    rc = main(["sample", str(tmp_path / "run"), str(prep_out), "--out", str(tmp_path / "s"), "--clips", "w2l_input4",
               "--steps", "1", "--no-progress"])
    assert rc == 0 and (tmp_path / "s" / "w2l_input4.mp4").exists()
