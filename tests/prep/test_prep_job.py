"""The prep job end to end on real clips mixed with broken files: accounting, determinism, resume, Dask."""
from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

from prep import audio, media
from prep.config import PrepConfig, QAFilters
from prep.job import PrepUsageError, run_prep
from prep.output import PrepOutput


def read_clips(out):
    return PrepOutput.open(out).clips_table()


def read_failures(out):
    return PrepOutput.open(out).failures()


def read_manifest(out):
    return PrepOutput.open(out).manifest


def shard_files(out, kind):
    return PrepOutput.open(out).shard_files(kind)

# fewer detector runs and no more frames than needed keep this suite quick; the job logic is the same
FAST = PrepConfig(faces={"detect_every": 10}, frames_per_shard=128)

BROKEN = {  # file name -> (stage, error type) expected in failures.parquet
    "broken/zero.mp4": ("open", "NotAFile"),
    "broken/notes.mp4": ("decode", "UndecodableMedia"),
    "broken/corrupt.mp4": ("decode", None),
    "broken/silent.mp4": ("decode", "NoAudioStream"),
    "broken/one_frame.mp4": ("decode", "TooShort"),
    "broken/no_face.mp4": ("faces", "FaceError"),
}


def _cut(src, dst, start, stop):
    frames = media.read_frames(src, start=start, stop=stop)
    wav = media.read_audio(src)[start * 640: stop * 640]
    return media.write_video(dst, frames, wav)


@pytest.fixture(scope="module")
def mixed_input(tmp_path_factory, videos_dir) -> Path:
    root = tmp_path_factory.mktemp("mixed")
    (root / "real").mkdir()
    shutil.copy(videos_dir / "w2l_input4.mp4", root / "real" / "w2l_input4.mp4")  # 30 fps source
    _cut(videos_dir / "w2l_input3.mp4", root / "real" / "speaker a.mp4", 0, 40)
    (root / "sub dir").mkdir()
    _cut(videos_dir / "w2l_input3.mp4", root / "sub dir" / "clip_ünïcødé.mp4", 60, 100)
    (root / "broken").mkdir()
    (root / "broken" / "zero.mp4").write_bytes(b"")
    (root / "broken" / "notes.mp4").write_text("not a video\n" * 50)
    data = (videos_dir / "w2l_input3.mp4").read_bytes()
    rng = np.random.default_rng(0)
    (root / "broken" / "corrupt.mp4").write_bytes(data[:2048] + rng.bytes(60_000))
    media.write_video(root / "broken" / "silent.mp4", media.read_frames(videos_dir / "w2l_input3.mp4", stop=10))
    f1 = media.read_frames(videos_dir / "w2l_input3.mp4", stop=1)
    media.write_video(root / "broken" / "one_frame.mp4", f1, np.zeros(640, np.float32))
    grey = np.full((30, 96, 128, 3), 128, np.uint8)
    media.write_video(root / "broken" / "no_face.mp4", grey, 0.1 * np.sin(np.arange(30 * 640) / 9.0))
    return root


@pytest.fixture(scope="module")
def prepped(mixed_input, tmp_path_factory):
    out = tmp_path_factory.mktemp("out") / "prep"
    summary = run_prep(mixed_input, out, FAST, n_workers=2, progress=False)
    return out, summary


def test_every_input_is_a_clip_or_a_failure(prepped, mixed_input):
    out, summary = prepped
    n_inputs = len([p for p in mixed_input.rglob("*.mp4")])
    clips, fails = read_clips(out), read_failures(out)
    assert clips.num_rows + fails.num_rows == n_inputs == summary.inputs
    assert summary.shots == summary.inputs  # no input here has a cut: one shot each
    assert (summary.ok, summary.failed) == (3, len(BROKEN))
    failed = {Path(r["source_path"]).relative_to(mixed_input).as_posix(): r for r in fails.to_pylist()}
    assert set(failed) == set(BROKEN)
    for name, (stage, etype) in BROKEN.items():
        r = failed[name]
        assert r["stage"] == stage, (name, r)
        if etype:
            assert r["error_type"] == etype, (name, r)
        assert r["message"] and "Traceback" not in r["message"]
    assert sorted(clips.column("clip_id").to_pylist()) == ["real/speaker a", "real/w2l_input4",
                                                           "sub dir/clip_ünïcødé"]


