"""refmodel.data: samples streamed from real prep shards follow the rules (reference gap, mel index rule,
masking), are deterministic, and readers (DataLoader workers / DDP ranks) never overlap."""
from __future__ import annotations

from collections import Counter

import numpy as np
import pytest

import torch

from prep.audio import mel_window  # noqa: E402
from prep.output import PrepOutput  # noqa: E402
from refmodel.data import (ShardFrameDataset, assign_units, frame_range, holdout_start, load_crop,  # noqa: E402
                           make_loader, read_clip_meta)

# ``prep_out`` (the real prep job on 60 frames of two shared clips) comes from tests/refmodel/conftest.py


def _clips(prep_out):
    return {c.clip_id: c for c in PrepOutput.open(prep_out).clips(audio=True)}


def _keys(samples):
    return [(s["clip_id"], s["frame_index"], s["ref_index"]) for s in samples]


def test_samples_follow_the_rules(prep_out):
    ds = ShardFrameDataset(prep_out, image_size=64, seed=3, window=5, min_ref_gap=5, shuffle_buffer=64)
    samples = list(ds)
    assert len(samples) > 60
    audio = _clips(prep_out)
    crops = {}
    for clip in audio:
        t = PrepOutput.open(prep_out).clip_frames(clip, ["frame_index", "crop"])
        crops[clip] = dict(zip(t.column("frame_index").to_pylist(), t.column("crop").to_pylist()))
    for s in samples[:40]:
        clip, f, r = s["clip_id"], s["frame_index"], s["ref_index"]
        assert s["target"].shape == (5, 3, 64, 64) and s["target"].dtype == torch.uint8
        assert s["reference"].shape == (3, 64, 64)
        assert s["mel"].shape == (5, 80, 16) and s["mouth"].shape == (5, 3, 32, 64)
        # reference: same clip, at least 5 frames from every frame of the window
        assert r in crops[clip] and min(abs(r - (f + t)) for t in range(5)) >= 5
        # mel windows: exactly prep.audio.mel_window at each frame (the Wav2Lip index rule)
        for t in range(5):
            np.testing.assert_array_equal(s["mel"][t].numpy(), mel_window(audio[clip].mel, f + t))
        # images: the stored crops of those frames, resized
        for t in range(5):
            np.testing.assert_array_equal(s["target"][t].permute(1, 2, 0).numpy(),
                                          load_crop(crops[clip][f + t], 64, 256))
        np.testing.assert_array_equal(s["reference"].permute(1, 2, 0).numpy(), load_crop(crops[clip][r], 64, 256))
        # masking: lower half zero, upper half untouched; mouth = lower half
        assert int(s["masked"][:, :, 32:].max()) == 0
        assert torch.equal(s["masked"][:, :, :32], s["target"][:, :, :32])
        assert torch.equal(s["mouth"], s["target"][:, :, 32:])


def test_reduced_jpeg_decode_matches_pil(prep_out):
    t = PrepOutput.open(prep_out).clip_frames("w2l_input3", ["crop"])
    data = t.column("crop")[0].as_py()
    fast, pil = load_crop(data, 64, 256), load_crop(data, 64)
    assert fast.shape == pil.shape == (64, 64, 3)
    assert np.abs(fast.astype(int) - pil.astype(int)).max() <= 2


def test_deterministic_given_seed_and_epoch(prep_out):
    def run(seed, epoch=0):
        ds = ShardFrameDataset(prep_out, seed=seed, shuffle_buffer=32)
        ds.set_epoch(epoch)
        return list(ds)

    a, b = run(0), run(0)
    assert _keys(a) == _keys(b)
    assert all(torch.equal(x["target"], y["target"]) and torch.equal(x["reference"], y["reference"])
               for x, y in zip(a, b))
    c, e1 = run(1), run(0, epoch=1)
    assert _keys(c) != _keys(a) and _keys(e1) != _keys(a)
    # another seed or epoch reorders (and re-draws references) but covers the same windows
    assert sorted(k[:2] for k in _keys(c)) == sorted(k[:2] for k in _keys(a)) == sorted(k[:2] for k in _keys(e1))


