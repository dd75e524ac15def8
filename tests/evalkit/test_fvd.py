"""FVD: the TorchScript I3D interface (a stand-in of ``i3d_torchscript.pt``), StyleGAN-V's preprocessing and
the Fréchet code shared with FID."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from evalkit.metrics.fid import frechet_distance
from evalkit.metrics.fvd import fvd
from evalkit.nets.i3d import load_i3d, preprocess


def _preprocess_single(video, resolution=224):
    """StyleGAN-V's preprocess_single as its ports write it: CTHW in [0, 1]."""
    import torch.nn.functional as F

    c, t, h, w = video.shape
    scale = resolution / min(h, w)
    target = (resolution, math.ceil(w * scale)) if h < w else (math.ceil(h * scale), resolution)
    video = F.interpolate(video, size=target, mode="bilinear", align_corners=False)
    c, t, h, w = video.shape
    w0, h0 = (w - resolution) // 2, (h - resolution) // 2
    return ((video[:, :, h0:h0 + resolution, w0:w0 + resolution] - 0.5) * 2).contiguous()


@pytest.mark.parametrize("hw", [(256, 256), (180, 320), (300, 240)])
def test_preprocess_is_stylegan_v(hw):
    frames = np.random.default_rng(0).integers(0, 256, (16, *hw, 3), dtype=np.uint8)
    got = preprocess(frames)
    want = _preprocess_single(torch.from_numpy(frames).permute(3, 0, 1, 2).float() / 255)
    assert got.shape == (3, 16, 224, 224) and -1 <= float(got.min()) and float(got.max()) <= 1
    torch.testing.assert_close(got, want, rtol=0, atol=0)


def test_fvd_is_the_frechet_distance_of_the_two_sets():
    rng = np.random.default_rng(1)
    a = rng.normal(0, 1, (600, 400))
    b = rng.normal(0.5, 1, (600, 400))
    mu_a, mu_b = a.mean(0), b.mean(0)
    sa, sb = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    assert fvd(a, b) == pytest.approx(frechet_distance(mu_a, sa, mu_b, sb), rel=1e-12)
    assert fvd(a, a) == pytest.approx(0.0, abs=1e-6)
    assert fvd(a, a + 1.0) == pytest.approx(400.0, rel=1e-6)  # a mean shift of 1 in 400 dims


def test_torchscript_interface_is_checked(i3d_standin, tmp_path):
    from talkbase.fileio import sha256_file
    from talkbase.weights import WeightsUnreadable

    net = load_i3d(i3d_standin, check=True)
    assert net.weights_sha256 == sha256_file(i3d_standin) and not net.calibrated
    clips = torch.stack([preprocess(np.full((16, 64, 64, 3), v, np.uint8)) for v in (0, 128, 255)])
    f = net.features(clips)
    assert f.shape == (3, 400) and f.dtype == np.float64 and not np.allclose(f[0], f[2])

    class Wrong(torch.nn.Module):
        def forward(self, x: torch.Tensor, rescale: bool = False, resize: bool = False,
                    return_features: bool = False) -> torch.Tensor:
            return x.mean(dim=(2, 3, 4))  # (N, 3): not 400-d

    wrong = tmp_path / "wrong" / "i3d_torchscript.pt"
    wrong.parent.mkdir()
    with pytest.warns(DeprecationWarning):  # torch.jit.script is deprecated upstream; the detector is TorchScript
        torch.jit.script(Wrong()).save(str(wrong))
    with pytest.raises(WeightsUnreadable, match="400"):
        load_i3d(wrong, check=True)
    pickled = tmp_path / "p" / "i3d_torchscript.pt"
    pickled.parent.mkdir()
    torch.save({"w": torch.zeros(1)}, pickled)
    with pytest.raises(WeightsUnreadable, match="TorchScript"):
        load_i3d(pickled)