def test_clip_rows_hold_the_rule_features(prepped):
    out, _ = prepped
    rows = {r["clip_id"]: r for r in read_clips(out).to_pylist()}
    r = rows["real/w2l_input4"]
    assert r["num_frames"] == 175 and r["fps"] == 25.0 and r["sample_rate"] == 16000
    assert abs(r["src_fps"] - 30.0) < 1e-6 and (r["src_width"], r["src_height"]) == (850, 480)
    assert tuple(r["mel_shape"]) == (80, audio.num_mel_frames(175))
    assert tuple(r["mfcc_shape"]) == (audio.num_mfcc_frames(175), 13)
    # the stored mel is the mel of the decoded audio (recomputed independently here)
    wav = media.read_audio(r["source_path"], 175)
    np.testing.assert_allclose(np.asarray(r["mel"]).reshape(r["mel_shape"]), audio.melspectrogram(wav), atol=1e-6)
    assert r["qa_face_fraction"] >= 0.95 and r["qa_face_size"] > 60
    assert -40 < r["qa_loudness_db"] < 0 and r["qa_blur"] > 0
    assert r["qa_pass"] is True and r["qa_flags"] == []


def test_frame_rows_are_complete_and_in_crop(prepped):
    out, _ = prepped
    import pyarrow as pa

    frames = pa.concat_tables([pq.read_table(f) for f in shard_files(out, "frames")])
    clips = read_clips(out)
    assert frames.num_rows == sum(clips.column("num_frames").to_pylist()) == read_manifest(out)["counts"]["frames"]
    keys = list(zip(frames.column("clip_id").to_pylist(), frames.column("frame_index").to_pylist()))
    assert keys == sorted(keys) and len(set(keys)) == len(keys)  # sorted, no duplicates, no gaps below
    for cid, n in zip(clips.column("clip_id").to_pylist(), clips.column("num_frames").to_pylist()):
        assert [i for c, i in keys if c == cid] == list(range(n))
    found = frames.filter(frames.column("face_found"))
    assert found.num_rows / frames.num_rows >= 0.95
    lm = np.asarray(found.column("landmarks").to_pylist(), np.float32).reshape(-1, 68, 2)
    size = clips.column("crop_size")[0].as_py()
    assert (lm >= 0).all() and (lm < size).all()
    assert np.isfinite(np.asarray(found.column("mm_exp").to_pylist(), np.float32)).all()


def test_shards_open_in_pandas_and_duckdb(prepped):
    out, _ = prepped
    import pandas as pd

    df = pd.read_parquet(out / "frames")
    assert len(df) == read_manifest(out)["counts"]["frames"]
    duckdb = pytest.importorskip("duckdb")
    n = duckdb.sql(f"select count(*) from read_parquet('{out}/clips/*.parquet')").fetchall()[0][0]
    assert n == 3
    lm = duckdb.sql(f"select landmarks from read_parquet('{out}/frames/*.parquet') where face_found limit 1"
                    ).fetchall()[0][0]
    assert len(lm) == 136


def test_manifest_lists_every_shard_with_its_hash(prepped):
    out, _ = prepped
    m = read_manifest(out)
    from talkbase.fileio import sha256_file

    for kind in ("clips", "frames", "failures"):
        for s in m["shards"][kind]:
            assert sha256_file(out / s["path"]) == s["sha256"]
            assert pq.ParquetFile(out / s["path"]).metadata.num_rows == s["rows"]
    assert m["counts"] == {"inputs": 9, "shots": 9, "clips": 3, "failed": 6, "frames": m["counts"]["frames"],
                           "qa_pass": 3, "transient": 0, "splits": {"test": 1, "train": 1, "val": 1}}
    assert m["config_hash"] == FAST.content_hash() and "dlib" in json.dumps(m["config"])
    assert not list(out.rglob("*.tmp"))