@pytest.mark.parametrize("rows, parts", [([1, 1], 2), ([1, 1], 3), ([4, 2, 3], 2), ([5], 4), ([2, 2, 2, 2, 2], 3)])
def test_assign_units_disjoint_and_complete(rows, parts):
    for epoch in (0, 1):
        got = [assign_units(rows, parts, p, seed=7, epoch=epoch) for p in range(parts)]
        flat = [u for g in got for u in g]
        assert sorted(flat) == sorted((f, g) for f, n in enumerate(rows) for g in range(n))
        assert len(flat) == len(set(flat))
        if len(rows) >= parts:  # enough files: each file is read whole by one reader
            owners = {}
            for p, g in enumerate(got):
                for f, _ in g:
                    owners.setdefault(f, set()).add(p)
            assert all(len(o) == 1 for o in owners.values())


def test_ranks_and_workers_are_disjoint(prep_out):
    whole = Counter(k[:2] for k in _keys(ShardFrameDataset(prep_out, seed=0)))
    parts = [Counter(k[:2] for k in _keys(ShardFrameDataset(prep_out, seed=0, rank=r, world_size=2)))
             for r in range(2)]
    assert not set(parts[0]) & set(parts[1])
    assert parts[0] + parts[1] == whole
    # real DataLoader worker processes: no window twice, none lost
    loader = make_loader(ShardFrameDataset(prep_out, seed=0, batch_size=8), num_workers=2)
    seen = Counter()
    for batch in loader:
        seen.update(zip(batch["clip_id"], batch["frame_index"].tolist()))
    assert seen == whole


def test_holdout_split(prep_out):
    audio = _clips(prep_out)
    train = list(ShardFrameDataset(prep_out, frames="train", holdout_fraction=0.25))
    hold = list(ShardFrameDataset(prep_out, frames="holdout", holdout_fraction=0.25, min_ref_gap=5))
    assert train and hold
    for s in train:
        cut = holdout_start(audio[s["clip_id"]].num_frames, 0.25)
        assert s["frame_index"] + 4 < cut and s["ref_index"] < cut
    for s in hold:
        lo, hi = frame_range(audio[s["clip_id"]].num_frames, "holdout", 0.25)
        assert lo <= s["frame_index"] and s["frame_index"] + 4 < hi


def test_start_batch_resumes_the_stream(prep_out):
    kw = dict(seed=5, batch_size=6, infinite=True, shuffle_buffer=16)
    full = iter(ShardFrameDataset(prep_out, **kw))
    ref = [next(full) for _ in range(30)]  # more than one epoch
    resumed = iter(ShardFrameDataset(prep_out, start_batch=21, **kw))
    for want in ref[21:]:
        got = next(resumed)
        assert got["clip_id"] == want["clip_id"] and torch.equal(got["target"], want["target"])
        assert torch.equal(got["frame_index"], want["frame_index"])


def test_offset_negatives(prep_out):
    audio = _clips(prep_out)
    ds = ShardFrameDataset(prep_out, num_offset_negatives=4, max_offset=10, min_negative_offset=2)
    for s in list(ds)[:20]:
        offs = s["neg_offset"].tolist()
        assert len(offs) == 4 and all(2 <= abs(d) <= 10 for d in offs)
        for k, d in enumerate(offs):
            np.testing.assert_array_equal(s["neg_mel"][k].numpy(),
                                          mel_window(audio[s["clip_id"]].mel, s["frame_index"] + d))


def test_clip_meta_is_the_prep_output_clip(prep_out):
    """The dataset's clips are ``prep.output.Clip`` rows (with mel), read through ``PrepOutput`` only, and a
    dataset accepts an opened PrepOutput as well as its folder."""
    meta = read_clip_meta(prep_out)
    assert list(meta) == ["w2l_input3", "w2l_input4"]
    for clip_id, clip in _clips(prep_out).items():
        assert type(meta[clip_id]) is type(clip) and meta[clip_id].num_frames == clip.num_frames
        np.testing.assert_array_equal(meta[clip_id].mel, clip.mel)
    assert all(c.mel.shape[0] == 80 and c.crop_size == 256 and c.num_frames == 60 for c in meta.values())
    assert list(read_clip_meta(prep_out, clip_ids={"w2l_input4"})) == ["w2l_input4"]
    assert read_clip_meta(prep_out, split="no-such-split") == {}
    a = ShardFrameDataset(PrepOutput.open(prep_out), seed=2, shuffle_buffer=8)
    b = ShardFrameDataset(prep_out, seed=2, shuffle_buffer=8)
    assert _keys(a) == _keys(b) and a.prep_out == b.prep_out
