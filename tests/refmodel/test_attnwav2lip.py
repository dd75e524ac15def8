"""AttnWav2Lip (the second reference model): residual CBAM blocks, AdaIN audio alignment, MS-SSIM and LPIPS
(loaded only from real weight files in the official layouts; never random features under its name), training
through the shared loop and sampling through ``talkbench sample``."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from refmodel.attnwav2lip import losses
from refmodel.attnwav2lip.config import get_config
from refmodel.attnwav2lip.net import CBAM, AttnWav2Lip, SemanticAlignment


@pytest.fixture()
def no_lpips(monkeypatch, tmp_path):
    monkeypatch.delenv("TALKBENCH_LPIPS_DIR", raising=False)
    monkeypatch.setenv("TALKBENCH_CACHE", str(tmp_path / "empty_cache"))


def test_network_shapes_attention_and_audio_alignment():
    torch.manual_seed(0)
    cfg = get_config("tiny")
    net = AttnWav2Lip(cfg.model).eval()
    x = torch.rand(2, 3, 64, 64) * 2 - 1
    mel = torch.randn(2, 80, 16)
    out = net(x, x, mel)
    assert out.shape == (2, 3, 64, 64) and out.abs().max() <= 1
    cbam = CBAM(8)
    h = torch.randn(2, 8, 16, 16)
    assert (cbam(h).abs() <= h.abs() + 1e-6).all()  # attention only scales features down
    sam = SemanticAlignment(8, 4)
    a = torch.randn(2, 4)
    torch.testing.assert_close(sam(h, a), torch.nn.functional.instance_norm(h))  # starts as a plain IN
    with torch.no_grad():
        sam.proj.weight.normal_()
    assert not torch.allclose(sam(h, a), sam(h, -a))
    # the audio reaches the output (bottleneck concatenation + alignment)
    with torch.no_grad():
        for m in net.modules():
            if isinstance(m, SemanticAlignment):
                m.proj.weight.normal_(0, 0.1)
    assert (net(x, x, mel) - net(x, x, torch.randn(2, 80, 16))).abs().mean() > 1e-3
    with pytest.raises(ValueError):
        AttnWav2Lip(get_config("tiny", {"model.image_size": 40}).model)
    assert get_config("base").model.image_size == 128
    assert get_config(get_config("base").to_dict()) == get_config("base")


def test_ms_ssim():
    torch.manual_seed(0)
    x = torch.rand(3, 3, 32, 64) * 2 - 1
    torch.testing.assert_close(losses.ms_ssim(x, x), torch.ones(3))
    noisy = (x + 0.3 * torch.randn_like(x)).clamp(-1, 1)
    far = torch.rand_like(x) * 2 - 1
    s_noisy, s_far = losses.ms_ssim(x, noisy), losses.ms_ssim(x, far)
    assert (s_far < s_noisy).all() and (s_noisy < 1).all() and (s_far >= 0).all()
    g = x.clone().requires_grad_(True)
    (1 - losses.ms_ssim(g, noisy)).mean().backward()
    assert torch.isfinite(g.grad).all() and g.grad.abs().sum() > 0
    with pytest.raises(ValueError):
        losses.ms_ssim(x, x, scales=5)


def _write_lpips_files(folder, seed=0):
    """Random weights in the official layouts: torchvision's AlexNet (features + classifier) and LPIPS's
    linear layers."""
    torch.manual_seed(seed)
    folder.mkdir(parents=True, exist_ok=True)
    alex = {k: torch.randn_like(v) * 0.05 for k, v in losses.AlexFeatures().state_dict().items()}
    alex.update({"classifier.1.weight": torch.randn(4096, 9216) * 0.01, "classifier.1.bias": torch.zeros(4096)})
    torch.save(alex, folder / losses.ALEXNET_FILE)
    lin = {k: torch.rand_like(v) for k, v in losses.LPIPSLinear().state_dict().items()}
    assert set(lin) == {f"lin{k}.model.1.weight" for k in range(5)}
    torch.save(lin, folder / losses.LPIPS_LIN_FILE)
    return folder


def test_lpips_loads_from_files_in_the_official_layout(tmp_path, monkeypatch, no_lpips):
    from talkbase.weights import WeightsNotFound, WeightsUnreadable

    with pytest.raises(WeightsNotFound, match="TALKBENCH_LPIPS_DIR"):
        losses.load_lpips()
    assert losses.resolve_perceptual("auto") == "msssim"
    assert losses.perceptual_name("msssim") == "attnwav2lip-msssim"
    folder = _write_lpips_files(tmp_path / "lpips")
    monkeypatch.setenv("TALKBENCH_LPIPS_DIR", str(folder))
    net = losses.load_lpips()
    prov = net.provenance[losses.ALEXNET_FILE]
    assert len(prov["sha256"]) == 64 and prov["official"] is False  # random: not torchvision's file
    x = torch.rand(2, 3, 64, 64) * 2 - 1
    y = torch.rand(2, 3, 64, 64) * 2 - 1
    torch.testing.assert_close(net(x, x), torch.zeros(2))
    assert (net(x, y) > 0).all() and not any(p.requires_grad for p in net.parameters())
    assert losses.resolve_perceptual("auto") == "lpips" and losses.perceptual_name("lpips") == "attnwav2lip"
    torch.save(torch.nn.Linear(2, 2), folder / losses.LPIPS_LIN_FILE)  # a pickled module: refused, never run
    with pytest.raises(WeightsUnreadable):
        losses.load_lpips()


def test_loss_falls_on_a_batch(synthetic_prep, no_lpips):
    from refmodel.attnwav2lip.train import RECIPE
    from refmodel.data import ShardFrameDataset
    from refmodel.training import prepare_batch

    cfg = get_config("tiny", {"perceptual": "msssim", "sync_weight": 0.0})
    ds = ShardFrameDataset(synthetic_prep, seed=1, window=5, batch_size=2, frames="train", holdout_fraction=0.2)
    data = prepare_batch(next(iter(ds)), "cpu")
    torch.manual_seed(0)
    net = RECIPE.build(cfg)
    loss = RECIPE.make_loss(cfg, "cpu")
    opt = torch.optim.Adam(net.parameters(), lr=2e-3)
    hist = []
    for _ in range(25):
        terms = loss(net, data, torch.Generator().manual_seed(0), None, None)
        opt.zero_grad()
        terms["total"].backward()
        opt.step()
        hist.append((float(terms["l1"].detach()), float(terms["msssim"].detach())))
    assert hist[-1][0] < 0.6 * hist[0][0] and hist[-1][1] < hist[0][1], hist


def test_train_and_cross_sample_through_the_cli(synthetic_prep, tmp_path, no_lpips):
    """``talkbench train --model attnwav2lip`` (no LPIPS weights here: MS-SSIM, and the run says so), then
    ``talkbench sample RUN --audio-from CLIP`` dispatches on the checkpoint's kind and writes the videos."""
    from prep.media import decode_clip
    from refmodel.training import load_checkpoint, read_loss_log
    from talkbench.cli import main

    run, sub = tmp_path / "run", tmp_path / "sub"
    assert main(["train", str(synthetic_prep), "--out", str(run), "--model", "attnwav2lip", "--steps", "6",
                 "--set", "batch_size=2", "--set", "sync.steps=4", "--set", "sync.batch_size=8",
                 "--no-progress"]) == 0
    ckpt = load_checkpoint(run, "talkbench.refmodel.attnwav2lip")
    assert ckpt["model_name"] == "attnwav2lip-msssim" and ckpt["config"]["perceptual"] == "msssim"
    hist = read_loss_log(run)
    assert [h["step"] for h in hist] == list(range(1, 7)) and all("msssim" in h and "sync" in h for h in hist)
    assert main(["sample", str(run), str(synthetic_prep), "--out", str(sub), "--clips", "spk00/clip01",
                 "--audio-from", "spk01/clip00", "--no-progress"]) == 0
    report = json.loads((sub / "sample_report.json").read_text())
    assert report["model"] == "attnwav2lip-msssim" and report["clips"]["spk00/clip01"]["driving_audio"] == "spk01/clip00"
    got = decode_clip(sub / "spk00" / "clip01.mp4")
    assert got.num_frames == 75 and np.isfinite(got.audio).all()
    # LPIPS asked for explicitly without its weights: an error, not a silent substitute
    from talkbase.weights import WeightsNotFound

    with pytest.raises(WeightsNotFound):
        main(["train", str(synthetic_prep), "--out", str(tmp_path / "run2"), "--model", "attnwav2lip",
              "--steps", "1", "--set", "perceptual=lpips", "--set", "sync_weight=0", "--no-progress"])
