"""The one-shot model's videos: ``talkbench sample`` submissions (dispatched on the checkpoint's kind) pass
evalkit's validation and score end to end; ``talkbench animate`` turns a photo + an audio file into a 25 fps
video of the audio's length; untrusted inputs fail cleanly; the dlib measures of a video find what the
synthetic data is known to contain."""
from __future__ import annotations

import json

import numpy as np
import pytest

from prep import media
from prep.output import PrepOutput
from refmodel.oneshot import measure


def _clip_ids(prep_out, split=None):
    return [c.clip_id for c in PrepOutput.open(prep_out).clips(split=split)]


@pytest.fixture(scope="module")
def submission(oneshot_run, oneshot_data, tmp_path_factory):
    from talkbench.cli import main

    out = tmp_path_factory.mktemp("oneshot_sub")
    test_ids = _clip_ids(oneshot_data[1], "test")
    rc = main(["sample", str(oneshot_run), str(oneshot_data[1]), "--out", str(out), "--clips", *test_ids,
               "--no-progress"])
    assert rc == 0
    return out, test_ids


def test_sample_writes_one_shot_submissions(submission, oneshot_data):
    out, ids = submission
    prep = PrepOutput.open(oneshot_data[1])
    report = json.loads((out / "sample_report.json").read_text())
    assert report["model"] == "oneshot3dmm" and set(report["clips"]) == set(ids)
    for cid in ids:
        clip = prep.clip(cid)
        got = media.decode_clip(out / f"{cid}.mp4")
        src = media.decode_clip(prep.verified_source(clip))
        assert got.num_frames == clip.num_frames and got.frames.shape[1:] == src.frames.shape[1:]
        np.testing.assert_allclose(got.audio, src.audio, atol=0.05)  # its own audio, muxed
        assert report["clips"][cid]["pose"] == "teacher"
        ref = report["clips"][cid]["reference_frame"]
        # the background stays the reference frame's; the face differs from the still reference somewhere
        diff = np.abs(got.frames.astype(float) - src.frames[ref]).mean(axis=(1, 2, 3))
        assert diff.max() > 1.0 and diff.min() < 12.0, (cid, diff.min(), diff.max())


def test_sample_passes_evalkit_and_scores(submission, oneshot_data, tmp_path):
    import evalkit.submission as evalkit_sub
    from evalkit.runner import evaluate

    out, ids = submission
    accepted, skipped = evalkit_sub.validate_submission(oneshot_data[1], out, split="test")
    assert sorted(v.clip_id for v in accepted) == sorted(ids) and skipped == []
    res = evaluate(oneshot_data[1], out, tmp_path / "eval", metrics=["psnr", "ssim", "lmd_mouth"], scheduler="synchronous",
                   split="test", submission_meta={"name": "oneshot3dmm-test", "model": "oneshot3dmm", "kind": "model"})
    for name in ("psnr", "ssim", "lmd_mouth"):
        m = res["metrics"][name]
        assert m["n_scored"] == len(ids) and np.isfinite(m["value"]), (name, m)
    assert 12.0 < res["metrics"]["psnr"]["value"] < 60.0
    assert (tmp_path / "eval" / "results.json").exists()


def test_sample_cross_mode_samples_the_pose(oneshot_run, oneshot_data, tmp_path):
    from refmodel.oneshot.sample import sample_videos

    ids = _clip_ids(oneshot_data[1], "test")
    paths = sample_videos(oneshot_run, oneshot_data[1], tmp_path, clip_ids=ids[:1], audio_from=ids[-1], seed=3,
                          progress=False)
    report = json.loads((tmp_path / "sample_report.json").read_text())
    assert report["clips"][ids[0]]["pose"] == "sampled" and report["clips"][ids[0]]["driving_audio"] == ids[-1]
    assert media.count_frames(paths[0]) == PrepOutput.open(oneshot_data[1]).clip(ids[0]).num_frames


def _photo_and_audio(oneshot_data, tmp_path, seconds=2.2):
    """A held-out identity's still (the third look-alike, never in ``oneshot_data``) and unseen speech."""
    from PIL import Image

    from talkbench.demo_data import identity_stills, synthesize_speech

    still = identity_stills(3)[2]
    photo = tmp_path / "photo.png"
    Image.fromarray(still.image).save(photo)
    wav = synthesize_speech(seconds, seed=99)
    audio = media.write_video(tmp_path / "speech.mp4", np.zeros((int(seconds * 25), 64, 64, 3), np.uint8), wav)
    return photo, audio, wav


