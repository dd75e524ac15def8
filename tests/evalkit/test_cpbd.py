"""CPBD (Narvekar & Karam 2011): our vectorised code against the python ``cpbd`` package and a plain loop.

The package (``cpbd`` 1.0.7 no longer imports on SciPy >= 1.2; ``cpbd-py312``, in the ``dev`` extra, is the
same code with the import fixed) is the reference for the numbers; the loop below re-does the paper's edge-
width walk pixel by pixel, so the width code is checked even where the package is not installed.
"""
from __future__ import annotations

import importlib

import numpy as np
import pytest

from evalkit.metrics.cpbd import cpbd, cpbd_grey, edge_widths, sobel_edges, to_grey


@pytest.fixture(scope="module")
def faces(videos_dir):
    """Eight 256-px crops of real frames of two clips (the size of the face crop CPBD is scored on)."""
    from prep.media import read_frames

    out = []
    for name, box in (("w2l_input3.mp4", (40, 110, 296, 366)), ("latentsync_demo1.mp4", (60, 130, 316, 386))):
        frames = read_frames(videos_dir / name, stop=20)
        y0, x0, y1, x1 = box
        out += [np.ascontiguousarray(f[y0:y1, x0:x1]) for f in frames[::5]]
    return out


def _loop_widths(edges: np.ndarray, image: np.ndarray) -> np.ndarray:
    """Marziliano widths, one pixel at a time: from an edge pixel walk left and right along its row while the
    intensity keeps moving away from the edge (falling for a 180° gradient, rising for 0°), ≤ 101 px a side."""
    h, w = image.shape
    gy, gx = np.gradient(image)
    out = np.zeros(image.shape)
    ang = np.where(gx != 0, np.arctan2(gy, gx) * (180 / np.pi), 0.0)
    if not ang.any():
        return out
    q = 45 * np.round(ang / 45)
    for r in range(1, h - 1):
        for c in range(1, w - 1):
            if not edges[r, c] or q[r, c] not in (0, 180, -180):
                continue
            sign = -1 if q[r, c] != 0 else 1  # rising (0°) or falling (±180°) left to right
            left = 0
            while left <= 100 and c - 2 - left >= 0 and sign * (image[r, c - 1 - left] - image[r, c - 2 - left]) > 0:
                left += 1
            right = 0
            while right <= 100 and c + 2 + right < w and sign * (image[r, c + 2 + right] - image[r, c + 1 + right]) > 0:
                right += 1
            out[r, c] = min(left, 100) + 1 + min(right, 100) + 1
    return out


def test_grey_is_pil_L(faces):
    from PIL import Image

    for f in faces[:3]:
        assert np.array_equal(to_grey(f), np.asarray(Image.fromarray(f).convert("L"), np.float64))


def test_edge_widths_equal_the_pixel_loop(faces):
    rng = np.random.default_rng(0)
    images = [to_grey(f)[::2, ::2] for f in faces[:4]]  # 128 px: the loop is slow
    images.append(np.cumsum(rng.normal(0, 3, (40, 70)), axis=1))  # long monotone runs: the 101-px cap
    for img in images:
        edges = sobel_edges(img)
        want = _loop_widths(edges, img)
        assert np.count_nonzero(want) > 20
        np.testing.assert_array_equal(edge_widths(edges, img), want)


def test_blur_lowers_cpbd_and_values_are_fractions(faces):
    import cv2

    for f in faces:
        sharp = cpbd(f)
        soft = cpbd(cv2.GaussianBlur(f, (0, 0), 1.5))
        assert 0.0 <= soft < sharp <= 1.0
    assert cpbd(np.full((128, 128, 3), 90, np.uint8)) == 0.0  # no edge: nothing to detect
    assert cpbd_grey(np.zeros((40, 40))) == 0.0  # smaller than one 64-px block


def _package():
    try:
        return importlib.import_module("cpbd")
    except ImportError as e:  # not installed, or cpbd 1.0.7 (imports scipy.ndimage.imread, gone since SciPy 1.2)
        pytest.skip(f"python cpbd package not importable ({e}); `pip install cpbd-py312` (the dev extra) runs this")


def test_equals_the_cpbd_package(faces):
    import cv2
    from PIL import Image

    pkg = _package()
    for f in faces + [cv2.GaussianBlur(faces[0], (0, 0), 1.0), cv2.resize(faces[1], (200, 140))]:
        grey = np.asarray(Image.fromarray(f).convert("L"))
        assert cpbd(f) == pytest.approx(float(pkg.compute(grey)), abs=1e-12)
