"""Shot splitting (issue 15): a source with hard cuts becomes one clip per shot, the cut found on the decoded
frames; shots too short to keep are failure rows, so clips + failures = shots; one-shot sources keep their id."""
from __future__ import annotations

import numpy as np
import pytest

from prep import media
from prep.config import PrepConfig
from prep.job import run_prep
from prep.output import PrepOutput

FAST = PrepConfig(faces={"detect_every": 10, "fit_3dmm": False}, frames_per_shard=64)
CUT = 60  # frames of the first speaker before the hard cut


def _square(frames: np.ndarray, side: int = 480) -> np.ndarray:
    h, w = frames.shape[1:3]
    y, x = (h - side) // 2, (w - side) // 2
    return np.ascontiguousarray(frames[:, y:y + side, x:x + side])


@pytest.fixture(scope="module")
def spliced(videos_dir, tmp_path_factory):
    """Two different speakers' real clips joined by hard cuts, and the same first speaker alone."""
    root = tmp_path_factory.mktemp("shots")
    a = _square(media.read_frames(videos_dir / "w2l_input3.mp4", stop=2 * CUT))
    b = _square(media.read_frames(videos_dir / "w2l_input4.mp4", stop=CUT))
    wa = media.read_audio(videos_dir / "w2l_input3.mp4", 2 * CUT)
    wb = media.read_audio(videos_dir / "w2l_input4.mp4", CUT)
    spf = 640
    media.write_video(root / "two_speakers.mp4", np.concatenate([a[:CUT], b]),
                      np.concatenate([wa[:CUT * spf], wb]))
    # A | 12 frames of B | A: the middle shot is shorter than min_shot_frames (25)
    media.write_video(root / "short_middle.mp4", np.concatenate([a[:CUT], b[:12], a[CUT:]]),
                      np.concatenate([wa[:CUT * spf], wb[:12 * spf], wa[CUT * spf:]]))
    media.write_video(root / "one_shot.mp4", a, wa)
    return root


@pytest.fixture(scope="module")
def prepared(spliced, tmp_path_factory):
    out = tmp_path_factory.mktemp("shots_out") / "out"
    summary = run_prep(spliced, out, FAST, scheduler="inline", progress=False)
    return summary, PrepOutput.open(out)


def test_a_hard_cut_gives_two_clips_split_at_the_cut(prepared):
    _, out = prepared
    clips = {c["clip_id"]: c for c in out.clips_table().to_pylist()}
    two = sorted(k for k in clips if k.startswith("two_speakers/"))
    assert len(two) == 2, sorted(clips)
    first, second = clips[two[0]], clips[two[1]]
    assert first["shot_start"] == 0 and abs(second["shot_start"] - CUT) <= 2
    assert first["shot_stop"] == second["shot_start"] and second["shot_stop"] == 2 * CUT
    assert first["num_frames"] + second["num_frames"] == 2 * CUT
    assert two[1] == f"two_speakers/shot-{second['shot_start']:06d}"
    assert {c["source_clip_id"] for c in (first, second)} == {"two_speakers"}
    assert first["num_shots"] == second["num_shots"] == 2 and first["source_cuts"] == [second["shot_start"]]
    # each shot clip holds its own frames, indexed from 0
    idx = out.clip_frames(two[1], ["frame_index"]).column("frame_index").to_pylist()
    assert idx == list(range(second["num_frames"]))


def test_a_short_shot_is_a_failure_row_and_every_shot_is_accounted_for(prepared):
    summary, out = prepared
    clips = [c["clip_id"] for c in out.clips_table().to_pylist()]
    mid = sorted(c for c in clips if c.startswith("short_middle/"))
    assert len(mid) == 2  # the two long shots of the first speaker
    fails = [f for f in out.failures().to_pylist() if (f["clip_id"] or "").startswith("short_middle/")]
    assert len(fails) == 1 and fails[0]["stage"] == "shots" and "min_shot_frames" in fails[0]["message"]
    assert not fails[0]["transient"]
    m = out.counts
    assert m["inputs"] == 3 and m["shots"] == 2 + 3 + 1
    assert m["clips"] + m["failed"] == m["shots"] and (summary.ok, summary.failed) == (m["clips"], m["failed"])


def test_a_single_shot_source_keeps_its_id(prepared):
    _, out = prepared
    one = [c for c in out.clips_table().to_pylist() if c["source_clip_id"] == "one_shot"]
    assert [c["clip_id"] for c in one] == ["one_shot"] and one[0]["num_shots"] == 1 and one[0]["source_cuts"] == []


@pytest.mark.parametrize("name", ["latentsync_demo1.mp4", "w2l_input3.mp4"])  # HEVC 1080x1920, H.264 600x480
def test_yuv_frames_score_as_scenedetect_scores_the_rgb_frames(videos_dir, name):
    """prep feeds the detector YUV frames scaled and converted in one swscale pass; PySceneDetect's own path
    scales the RGB frame with cv2. The content scores agree within 0.5 (the cut threshold is 27; measured
    on the shared clips: at most 0.35) and so do the cuts."""
    from prep.shots import ShotDetector

    path = videos_dir / name
    yuv, rgb = ShotDetector(PrepConfig().shots), ShotDetector(PrepConfig().shots)
    diffs = []
    for ch_y, ch_r in zip(media.iter_planar(path, stop=100), media.iter_frames(path, stop=100)):
        for j, (fy, fr) in enumerate(zip(ch_y.frames, ch_r.frames)):
            assert yuv.feed(ch_y.start + j, fy) == rgb.feed(ch_r.start + j, fr)
            if rgb.last_score is not None:
                diffs.append(abs(yuv.last_score - rgb.last_score))
    assert len(diffs) >= 99 and max(diffs) < 0.5, max(diffs)