def _content(out) -> dict:
    m = read_manifest(out)
    return {k: [(s["path"], s["sha256"]) for s in v] for k, v in m["shards"].items()}


def test_rerun_skips_committed_and_is_byte_identical(prepped, mixed_input):
    out, _ = prepped
    before = _content(out)
    again = run_prep(mixed_input, out, FAST, scheduler="inline", progress=False)
    assert again.resumed == 9 and (again.ok, again.failed) == (3, 6)
    assert _content(out) == before


def test_worker_count_and_scheduler_do_not_change_bytes(prepped, mixed_input, tmp_path):
    out, _ = prepped
    inline = run_prep(mixed_input, tmp_path / "inline", FAST, scheduler="inline", progress=False)
    assert inline.ok == 3
    assert _content(tmp_path / "inline") == _content(out)


def test_changed_config_refuses_to_mix(prepped, mixed_input):
    out, _ = prepped
    with pytest.raises(PrepUsageError, match="different config"):
        run_prep(mixed_input, out, FAST.replace(jpeg_quality=80), scheduler="inline", progress=False)


def test_filters_mark_but_never_drop(mixed_input, tmp_path):
    strict = FAST.replace(filters=QAFilters(min_face_size=10_000.0))
    s = run_prep(mixed_input / "real", tmp_path / "strict", strict, scheduler="inline", progress=False)
    clips = read_clips(tmp_path / "strict").to_pylist()
    assert s.ok == 2 and len(clips) == 2
    assert all(not c["qa_pass"] and any("min_face_size" in f for f in c["qa_flags"]) for c in clips)


def test_long_video_is_split_into_segments(videos_dir, tmp_path):
    src = tmp_path / "in"
    src.mkdir()
    shutil.copy(videos_dir / "w2l_input4.mp4", src / "long.mp4")
    cfg = FAST.replace(segment_frames=50)
    s = run_prep(src, tmp_path / "seg", cfg, scheduler="inline", progress=False)
    assert s.ok == 1
    import pyarrow as pa

    frames = pa.concat_tables([pq.read_table(f, columns=["frame_index", "face_found"])
                               for f in shard_files(tmp_path / "seg", "frames")])
    assert frames.column("frame_index").to_pylist() == list(range(175))
    assert sum(frames.column("face_found").to_pylist()) >= 0.95 * 175
    assert not any((tmp_path / "seg" / ".work").rglob("seg-*.parquet"))  # segment files cleaned up


def _talkbench(*args, **kw):
    return subprocess.run([sys.executable, "-m", "talkbench.cli", *args], capture_output=True, text=True, **kw)


def test_cli_exit_codes_and_summary_line(mixed_input, tmp_path):
    r = _talkbench("prep", str(mixed_input / "broken"), str(tmp_path / "allbad"), "--scheduler", "inline",
                   "--no-progress", "--detect-every", "10")
    assert r.returncode == 1 and "0 ok, 6 failed" in r.stdout, r.stdout + r.stderr
    empty = tmp_path / "empty"
    empty.mkdir()
    r = _talkbench("prep", str(empty), str(tmp_path / "o2"), "--scheduler", "inline")
    assert r.returncode == 2 and "no video inputs" in r.stderr


