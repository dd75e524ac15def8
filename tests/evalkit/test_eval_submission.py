"""Submission validation: every bad-submission case is skipped with its reason, nothing crashes, counts add up."""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from evalkit.config import SubmissionLimits
from evalkit.submission import count_skips, locate, validate_submission
from talkbase.paths import unsafe_relative_id as unsafe_clip_id

N = 10  # frames per reference clip (0.4 s at 25 fps)
CASES = ["ok", "alias", "nested/deep", "missing", "wrong_length", "no_audio", "fps30", "escape",
         "linked/clip", "corrupt", "truncated", "tiny", "empty", "isdir", "aspect"]
SIZES = {"fps30": (850, 480)}  # reference frame size per case (default: the prepped clip's 600x480)


def _replicate_clip(ref: Path, clip_id: str, clip_ids: list[str]) -> None:
    """Rewrite the prep output's clips shard with ``clip_id``'s row under every id (manifest updated)."""
    from prep.output import PrepOutput
    from prep.shards import write_table_atomic
    from talkbase.fileio import atomic_write_json, sha256_file

    po = PrepOutput.open(ref)
    clips = po.clips_table()
    row = next(r for r in clips.to_pylist() if r["clip_id"] == clip_id)
    rows = [{**row, "clip_id": c, "src_width": SIZES.get(c, (row["src_width"],))[0],
             "src_height": SIZES.get(c, (0, row["src_height"]))[1]} for c in sorted(clip_ids)]
    table = clips.from_pylist(rows, schema=clips.schema)
    manifest = po.manifest
    entry = manifest["shards"]["clips"][0]
    write_table_atomic(table, ref / entry["path"], "clips")
    entry.update(rows=table.num_rows, sha256=sha256_file(ref / entry["path"]))
    atomic_write_json(ref / "manifest.json", manifest)


