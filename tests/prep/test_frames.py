"""Frames that stay YUV (prep.frames): a region converted from the planes is bit for bit the same as that
region of the whole-frame RGB conversion, and iter_planar yields iter_frames' frames in the same chunks."""
from __future__ import annotations

import numpy as np
import pytest

from prep import media
from prep.frames import YUVFrame


@pytest.mark.parametrize("name", ["w2l_input4.mp4", "latentsync_demo1.mp4"])  # H.264 30 fps, HEVC 1080x1920
def test_planar_frames_equal_the_rgb_frames_everywhere_they_are_read(videos_dir, name):
    path, stop = videos_dir / name, 30
    rgb = list(media.iter_frames(path, chunk_size=8, stop=stop))
    planar = list(media.iter_planar(path, chunk_size=8, stop=stop))
    assert [c.start for c in planar] == [c.start for c in rgb] and [len(c.frames) for c in planar] == [
        len(c.frames) for c in rgb]
    rng = np.random.default_rng(0)
    kinds = set()
    for pc, rc in zip(planar, rgb):
        for frame, want in zip(pc.frames, rc.frames):
            kinds.add(type(frame).__name__)
            h, w = want.shape[:2]
            assert (frame.h, frame.w) == (h, w)
            for _ in range(4):  # random regions, odd corners included
                x0, y0 = int(rng.integers(0, w - 2)), int(rng.integers(0, h - 2))
                x1, y1 = int(rng.integers(x0 + 1, w + 1)), int(rng.integers(y0 + 1, h + 1))
                np.testing.assert_array_equal(frame.region(x0, y0, x1, y1), want[y0:y1, x0:x1])
        np.testing.assert_array_equal(pc.frames[0].full(), rc.frames[0])
    assert kinds == {YUVFrame.__name__}  # the 4:2:0 sources really took the planar path


def test_a_region_prepared_ahead_serves_the_reads_inside_it(videos_dir):
    """convert_ahead with a backend's ``prepare`` (as the decoder thread does): a read inside that region is cut
    from it without preparing again, a read reaching outside prepares its own; both equal preparing the
    region of the whole RGB frame."""
    import cv2

    from prep.frames import convert_ahead

    path = videos_dir / "latentsync_demo1.mp4"
    frame = next(iter(media.iter_planar(path, stop=1))).frames[0]
    want = cv2.cvtColor(next(iter(media.iter_frames(path, stop=1))).frames[0], cv2.COLOR_RGB2GRAY)
    calls = []

    def grey(rgb):  # a per-pixel prepare, as dlib's
        calls.append(rgb.shape)
        return cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)

    convert_ahead(frame, (300.2, 500.7, 801.0, 1003.5), grey)
    assert len(calls) == 1
    inside = frame.prepared(320, 510, 777, 990, grey)
    assert len(calls) == 1 and inside.flags.c_contiguous
    np.testing.assert_array_equal(inside, want[510:990, 320:777])
    other = frame.prepared(320, 510, 777, 990, lambda rgb: grey(rgb))  # another prepare: not served from it
    outside = frame.prepared(290, 510, 777, 990, grey)
    assert len(calls) == 3
    np.testing.assert_array_equal(other, inside)
    np.testing.assert_array_equal(outside, want[510:990, 290:777])