def test_sigkill_then_rerun_gives_identical_content(prepped, mixed_input, tmp_path):
    out_ref, _ = prepped
    out = tmp_path / "killed"
    cmd = [sys.executable, "-m", "talkbench.cli", "prep", str(mixed_input), str(out), "--workers", "1",
           "--no-progress", "--detect-every", "10"]
    cfg_file = tmp_path / "cfg.json"
    cfg_file.write_text(json.dumps({"faces": {"detect_every": 10}, "frames_per_shard": 128}))
    cmd += ["--config", str(cfg_file)]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.time() + 120
    done_dir = None
    while time.time() < deadline:  # kill as soon as at least one clip has committed, mid-job
        hits = list(out.glob(".work/*/done/*.json"))
        if len(hits) >= 2:
            done_dir = hits[0].parent
            break
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    assert done_dir is not None, "job never committed a clip"
    r = subprocess.run(cmd, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert _content(out) == _content(out_ref)


@pytest.mark.slow
def test_external_scheduler_with_two_workers_one_killed(prepped, mixed_input, tmp_path):
    """`dask scheduler` + two `dask worker` processes on 127.0.0.1; one worker is killed mid-job."""
    out_ref, _ = prepped
    sched_file = tmp_path / "scheduler.json"
    dask = [sys.executable, "-m", "distributed.cli.dask_scheduler"]
    sched = subprocess.Popen(dask + ["--host", "127.0.0.1", "--port", "0", "--scheduler-file", str(sched_file),
                                     "--dashboard-address", ":0"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    workers = []
    try:
        for _ in range(100):
            if sched_file.exists():
                break
            time.sleep(0.1)
        address = json.loads(sched_file.read_text())["address"]
        for _ in range(2):
            workers.append(subprocess.Popen([sys.executable, "-m", "distributed.cli.dask_worker", address,
                                             "--nthreads", "1", "--nworkers", "1", "--no-dashboard"],
                                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                            start_new_session=True))
        from dask.distributed import Client

        with Client(address) as c:
            c.wait_for_workers(2, timeout=60)
        import threading

        def kill_one():
            time.sleep(3.0)
            os.killpg(workers[0].pid, signal.SIGKILL)

        threading.Thread(target=kill_one, daemon=True).start()
        s = run_prep(mixed_input, tmp_path / "cluster", FAST, scheduler=address, progress=False)
        assert s.ok == 3
        assert _content(tmp_path / "cluster") == _content(out_ref)
    finally:
        for w in workers:
            try:
                os.killpg(w.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        sched.kill()


def test_inline_job_finalises_a_clip_while_the_next_is_tracked(videos_dir, tmp_path, monkeypatch):
    """Inline, clip k's finalising runs in its own thread while clip k+1 is decoded and tracked: the first
    clip's finalising waits here until the second clip's tracking has started (it would time out if the
    job ran them one after another), and clips are still reported in input order with every row."""
    import threading

    from prep import pipeline

    src = tmp_path / "in"
    src.mkdir()
    for name in ("a", "b"):
        _cut(videos_dir / "w2l_input4.mp4", src / f"{name}.mp4", 0, 40)
    second_started, seen = threading.Event(), []
    segment, finalize = pipeline.process_segment, pipeline.finalize_clip

    def tracked(it, *a, **k):
        if it.clip_id == "b":
            second_started.set()
        return segment(it, *a, **k)

    def finalised(it, *a, **k):
        seen.append((it.clip_id, threading.current_thread().name))
        if it.clip_id == "a":
            seen.append(("b started", second_started.wait(60)))
        return finalize(it, *a, **k)

    monkeypatch.setattr(pipeline, "process_segment", tracked)
    monkeypatch.setattr(pipeline, "finalize_clip", finalised)
    s = run_prep(src, tmp_path / "out", FAST, scheduler="inline", progress=False)
    assert (s.ok, s.failed) == (2, 0)
    assert seen[1] == ("b started", True)
    assert [c for c, _ in seen if c in ("a", "b")] == ["a", "b"]
    assert all(name.startswith("talkbench-finalize") for c, name in seen if c in ("a", "b"))
    assert sorted(read_clips(tmp_path / "out")["clip_id"].to_pylist()) == ["a", "b"]