def test_animate_a_photo_with_any_audio(oneshot_run, oneshot_data, tmp_path):
    from talkbench.cli import main

    photo, audio, wav = _photo_and_audio(oneshot_data, tmp_path)
    out = tmp_path / "talk.mp4"
    rc = main(["animate", str(photo), str(audio), "--checkpoint", str(oneshot_run), "--out", str(out), "--seed", "4",
               "--no-progress"])
    assert rc == 0
    info = media.probe(out)
    assert (info.video_codec, info.audio_codec, round(info.src_fps)) == ("h264", "aac", 25)
    got = media.decode_clip(out)
    assert abs(got.num_frames - len(wav) / 640) <= 1
    assert got.frames.shape[1:] == (256, 256, 3)  # the photo's own frame
    meta = json.loads((tmp_path / "talk.mp4.json").read_text())
    assert meta["seed"] == 4 and len(meta["blink_code"]) == got.num_frames
    # the head moves: the sampled pose changes the frames beyond the face region too
    assert np.abs(np.diff(got.frames.astype(np.float32), axis=0)).mean() > 0.05
    rep = measure.video_report(out)
    assert rep["face_fraction"] >= 0.9, rep["face_fraction"]


def test_animate_pose_from_a_real_clip(oneshot_run, oneshot_data, tmp_path):
    from refmodel.oneshot.animate import animate, clip_pose

    photo, audio, _ = _photo_and_audio(oneshot_data, tmp_path, seconds=1.2)
    clip = oneshot_data[0] / "spk00" / "clip00.mp4"
    pose = clip_pose(clip, 40)
    assert pose.shape == (40, 6) and np.isfinite(pose).all() and pose[:, 2].std() > 0
    out = animate(photo, audio, oneshot_run, tmp_path / "posed.mp4", pose_from=clip, progress=False)
    meta = json.loads((tmp_path / "posed.mp4.json").read_text())
    np.testing.assert_allclose(np.asarray(meta["pose_rel"]), clip_pose(clip, meta["frames"]), atol=1e-4)
    assert media.count_frames(out) == meta["frames"]


def test_animate_refuses_bad_inputs(oneshot_run, oneshot_data, tmp_path, capsys):
    from talkbench.cli import main

    photo, audio, _ = _photo_and_audio(oneshot_data, tmp_path, seconds=0.6)
    not_image = tmp_path / "notes.png"
    not_image.write_text("print('hello')")
    blank = tmp_path / "blank.png"
    from PIL import Image

    Image.fromarray(np.full((200, 200, 3), 128, np.uint8)).save(blank)
    cases = [([str(not_image), str(audio)], "not a readable image"),
             ([str(blank), str(audio)], "no face found"),
             ([str(photo), str(photo)], "audio"),
             ([str(photo), str(tmp_path / "missing.wav")], "not a file")]
    for args, message in cases:
        rc = main(["animate", *args, "--checkpoint", str(oneshot_run), "--out", str(tmp_path / "x.mp4"), "--no-progress"])
        assert rc == 2 and message in capsys.readouterr().err, args
    assert not (tmp_path / "x.mp4").exists()


def test_animate_needs_a_oneshot_checkpoint(tmp_path, capsys):
    import torch

    from talkbench.cli import main

    torch.save({"kind": "talkbench.refmodel.diffusion"}, tmp_path / "checkpoint.pt")
    rc = main(["animate", "a.png", "b.wav", "--checkpoint", str(tmp_path), "--out", str(tmp_path / "o.mp4")])
    assert rc == 2 and "oneshot3dmm" in capsys.readouterr().err


def test_measures_find_the_known_blinks_and_mouth(oneshot_data):
    from talkbench.demo_data import mouth_openness

    videos, _ = oneshot_data
    meta = json.loads((videos / "synthesis.json").read_text())
    clip = next(c for c in meta["clips"] if c["speaker"] == "spk00")
    path = videos / clip["path"]
    rep = measure.video_report(path, true_opening=mouth_openness(media.decode_clip(path).audio))
    assert rep["face_fraction"] == 1.0
    assert rep["r_mouth"] > 0.8, rep["r_mouth"]  # test_demo_data measures 0.91-1.00 with the same gap
    onsets = np.round(np.asarray(clip["blinks"]["onsets_s"]) * 25).astype(int)
    assert len(rep["blinks"]) == len(onsets), (rep["blinks"], onsets)
    assert np.abs(np.asarray(rep["blinks"]) - onsets).max() <= 3
    assert rep["centre_std_px"] > 0.3  # the synthetic head moves


def test_count_blinks_and_head_motion_math():
    ear = np.full(100, 0.3)
    ear[[20, 21, 22, 60, 61]] = 0.1
    ear[63] = 0.12  # merged with the blink at 60 (gap of 1 frame)
    ear[90] = np.nan
    assert measure.count_blinks(ear) == [20, 60]
    assert measure.count_blinks(np.full(10, np.nan)) == []
    lm = np.zeros((5, 68, 2))
    lm[:, 36:42] = [10.0, 10.0]
    lm[:, 42:48] = [30.0, 10.0]
    still = measure.head_motion(lm)
    assert still["centre_std_px"] == 0 and still["angle_std_deg"] == 0
    lm[:, 42:48, 1] += np.arange(5)[:, None]
    moving = measure.head_motion(lm)
    assert moving["angle_std_deg"] > 1 and moving["centre_std_px"] > 0
