"""decord vs prep's PyAV decode (``bench/decode_backends.py``): the claim in :mod:`prep.media`'s docstring.

Both backends give the same 25 fps output frames, bit for bit: same count, the same source frame for every
output instant (decord's timestamps resampled as ``prep.media._iter_converted`` does), max |diff| 0. If this
fails, the docstring's paragraph (and the bench row in bench/README.md) no longer hold.
"""
from __future__ import annotations

import itertools

import numpy as np
import pytest

from prep import media

decord = pytest.importorskip("decord", reason="decord not installed (optional extra `decord`): nothing to compare")

CHUNK = 16


def _decord_indices(vr, fps=media.FPS):
    """Output frame i shows the last source frame whose time (from the first frame) is <= i / fps (+1e-6)."""
    ts = vr.get_frame_timestamp(np.arange(len(vr))).astype(np.float64)
    t = ts[:, 0] - ts[0, 0]
    n_out = media.num_output_frames(ts[-1, 1] - ts[0, 0], fps)
    return np.searchsorted(t, np.arange(n_out) / fps + 1e-6, side="right") - 1


def _pyav_indices(path):
    n = itertools.count()
    return np.array([x for ch in media._iter_converted(path, media.FPS, CHUNK, 0, None, lambda f, r: next(n), list)
                     for x in ch.frames])


# the shortest H.264 clip (30 fps: the resampling drops every sixth frame) and the shortest HEVC one
@pytest.mark.parametrize("name", ["w2l_input4.mp4", "latentsync_demo1.mp4"])
def test_decord_gives_prep_frames_bit_for_bit(videos_dir, name):
    path = videos_dir / name
    vr = decord.VideoReader(str(path), ctx=decord.cpu(0), num_threads=0)
    di = _decord_indices(vr)
    pi = _pyav_indices(path)
    assert len(di) == len(pi) == media.count_frames(path)
    assert np.array_equal(di, pi)

    ours = (f for ch in media.iter_frames(path, chunk_size=CHUNK) for f in ch.frames)
    theirs = (f for s in range(0, len(di), CHUNK) for f in vr.get_batch(di[s:s + CHUNK].tolist()).asnumpy())
    n = 0
    for k, (a, b) in enumerate(itertools.zip_longest(ours, theirs)):
        assert a is not None and b is not None, f"frame {k}: one backend ended early"
        assert a.shape == b.shape and a.dtype == b.dtype == np.uint8
        if not np.array_equal(a, b):
            d = np.abs(a.astype(np.int16) - b)
            pytest.fail(f"{name} output frame {k} (source {di[k]}): max |diff| {d.max()}, {np.mean(d > 0):.4f} "
                        f"of values differ")
        n += 1
    assert n == len(di)
