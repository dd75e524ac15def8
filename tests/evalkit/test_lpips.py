"""LPIPS: our AlexNet / VGG16 code in torchvision's layout + the v0.1 heads, against the lpips package.

No official backbone file is ever present in tests: backbones are seeded random state dicts in torchvision's
exact key layout. The heads are the real v0.1 files torchmetrics ships. The cross-check against the
``lpips`` package needs torchvision, which cannot sit next to the main environment's CPU torch: it runs in
a side virtualenv (docs/DEVELOPING.md) and is skipped only when ``lpips`` is not importable.
"""
from __future__ import annotations

import numpy as np
import pytest
import torch

from evalkit.nets.lpips import LPIPS, backbone_state, load_lpips, random_backbone_state

ALEX_KEYS = {"features.0.weight": (64, 3, 11, 11), "features.3.weight": (192, 64, 5, 5),
             "features.6.weight": (384, 192, 3, 3), "features.8.weight": (256, 384, 3, 3),
             "features.10.weight": (256, 256, 3, 3)}
VGG_CONVS = (0, 2, 5, 7, 10, 12, 14, 17, 19, 21, 24, 26, 28)


def _save(state: dict, path):
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(state, path)
    return path


@pytest.fixture(scope="module")
def alex_file(tmp_path_factory):
    """Random AlexNet in torchvision's full layout: features, plus the classifier (zero, stored as 1-element
    expanded views so the file stays small) exactly as alexnet-owt-7be5be79.pth has them."""
    from evalkit.nets.lpips import CLASSIFIER

    state = random_backbone_state("alex", seed=3)
    state.update({k: torch.zeros(1).expand(*shape) for k, shape in CLASSIFIER["alex"].items()})
    return _save(state, tmp_path_factory.mktemp("lpips") / "alexnet-owt-7be5be79.pth")


def _images(seed=0, n=3, size=64):
    rng = np.random.default_rng(seed)
    a = rng.integers(0, 256, (n, size, size, 3), dtype=np.uint8)
    b = np.clip(a.astype(int) + rng.integers(-40, 41, a.shape), 0, 255).astype(np.uint8)
    return a, b


def test_backbones_have_torchvisions_key_layout():
    alex = {f"features.{k}": tuple(v.shape) for k, v in LPIPS("alex").backbone.features.state_dict().items()}
    assert {k: v for k, v in alex.items() if k.endswith("weight")} == ALEX_KEYS
    vgg = {f"features.{k}": tuple(v.shape) for k, v in LPIPS("vgg").backbone.features.state_dict().items()}
    assert set(vgg) == {f"features.{i}.{p}" for i in VGG_CONVS for p in ("weight", "bias")}
    assert vgg["features.0.weight"] == (64, 3, 3, 3) and vgg["features.28.weight"] == (512, 512, 3, 3)


def test_loads_by_path_records_hashes_and_refuses_other_layouts(alex_file, tmp_path):
    from talkbase.fileio import sha256_file
    from talkbase.weights import WeightsUnreadable

    m = load_lpips("alex", alex_file)
    assert m.weights["alexnet"]["sha256"] == sha256_file(alex_file)
    assert not m.weights["alexnet"]["official"] and not m.calibrated  # the name, not the hash, says 7be5be79
    assert m.weights["lpips"]["official"] and m.weights["lpips"]["path"].endswith("alex.pth")  # torchmetrics' copy
    bad = dict(random_backbone_state("alex", 0))
    bad["features.0.weight"] = bad["features.0.weight"][:32]
    with pytest.raises(WeightsUnreadable, match="features.0.weight|0.weight"):
        load_lpips("alex", _save(bad, tmp_path / "a" / "alexnet-owt-7be5be79.pth"))
    other = {**random_backbone_state("alex", 0), "fc.weight": torch.zeros(2)}
    with pytest.raises(WeightsUnreadable, match="layout"):
        backbone_state("alex", other, "x")


