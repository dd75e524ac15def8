"""Motion statistics on real clips: blinks checked against a count made by looking at the frames, and planted
cases (a frozen-frame video with the original audio) through the whole evaluation."""
from __future__ import annotations

import numpy as np
import pytest

from evalkit.metrics import _motion

# Made by eye: every frame of the clip was saved as a contact sheet of eye-region crops (10 per row, frame
# number on each, PNG) and looked at with an image viewer. latentsync_demo1: the eyes close at frames 3-5,
# 50-51, 69-71, 91-96, 127-131, 162-165, 183-186 and 212-214, and start closing at 249 (the last frame): 9.
# w2l_input4 (at 25 fps): one quick, half-closed blink at frame 90. (w2l_input3 is left out: glasses with
# glare hide the eyes; latentsync_demo2: a long smile narrows the eyes for ~70 frames, ambiguous by eye.)
BLINKS_BY_EYE = {"latentsync_demo1": (9, [(3, 5), (50, 51), (69, 71), (91, 96), (127, 131), (162, 165),
                                          (183, 186), (212, 214), (249, 249)]),
                 "w2l_input4": (1, [(90, 90)])}


def _landmarks(path):
    from prep.faces import get_backend
    from prep.media import read_frames

    backend = get_backend("dlib")
    frames = read_frames(path)
    scale = 0.5 if frames.shape[2] > 1000 else 1.0
    out = np.full((len(frames), 68, 2), np.nan)
    for i, f in enumerate(frames):
        d = backend.detect([f], scale=scale)[0]
        if len(d):
            out[i] = backend.landmarks([f], [d[np.argmax((d[:, 2] - d[:, 0]) * (d[:, 3] - d[:, 1]))]])[0]
    return out


@pytest.mark.parametrize("name", sorted(BLINKS_BY_EYE))
def test_blinks_match_the_count_made_by_eye(videos_dir, name):
    lm = _landmarks(videos_dir / f"{name}.mp4")
    count, runs = BLINKS_BY_EYE[name]
    found = _motion.blink_runs(_motion.eye_aspect_ratio(lm))
    assert len(found) == count
    # each blink seen by eye overlaps one found (frame numbers may differ by one at the edges)
    assert all(any(a <= f1 + 1 and f0 <= b + 1 for a, b in found) for f0, f1 in runs)
    frozen = np.repeat(lm[np.isfinite(lm).all(axis=(1, 2))][:1], len(lm), axis=0)
    assert _motion.blink_rate(frozen)[:2] == (0.0, 0)


@pytest.fixture(scope="module")
def planted(tmp_path_factory, videos_dir, bfm_dir):
    """A 3DMM-fitted prep output of a real clip, its ground truth re-encoded and a frozen-frame submission."""
    from prep.config import PrepConfig
    from prep.job import run_prep
    from prep.media import decode_clip, write_video

    from evalkit.runner import evaluate

    root = tmp_path_factory.mktemp("motion")
    clip = decode_clip(videos_dir / "latentsync_demo1.mp4")
    n = 100  # blinks at frames 3-5, 50-51, 69-71 and 91-96 (see BLINKS_BY_EYE)
    write_video(root / "src" / "c.mp4", clip.frames[:n, ::2, ::2], clip.audio[:n * 640])
    run_prep(str(root / "src"), root / "ref", PrepConfig(faces={"fit_3dmm": True}), scheduler="inline",
             progress=False)
    src = decode_clip(root / "src" / "c.mp4")
    write_video(root / "gt" / "c.mp4", src.frames, src.audio)
    write_video(root / "frozen" / "c.mp4", np.repeat(src.frames[:1], len(src.frames), 0), src.audio)
    names = ["blink_rate", "head_motion", "head_motion_spread", "lipleak", "fid_exp"]
    out = {}
    for kind in ("gt", "frozen"):
        out[kind] = evaluate(root / "ref", root / kind, root / "res" / kind, metrics=names, scheduler="inline")
    out["root"] = root
    return out


def test_frozen_frames_score_no_motion_and_the_ground_truth_does(planted):
    import pandas as pd

    gt, fr = planted["gt"]["metrics"], planted["frozen"]["metrics"]
    assert gt["blink_rate"]["value"] > 0 and fr["blink_rate"]["value"] == 0  # its four blinks
    assert gt["head_motion"]["protocol"]["pose"].startswith("3dmm")  # the basis is present here
    assert fr["head_motion"]["value"] < gt["head_motion"]["value"] / 10
    assert fr["head_motion_spread"]["value"] < gt["head_motion_spread"]["value"] / 10
    pv = {k: pd.read_parquet(planted["root"] / "res" / k / "per_video.parquet").iloc[0] for k in ("gt", "frozen")}
    assert pv["frozen"]["lipleak_speech_motion"] < pv["gt"]["lipleak_speech_motion"] / 10  # the mouth is still
    assert pv["gt"]["head_pose_source"] == "3dmm"
    assert fr["lipleak"]["value"] < gt["lipleak"]["value"]
    # expressions of a frozen face are far from the person's; the re-encoded ground truth is close
    assert gt["fid_exp"]["value"] is not None and fr["fid_exp"]["value"] > gt["fid_exp"]["value"]


def test_motion_metrics_are_listed():
    from talkbench.commands.eval import list_metrics_text

    text = list_metrics_text()
    for name in ("blink_rate", "head_motion", "head_motion_spread", "lipleak", "fid_exp"):
        assert f"\n{name} " in text
