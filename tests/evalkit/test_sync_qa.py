"""Sync QA for prep: evalkit's scorers behind prep.syncqa's interface, and prep's use of them end to end.

SyncNet's official weights are absent here: a seeded random state dict in the official key layout is
saved and loaded like the real file (not LSE numbers, but the same code path and math).
"""
from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import torch

from evalkit.metrics.lse import lse, offset_distances
from evalkit.nets import syncnet as sn
from evalkit.sync_qa import SyncExpertQA, SyncNetQA, pick_windows
from evalkit.syncnet_crop import aligned_crops
from prep import audio as A
from prep import media
from prep.config import PrepConfig
from prep.faces import FaceConfig, FaceTracker
from prep.job import run_prep
from prep.output import PrepOutput, array_column, decode_crop
from prep.syncqa import SyncMeasure, SyncQAConfig, shifted_audio

FAST = PrepConfig(faces=FaceConfig(fit_3dmm=False))


@pytest.fixture(scope="module")
def weights(tmp_path_factory):
    path = tmp_path_factory.mktemp("syncnet") / "syncnet_v2.model"
    torch.save(sn.random_state_dict(0), path)
    return path


@pytest.fixture(scope="module")
def tracked(videos_dir):
    """w2l_input4: 60 frames tracked by prep (aligned RGB crops), the face mask and the clip's audio."""
    frames = media.read_frames(videos_dir / "w2l_input4.mp4", stop=60)
    rows = FaceTracker(FaceConfig()).process(media.FrameChunk(0, frames))
    crops = np.stack([r["crop"] for r in rows])
    valid = np.array([r["face_found"] for r in rows])
    return crops, valid, media.read_audio(videos_dir / "w2l_input4.mp4", 60)


def test_syncnet_qa_is_lse_on_the_aligned_crops(weights, tracked):
    crops, valid, wav = tracked
    assert valid.all()
    qa = SyncNetQA(str(weights))
    m = qa.measure(list(crops), wav, valid, max_windows=10_000, vshift=15)
    ref = lse(aligned_crops(crops), A.to_int16(wav), sn.load_syncnet(weights))
    assert m.windows == ref["num_windows"] == 55
    assert m.offset == ref["offset"]
    assert m.conf == pytest.approx(ref["lse_c"], abs=1e-4) and m.dist == pytest.approx(ref["lse_d"], abs=1e-4)
    ident = qa.identity
    assert ident["kind"] == "syncnet" and ident["official"] is False and ident["random"] is False
    assert ident["sha256"] == sn.load_syncnet(weights).weights_sha256


def test_fewer_windows_score_rows_of_the_full_table(weights, tracked):
    crops, valid, wav = tracked
    valid = valid.copy()
    valid[20:23] = False  # windows touching these frames are skipped
    starts = pick_windows(valid, 55, 12)
    assert len(starts) == 12 and not any(s <= 22 and s + 5 > 20 for s in starts)
    assert np.all(np.diff(starts) > 0)
    ref = lse(aligned_crops(crops), A.to_int16(wav), sn.load_syncnet(weights))
    full = torch.from_numpy(ref["dists"])
    emb_v = torch.randn(55, 8, generator=torch.Generator().manual_seed(0))
    emb_a = torch.randn(55, 8, generator=torch.Generator().manual_seed(1))
    sub = offset_distances(emb_v[starts], emb_a, 15, windows=starts)
    torch.testing.assert_close(sub, offset_distances(emb_v, emb_a, 15)[starts])
    m = SyncNetQA(str(weights)).measure(list(crops), wav, valid, max_windows=12, vshift=15)
    assert m.windows == 12
    mean = full[starts].mean(0)
    assert m.offset == 15 - int(mean.argmin()) and m.dist == pytest.approx(float(mean.min()), abs=1e-4)


def test_sync_expert_qa_uses_syncnets_sign(tmp_path, tracked):
    from evalkit.nets.sync_expert import ExpertArch, SyncExpert, load_sync_expert, save_sync_expert

    torch.manual_seed(0)
    path = save_sync_expert(SyncExpert(ExpertArch()), tmp_path / "expert")
    crops, valid, wav = tracked
    qa = SyncExpertQA(str(path))
    m = qa.measure(list(crops), wav, valid, max_windows=10_000, vshift=6)
    ref = load_sync_expert(path).clip_sync(crops, A.melspectrogram(wav), max_offset=6, valid=valid)
    assert m.offset == -ref["offset"] and m.conf == pytest.approx(ref["confidence"], abs=1e-5)
    assert qa.identity["kind"] == "sync_expert" and qa.identity["official"] is False


def _stored_audio(prep_out, clip_row) -> np.ndarray:
    wav = media.read_audio(clip_row["source_path"], clip_row["shot_stop"])
    return wav[clip_row["shot_start"] * 640:clip_row["shot_stop"] * 640]