def _functional_lpips(state: dict, heads: dict, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """LPIPS-alex written out with torch.nn.functional from the raw state dicts (an independent path)."""
    import torch.nn.functional as F

    shift = torch.tensor([-0.030, -0.088, -0.188]).view(1, 3, 1, 1)
    scale = torch.tensor([0.458, 0.448, 0.450]).view(1, 3, 1, 1)

    def feats(z):
        z = (z - shift) / scale
        out = []
        for i, (stride, pad, pool) in zip((0, 3, 6, 8, 10), ((4, 2, False), (1, 2, True), (1, 1, True),
                                                            (1, 1, False), (1, 1, False))):
            if pool:
                z = F.max_pool2d(z, 3, 2)
            z = F.relu(F.conv2d(z, state[f"features.{i}.weight"], state[f"features.{i}.bias"], stride, pad))
            out.append(z)
        return out

    total = 0
    for k, (a, b) in enumerate(zip(feats(x), feats(y))):
        na = a / (a.pow(2).sum(1, keepdim=True).sqrt() + 1e-10)
        nb = b / (b.pow(2).sum(1, keepdim=True).sqrt() + 1e-10)
        total = total + F.conv2d((na - nb) ** 2, heads[f"lin{k}.model.1.weight"]).mean((2, 3))
    return total.reshape(-1)


def test_equals_the_formula_written_out(alex_file):
    from talkbase.weights import load_torch_state

    m = load_lpips("alex", alex_file)
    heads, _ = load_torch_state("lpips", filename="alex.pth")
    state = random_backbone_state("alex", seed=3)
    a, b = _images(size=96)
    x, y = (torch.from_numpy(z).permute(0, 3, 1, 2).float() / 255 * 2 - 1 for z in (a, b))
    want = _functional_lpips(state, heads, x, y)
    got = m.distances(a, b)
    assert got.dtype == torch.float64 and torch.all(want > 0)
    torch.testing.assert_close(got.float(), want, rtol=1e-5, atol=1e-7)
    assert torch.allclose(m.distances(a, a), torch.zeros(3, dtype=torch.float64), atol=1e-7)  # d(x, x) = 0
    torch.testing.assert_close(m.distances(b, a), got)  # symmetric


def test_vgg_runs_and_blur_is_farther_than_light_noise(tmp_path):
    import cv2

    m = load_lpips("vgg", _save(random_backbone_state("vgg", 1), tmp_path / "vgg16-397923af.pth"))
    assert m.weights["lpips"]["path"].endswith("vgg.pth") and m.weights["lpips"]["official"]
    rng = np.random.default_rng(5)
    base = np.stack([cv2.resize(rng.integers(0, 256, (16, 16, 3), dtype=np.uint8), (64, 64)) for _ in range(2)])
    noisy = np.clip(base + rng.integers(-3, 4, base.shape), 0, 255).astype(np.uint8)
    blurred = np.stack([cv2.GaussianBlur(f, (0, 0), 3) for f in base])
    assert torch.all(m.distances(base, blurred) > m.distances(base, noisy))


def test_equals_the_lpips_package(tmp_path):
    """Shared random backbone weights, the package's own v0.1 heads: our value equals lpips.LPIPS to 1e-4.
    Run in the side venv: PYTHONPATH=$PWD /tmp/lpipsenv/bin/python -m pytest tests/evalkit/test_lpips.py"""
    try:
        import lpips
    except ImportError as e:
        pytest.skip(f"lpips not importable ({e}); runs in the side venv (docs/DEVELOPING.md)")
    for net, backbone in (("alex", "alexnet-owt-7be5be79.pth"), ("vgg", "vgg16-397923af.pth")):
        state = random_backbone_state(net, seed=11)
        ours = load_lpips(net, _save(state, tmp_path / net / backbone))
        theirs = lpips.LPIPS(net=net, version="0.1", pretrained=True, pnet_rand=True, verbose=False).eval()
        slices = {}
        for k, v in state.items():  # features.{i}.* -> the package's slice{s}.{i}.*
            i = int(k.split(".")[1])
            s = next(j for j, stop in enumerate((2, 5, 8, 10, 12) if net == "alex" else (4, 9, 16, 23, 30), 1)
                     if i < stop)
            slices[f"slice{s}.{i}.{k.split('.')[2]}"] = v
        theirs.net.load_state_dict(slices)
        for size in (64, 128):
            a, b = _images(seed=size, n=4, size=size)
            with torch.no_grad():
                want = theirs(*(torch.from_numpy(z).permute(0, 3, 1, 2).float() / 255 for z in (a, b)),
                              normalize=True).reshape(-1).double()
            got = ours.distances(a, b)
            assert float(want.min()) > 0
            assert float((got - want).abs().max()) < 1e-4, (net, size, got, want)
            torch.testing.assert_close(got, want, rtol=1e-4, atol=0)