@pytest.fixture(scope="module")
def case(tmp_path_factory, videos_dir):
    """A real prep output (``run_prep`` on a 10-frame clip, its row replicated under one id per case)
    and a submission dir with one file (or symlink, or directory) per case."""
    from prep.config import PrepConfig
    from prep.inputs import InputItem
    from prep.job import run_prep
    from prep.media import decode_clip, iter_frames, write_video

    root = tmp_path_factory.mktemp("evalsub")
    clip = decode_clip(videos_dir / "w2l_input3.mp4")
    frames, audio = clip.frames[:N], clip.audio[:N * 640]
    src = write_video(root / "src" / "clip.mp4", frames, audio)
    run_prep([InputItem(str(src), "ok")], root / "ref", PrepConfig(faces={"fit_3dmm": False}),
             scheduler="inline", progress=False)
    _replicate_clip(root / "ref", "ok", CASES)  # validation reads only clip ids and lengths

    sub = root / "sub"
    outside = root / "outside"
    good = write_video(sub / "ok.mp4", frames, audio)
    os.symlink(good, sub / "alias.mp4")  # a symlink that stays inside DIR is fine
    write_video(sub / "nested" / "deep.mp4", frames, audio)
    write_video(sub / "wrong_length.mp4", clip.frames[:2 * N], clip.audio[:2 * N * 640])
    write_video(sub / "no_audio.mp4", frames, None)
    f30 = next(iter_frames(videos_dir / "w2l_input4.mp4", fps=30, chunk_size=12)).frames  # 0.4 s at 30 fps
    write_video(sub / "fps30.mp4", f30, audio, fps=30)
    secret = write_video(outside / "secret.mp4", frames, audio)
    os.symlink(secret, sub / "escape.mp4")  # leaves DIR: must not be followed
    write_video(outside / "clip.mp4", frames, audio)
    os.symlink(outside, sub / "linked")  # a symlinked directory leading out of DIR
    (sub / "corrupt.mp4").write_bytes(np.random.default_rng(0).integers(0, 256, 4096, dtype=np.uint8).tobytes())
    data = good.read_bytes()
    (sub / "truncated.mp4").write_bytes(data[: len(data) * 2 // 5])
    write_video(sub / "tiny.mp4", np.full((N, 16, 16, 3), 128, np.uint8), audio)
    (sub / "empty.mp4").write_bytes(b"")
    write_video(sub / "aspect.mp4", frames[:, :, 60:540], audio)  # 480x480: another framing than 600x480
    (sub / "isdir.mp4").mkdir()
    write_video(sub / "nobody.mp4", frames, audio)  # unknown clip ids
    write_video(sub / "spk9" / "x.mp4", frames, audio)
    write_video(root / "outside_clip.mp4", frames, audio)  # what a '../outside_clip' id would reach
    return root / "ref", sub


@pytest.fixture(scope="module")
def validated(case):
    ref, sub = case
    accepted, skipped = validate_submission(ref, sub, "reconstruction", SubmissionLimits())
    return accepted, skipped, {s["clip_id"]: s for s in skipped}


def test_good_videos_accepted_and_30fps_resampled(validated):
    accepted, _, _ = validated
    by_id = {v.clip_id: v for v in accepted}
    assert sorted(by_id) == ["alias", "fps30", "nested/deep", "ok"]
    assert by_id["ok"].num_frames == N and not by_id["ok"].resampled and by_id["ok"].src_fps == 25.0
    v30 = by_id["fps30"]
    assert v30.resampled and v30.src_fps == pytest.approx(30.0) and v30.num_frames == N
    assert (v30.width, v30.height) == (850, 480)
    assert by_id["nested/deep"].rel_path == "nested/deep.mp4"
    # paths handed to the scorer are real paths inside DIR
    for v in accepted:
        assert Path(v.path).resolve() == Path(v.path)


@pytest.mark.parametrize("clip_id, code, words", [
    ("missing", "missing", "no submission file"),
    ("wrong_length", "wrong_length", "20 frames"),
    ("no_audio", "no_audio", "no audio"),
    ("escape", "unsafe_path", "outside the submission dir"),
    ("linked/clip", "unsafe_path", "outside the submission dir"),
    ("corrupt", "corrupt", ""),
    ("tiny", "resolution", "16x16"),
    ("empty", "unreadable", "empty"),
    ("isdir", "unreadable", "not a regular file"),
    ("aspect", "resolution", "aspect ratio"),
    ("nobody", "unknown_clip", "not a clip of the reference"),
    ("spk9/x", "unknown_clip", "not a clip of the reference"),
])
def test_bad_videos_skipped_with_reason(validated, clip_id, code, words):
    _, _, skips = validated
    s = skips[clip_id]
    assert s["code"] == code, s
    assert words in s["reason"]
    assert s["path"].endswith(".mp4")


def test_truncated_file_is_rejected(validated):
    _, _, skips = validated
    assert skips["truncated"]["code"] in ("corrupt", "wrong_length")


def test_counts_add_up(case, validated):
    accepted, skipped, _ = validated
    not_unknown = [s for s in skipped if s["code"] != "unknown_clip"]
    assert len(accepted) + len(not_unknown) == len(CASES)
    assert {s["clip_id"] for s in not_unknown}.isdisjoint(v.clip_id for v in accepted)
    counts = count_skips(skipped)
    assert counts["unknown_clip"] == 2 and sum(counts.values()) == len(skipped)
    # reference clips first (sorted), unknown files after
    codes = [s["code"] == "unknown_clip" for s in skipped]
    assert codes == sorted(codes)


def test_dotdot_clip_id_never_leaves_dir(case):
    ref, sub = case
    assert (sub.parent / "outside_clip.mp4").is_file()  # the file a naive join would open
    for bad in ("../outside_clip", "/etc/passwd", "a/../../outside_clip", "a//b", "a\\b", "./ok"):
        assert unsafe_clip_id(bad)
        path, skip = locate(sub.resolve(), bad)
        assert path is None and skip["code"] == "unsafe_path"
    accepted, skipped = validate_submission(ref, sub, "reconstruction",
                                            reference_lengths={"../outside_clip": N, "ok": N})
    assert [v.clip_id for v in accepted] == ["ok"]
    assert {s["clip_id"]: s["code"] for s in skipped if s["code"] != "unknown_clip"} == {
        "../outside_clip": "unsafe_path"}


def test_limits_and_cross_mode(case):
    ref, sub = case
    _, skipped = validate_submission(ref, sub, "reconstruction", SubmissionLimits(max_duration_s=0.1))
    assert {s["clip_id"]: s["code"] for s in skipped}["ok"] == "duration"
    _, skipped = validate_submission(ref, sub, "reconstruction", SubmissionLimits(max_side=512))
    assert {s["clip_id"]: s["code"] for s in skipped}["fps30"] == "resolution"  # 850 px wide
    # cross mode: another audio track, so another length is fine (down to one SyncNet window)
    accepted, skipped = validate_submission(ref, sub, "cross")
    assert "wrong_length" in {v.clip_id for v in accepted}
    with pytest.raises(NotADirectoryError):
        validate_submission(ref, sub / "nope", "reconstruction")