def test_prep_stores_sync_columns_flags_and_shifts(weights, videos_dir, tmp_path):
    src = tmp_path / "in"
    src.mkdir()
    media.write_video(src / "a.mp4", media.read_frames(videos_dir / "w2l_input4.mp4", stop=70),
                      media.read_audio(videos_dir / "w2l_input4.mp4", 70))
    qa = SyncNetQA(str(weights))
    run_prep(src, tmp_path / "plain", FAST, scheduler="inline", progress=False, sync_scorer=qa)
    out = PrepOutput.open(tmp_path / "plain")
    row = out.clips_table().to_pylist()[0]
    assert row["sync_offset"] is not None and row["sync_conf"] is not None and row["sync_windows"] == 65
    assert row["sync_shift"] == 0 and row["sync_note"] is None
    # the stored value is LSE on the stored crops and the clip's audio
    frames = out.clip_frames(row["clip_id"], ["crop"]).column("crop").to_pylist()
    crops = np.stack([decode_crop(c) for c in frames])
    ref = lse(aligned_crops(crops), A.to_int16(_stored_audio(out, row)), qa.network())
    assert row["sync_offset"] == ref["offset"] and row["sync_conf"] == pytest.approx(ref["lse_c"], abs=1e-3)
    m = out.manifest["sync_qa"]
    assert m["scorer"]["kind"] == "syncnet" and m["scorer"]["sha256"] == qa.identity["sha256"]
    assert out.config_hash != FAST.content_hash()  # the scorer's identity is part of the config hash
    # thresholds mark, never drop
    strict = FAST.replace(sync=SyncQAConfig(min_conf=1e9))
    run_prep(src, tmp_path / "strict", strict, scheduler="inline", progress=False, sync_scorer=qa)
    srow = PrepOutput.open(tmp_path / "strict").clips_table().to_pylist()[0]
    assert srow["qa_pass"] is False and any(f.startswith("sync_min_conf") for f in srow["qa_flags"])
    # --sync-shift: features from the audio delayed by the measured offset; then the clip is at offset 0
    shift = FAST.replace(sync=SyncQAConfig(min_conf=None, max_offset=None, shift=True))
    run_prep(src, tmp_path / "shift", shift, scheduler="inline", progress=False, sync_scorer=qa)
    shifted = PrepOutput.open(tmp_path / "shift").clips_table().to_pylist()[0]
    k = shifted["sync_offset"]
    assert shifted["sync_shift"] == k == row["sync_offset"]
    wav = shifted_audio(media.read_audio(row["source_path"], 70), 0, 70, k)
    np.testing.assert_allclose(array_column(shifted["mel"], shifted["mel_shape"]), A.melspectrogram(wav), atol=1e-6)
    if k != 0:
        assert not np.allclose(array_column(shifted["mel"], shifted["mel_shape"]),
                               array_column(row["mel"], row["mel_shape"]))


class OracleQA(SyncNetQA):
    """SyncNetQA's path with test_syncnet's oracle network (the video carries the audio's energy)."""

    def __init__(self, oracle):
        super().__init__()
        object.__setattr__(self, "_oracle", oracle)

    def networks(self):
        return self._oracle, None


@pytest.mark.parametrize("k", [-4, 3])
def test_measured_offset_is_the_planted_one_and_the_shift_undoes_it(tracked, k):
    """Planted sync (test_syncnet's oracle): the measure finds the audio lead k; the audio prep stores with
    --sync-shift (delayed by the measured offset) measures 0."""
    from evalkit.metrics.lse import mfcc_matrix
    from test_syncnet import OracleSyncNet, shift_audio

    crops, valid, wav = tracked
    audio16 = A.to_int16(wav)
    c0 = mfcc_matrix(audio16)[0]
    energy = np.array([c0[4 * f:4 * f + 4].mean() for f in range(len(crops))], np.float32)
    oracle = OracleSyncNet(float(energy.min()), float(energy.max()))
    planted = crops.copy()  # a 10 px patch: the top-left 8 px of the 224 px SyncNet crop, after resizing
    planted[:, :10, :10, :] = oracle.quantise(torch.from_numpy(energy)).numpy().astype(np.uint8)[:, None, None, None]
    ahead = shift_audio(audio16, k).astype(np.float32) / 32767.0
    qa = OracleQA(oracle)
    m = qa.measure(list(planted), ahead, valid, 10_000, 15)
    assert m.offset == k
    fixed = shifted_audio(ahead, 0, len(crops), m.offset)
    assert qa.measure(list(planted), fixed, valid, 10_000, 15).offset == 0


def test_shifted_audio_convention():
    wav = np.arange(10 * 640, dtype=np.float32)
    out = shifted_audio(wav, 2, 6, 1)  # frame i gets the audio of frame i - 1
    np.testing.assert_array_equal(out, wav[640:5 * 640])
    early = shifted_audio(wav, 0, 3, 2)  # before the source starts: zeros
    assert (early[:1280] == 0).all() and np.array_equal(early[1280:], wav[:640])
    assert isinstance(SyncMeasure(1, 2.0, 3.0, 4), SyncMeasure)


def test_cli_without_weights_leaves_columns_null_and_says_why(videos_dir, tmp_path):
    src = tmp_path / "in"
    src.mkdir()
    media.write_video(src / "a.mp4", media.read_frames(videos_dir / "w2l_input3.mp4", stop=30),
                      media.read_audio(videos_dir / "w2l_input3.mp4", 30))
    env = dict(os.environ, TALKBENCH_CACHE=str(tmp_path / "cache"), TALKBENCH_SYNCNET=str(tmp_path / "none"))
    r = subprocess.run([sys.executable, "-m", "talkbench.cli", "prep", str(src), str(tmp_path / "o"), "--scheduler",
                        "inline", "--no-progress", "--no-3dmm"], capture_output=True, text=True, env=env)
    assert r.returncode == 0, r.stderr
    manifest = json.loads((tmp_path / "o" / "manifest.json").read_text())
    assert manifest["sync_qa"]["scorer"] is None and "SyncNet weights not found" in manifest["sync_qa"]["reason"]
    row = PrepOutput.open(tmp_path / "o").clips_table().to_pylist()[0]
    assert row["sync_offset"] is None and row["sync_conf"] is None and "no sync scorer" in row["sync_note"]
    assert not any(f.startswith("sync") for f in row["qa_flags"])
