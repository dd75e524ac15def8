"""refmodel training: diffusion maths, the tiny model's loss falls on real shards, checkpoints resume to
the same loss curve, the sync expert trains and scores."""
from __future__ import annotations

import math

import numpy as np
import pytest

import torch

from refmodel.config import get_config  # noqa: E402
from refmodel.diffusion import MaskedDiffusion, beta_schedule, mouth_mask  # noqa: E402
from refmodel.unet import UNet  # noqa: E402

# ``prep_out`` (real prep output, 60 frames of two clips) and the one-thread limit: tests/refmodel/conftest.py
# small batches keep a few dozen steps within the test budget; everything else is the tiny config
FAST = {"batch_size": 2, "checkpoint_every": 1000, "log_every": 1000}


@pytest.fixture(scope="module")
def expert_path(prep_out, tmp_path_factory):
    from refmodel.sync_training import train_sync_expert

    return train_sync_expert(prep_out, tmp_path_factory.mktemp("expert") / "sync_expert.pt", "tiny", steps=15,
                             seed=0, holdout_fraction=0.2)


def test_schedules():
    for name in ("cosine", "linear"):
        b = beta_schedule(name, 1000)
        abar = np.cumprod(1 - b)
        assert b.shape == (1000,) and (b > 0).all() and (b <= 0.999).all()
        assert np.all(np.diff(abar) < 0) and abar[0] > 0.99 and abar[-1] < 0.01


@pytest.mark.parametrize("anchor,sigma_data", [("image", 1.0), ("reference", 0.3), ("image", 0.5)])
def test_ddim_with_an_oracle_recovers_the_target(anchor, sigma_data):
    """A network that outputs the exact F makes ε̂ exact, and DDIM land on x0 from any step count."""
    from refmodel.config import DiffusionConfig

    torch.manual_seed(0)
    diff = MaskedDiffusion(DiffusionConfig(anchor=anchor, sigma_data=sigma_data))
    x0 = torch.rand(2, 3, 16, 16) * 2 - 1
    reference = torch.rand(2, 3, 16, 16) * 2 - 1
    y0 = x0 - reference if anchor == "reference" else x0  # the diffused variable
    mask = mouth_mask(16)
    masked = x0 * (1 - mask)
    calls = []

    def oracle(x, t, masked_, ref, mel):  # solve x̂0(F) = y0 for F (module docstring)
        calls.append(int(t[0]))
        a = diff.alphas_cumprod[t].view(-1, 1, 1, 1)
        d = 1 - a + a * sigma_data ** 2
        skip = sigma_data ** 2 * a.sqrt() / d * x
        return (skip - y0 * mask) / (sigma_data * (1 - a).sqrt() / d.sqrt())

    t = torch.tensor([10, 990])
    noise = torch.randn_like(x0) * mask
    xt = diff.q_sample(y0, t, noise, mask)
    torch.testing.assert_close(diff.predict_eps(oracle, xt, t, masked, reference, None, mask), noise,
                               atol=1e-3, rtol=0)
    for steps in (1, 2, 5):
        calls.clear()
        out = diff.sample(oracle, masked, reference, None, torch.randn(2, 3, 16, 16), steps=steps)
        assert len(calls) == steps and calls[0] == 999 and (steps == 1 or calls[-1] == 0)
        torch.testing.assert_close(out, x0, atol=1e-3, rtol=0)
    # the noisy input only lives on the mouth region
    xt = diff.q_sample(x0, torch.tensor([500, 10]), torch.randn_like(x0), mask)
    assert float(xt[..., :8, :].abs().max()) == 0.0


def test_reference_anchor_starts_near_the_reference():
    """F = 0 (a zero-initialised network) samples the reference's mouth plus σ_d-sized residual under
    the ``reference`` anchor; under ``image`` it samples unit-variance noise around grey."""
    from refmodel.config import DiffusionConfig

    torch.manual_seed(0)
    frame, reference = torch.rand(2, 2, 3, 32, 32) * 2 - 1
    mask = mouth_mask(32)

    def zero(x, *args):
        return torch.zeros_like(x)

    gap = {}
    for anchor, sd in (("reference", 0.3), ("image", 1.0)):
        out = MaskedDiffusion(DiffusionConfig(anchor=anchor, sigma_data=sd)).sample(
            zero, frame * (1 - mask), reference, None, torch.randn(2, 3, 32, 32), steps=10)
        gap[anchor] = float((out - reference)[..., 16:, :].abs().mean())
        assert torch.equal(out[..., :16, :], (frame * (1 - mask))[..., :16, :])
    assert gap["reference"] < 0.3 < gap["image"], gap
    with pytest.raises(ValueError, match="anchor"):
        MaskedDiffusion(DiffusionConfig(anchor="mean"))


def test_configs_build_and_run():
    tiny = get_config("tiny")
    assert tiny.model.image_size == 64 and tiny.window == 5
    m = UNet(tiny.model)
    x = torch.randn(2, 3, 64, 64)
    out = m(x, torch.tensor([3, 900]), x, x, torch.randn(2, 80, 16))
    assert out.shape == (2, 3, 64, 64)
    base = get_config("base")
    assert base.model.image_size == 128
    nb = sum(p.numel() for p in UNet(base.model).parameters())
    assert nb > 10 * sum(p.numel() for p in m.parameters())
    assert get_config(base.to_dict()) == base  # checkpoint round trip
    assert get_config("tiny", {"sync.steps": 7, "batch_size": 3}).sync.steps == 7
    with pytest.raises(ValueError):
        get_config("huge")


@pytest.mark.parametrize("anchor,sigma_data", [("image", 1.0), ("reference", 0.3)])
def test_training_fits_a_batch(prep_out, anchor, sigma_data):
    """The training objective (``loss_terms``: ε-MSE + L1 on x0) falls when the tiny UNet is optimised
    on one real batch with fixed noise levels and noise, under both anchors."""
    from refmodel.data import ShardFrameDataset
    from refmodel.train import loss_terms, prepare_batch

    cfg = get_config("tiny", {**FAST, "diffusion.anchor": anchor, "diffusion.sigma_data": sigma_data})
    ds = ShardFrameDataset(prep_out, seed=123, window=5, batch_size=2, frames="train", holdout_fraction=0.2)
    data = prepare_batch(next(iter(ds)), "cpu")
    torch.manual_seed(0)
    model = UNet(cfg.model)
    diffusion = MaskedDiffusion(cfg.diffusion)
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    losses = []
    for _ in range(30):
        terms = loss_terms(model, diffusion, cfg, data, torch.Generator().manual_seed(0))
        opt.zero_grad()
        terms["total"].backward()
        opt.step()
        losses.append((float(terms["mse"].detach()), float(terms["l1"].detach())))
    (mse0, l10), (mse1, l11) = losses[0], losses[-1]
    assert mse1 < 0.7 * mse0 and l11 < 0.7 * l10, losses


def test_train_runs_and_resumes_exactly(prep_out, expert_path, tmp_path):
    from refmodel.train import load_checkpoint, read_loss_log, train

    steps = 24
    full = train(prep_out, tmp_path / "full", "tiny", steps=steps, seed=0, overrides=FAST,
                 sync_expert=expert_path, progress=False)
    hist = read_loss_log(tmp_path / "full")
    assert [h["step"] for h in hist] == list(range(1, steps + 1))
    assert all(math.isfinite(h["total"]) and "sync" in h for h in hist)
    # (that the loss falls is test_training_fits_a_batch: 24 steps of fresh random t are too noisy)

    # interrupted at 10, resumed to 24: the same curve and the same weights
    train(prep_out, tmp_path / "split", "tiny", steps=10, seed=0, overrides=FAST, sync_expert=expert_path,
          progress=False)
    assert load_checkpoint(tmp_path / "split" / "checkpoint.pt")["step"] == 10
    train(prep_out, tmp_path / "split", "tiny", steps=steps, seed=0, overrides=FAST, sync_expert=expert_path,
          progress=False)
    resumed = read_loss_log(tmp_path / "split")
    assert [h["step"] for h in resumed] == list(range(1, steps + 1))
    for a, b in zip(hist, resumed):
        for k in ("total", "mse", "l1", "sync"):
            assert a[k] == pytest.approx(b[k], abs=1e-6), (a["step"], k)
    ca, cb = load_checkpoint(full), load_checkpoint(tmp_path / "split" / "checkpoint.pt")
    assert set(ca) >= {"config", "step", "model", "ema", "optimizer", "rng"}
    for k in ca["ema"]:
        torch.testing.assert_close(ca["ema"][k], cb["ema"][k], atol=1e-6, rtol=0)

    # a different config cannot silently continue a run
    with pytest.raises(ValueError, match="config"):
        train(prep_out, tmp_path / "split", "tiny", steps=steps + 1, seed=0, overrides={**FAST, "lr": 1.234e-4},
              sync_expert=expert_path, progress=False)


def test_sync_expert_scores(prep_out, expert_path):
    from evalkit.nets.sync_expert import load_sync_expert
    from prep.audio import mel_window
    from prep.output import PrepOutput, decode_crop

    scorer = load_sync_expert(expert_path)
    m = scorer.metrics
    assert m["steps"] == 15
    for part in ("holdout", "train"):
        r = m[part]
        assert r["num_windows"] > 0 and 0.0 <= r["window_accuracy"] <= r["window_accuracy_pm1"] <= 1.0
    assert scorer.training["temperature"] == get_config("tiny").sync.temperature
    assert scorer.arch == get_config("tiny").sync.arch()
    clip = "w2l_input3"
    po = PrepOutput.open(prep_out)
    mel = po.clip(clip, audio=True).mel
    crops = np.stack([decode_crop(b) for b in po.clip_frames(clip, ["crop"]).column("crop").to_pylist()])
    windows = np.stack([crops[f:f + 5] for f in range(10)])
    s = scorer.score(windows, np.stack([mel_window(mel, f) for f in range(10)]))
    assert s.shape == (10,) and np.all(np.abs(s) <= 1.0 + 1e-5)
    res = scorer.clip_sync(crops, mel, max_offset=5)
    assert set(res) >= {"offset", "confidence", "score", "per_offset", "num_windows"}
    assert -5 <= res["offset"] <= 5 and res["num_windows"] == len(crops) - 4
    assert res["per_offset"][0] == pytest.approx(res["score"])
    # a frame without a face breaks the windows that contain it
    valid = np.ones(len(crops), bool)
    valid[20] = False
    assert scorer.clip_sync(crops, mel, max_offset=5, valid=valid)["num_windows"] == len(crops) - 4 - 5


def test_expert_arch_is_the_sync_config_arch():
    """``SyncExpert(ExpertArch())`` is the tiny config's expert; the training settings stay refmodel's."""
    from evalkit.nets.sync_expert import ExpertArch
    from refmodel.config import SyncConfig

    assert ExpertArch() == SyncConfig().arch() == get_config("tiny").sync.arch()
    assert (ExpertArch().image_size, ExpertArch().window, ExpertArch().dim, ExpertArch().channels,
            ExpertArch().max_offset) == (64, 5, 128, 32, 15)
    assert get_config("base").sync.arch() == ExpertArch(image_size=128, dim=256, channels=64)
    training = SyncConfig().training_dict()
    assert training["temperature"] == 0.07 and not set(training) & set(ExpertArch().to_dict())
    assert ExpertArch.from_dict({**SyncConfig().training_dict(), "dim": 64}) == ExpertArch(dim=64)
    with pytest.raises(ValueError):
        ExpertArch(window=0)


def _random_windows(n=3, size=96, seed=0):
    rng = np.random.default_rng(seed)
    return (rng.integers(0, 256, (n, 5, size, size, 3), dtype=np.uint8),
            rng.standard_normal((n, 80, 16)).astype(np.float32))


def test_sync_expert_checkpoint_round_trip(tmp_path):
    from evalkit.nets.sync_expert import ExpertArch, SyncExpert, load_sync_expert, save_sync_expert

    torch.manual_seed(0)
    expert = SyncExpert(ExpertArch())
    path = save_sync_expert(expert, tmp_path / "sync_expert.pt")
    scorer = load_sync_expert(tmp_path)  # a run dir holding sync_expert.pt
    assert scorer.arch == ExpertArch() and scorer.metrics == {} and scorer.training == {}
    for k, v in expert.state_dict().items():
        assert torch.equal(v, scorer.expert.state_dict()[k])
    mouth, mel = _random_windows()
    want = SyncExpert(ExpertArch())
    want.load_state_dict(expert.state_dict())
    from evalkit.nets.sync_expert import SyncScorer

    np.testing.assert_array_equal(scorer.score(mouth, mel), SyncScorer(want).score(mouth, mel))
    assert load_sync_expert(path).metrics == {}


def test_sync_expert_reads_the_older_checkpoint_layout(tmp_path):
    """Checkpoints written before the move (kind of the trainer module, one ``config`` holding the arch
    and the training settings) load: unknown keys are ignored, the rest is ``training``."""
    from dataclasses import asdict

    from evalkit.nets.sync_expert import ExpertArch, SyncExpert, load_sync_expert
    from refmodel.config import SyncConfig

    torch.manual_seed(1)
    expert = SyncExpert(ExpertArch(dim=64, channels=16))
    cfg = SyncConfig(dim=64, channels=16, temperature=0.1)
    torch.save({"kind": "talkbench.refmodel.sync_expert", "config": asdict(cfg), "state": expert.state_dict(),
                "metrics": {"steps": 3}}, tmp_path / "old.pt")
    scorer = load_sync_expert(tmp_path / "old.pt")
    assert scorer.arch == ExpertArch(dim=64, channels=16) == cfg.arch()
    assert scorer.training == cfg.training_dict() and scorer.training["temperature"] == 0.1
    assert scorer.metrics == {"steps": 3}


def test_sync_expert_refuses_what_is_not_a_checkpoint(tmp_path):
    import os
    import re

    from evalkit.nets.sync_expert import ExpertArch, SyncExpert, load_sync_expert, save_sync_expert
    from talkbase.weights import WeightsNotFound, WeightsUnreadable

    class Payload:
        def __reduce__(self):
            return os.makedirs, (str(tmp_path / "executed"),)

    text = tmp_path / "text.pt"
    text.write_text("not a torch file")
    module = tmp_path / "module.pt"
    torch.save(torch.nn.Linear(2, 2), module)
    payload = tmp_path / "payload.pt"
    torch.save({"kind": "x", "obj": Payload()}, payload)
    other = tmp_path / "other.pt"
    torch.save({"kind": "something-else", "state": {}}, other)
    wrong = tmp_path / "wrong_layout.pt"
    save_sync_expert(SyncExpert(ExpertArch(dim=64)), wrong)
    ckpt = torch.load(wrong, weights_only=True)
    ckpt["arch"]["dim"] = 128  # the stored weights no longer fit the stored arch
    torch.save(ckpt, wrong)
    for bad in (text, module, payload, other, wrong):
        with pytest.raises(WeightsUnreadable, match=re.escape(str(bad))):
            load_sync_expert(bad)
    assert issubclass(WeightsUnreadable, ValueError)
    assert not (tmp_path / "executed").exists(), "nothing may be unpickled"
    with pytest.raises(WeightsNotFound, match="missing.pt"):
        load_sync_expert(tmp_path / "missing.pt")


def test_sync_expert_scoring_emits_no_warnings():
    """Read-only inputs (decoded images, memory-mapped arrays) are scored without torch warnings."""
    import warnings

    from evalkit.nets.sync_expert import ExpertArch, SyncExpert, SyncScorer

    torch.manual_seed(0)
    scorer = SyncScorer(SyncExpert(ExpertArch()))
    mouth, mel = _random_windows(size=64)
    crops = np.ascontiguousarray(mouth[:, 0].repeat(4, axis=0))  # (12, 64, 64, 3): the expert's size already
    long_mel = np.random.default_rng(1).standard_normal((80, 60)).astype(np.float32)
    for a in (mouth, mel, crops, long_mel):
        a.setflags(write=False)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        s = scorer.score(mouth, mel)
        scorer.embed_audio(mel)
        res = scorer.clip_sync(crops, long_mel, max_offset=2)
    assert s.shape == (3,) and res["num_windows"] == 8


def test_evalkit_sync_expert_imports_no_upper_layer():
    import subprocess
    import sys

    code = ("import sys, evalkit.nets.sync_expert; "
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('refmodel', 'talkbench')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_audio_paths_guidance_and_null_audio():
    """``audio_path="film"`` + the temporal encoder build and run; guidance 1 is the plain conditional model,
    guidance g extrapolates F(audio) − F(no audio) linearly; the null audio replaces the audio vector."""
    from refmodel.config import DiffusionConfig, ModelConfig

    torch.manual_seed(0)
    m = UNet(ModelConfig(base_channels=8, channel_mult=(1, 2), audio_encoder="temporal", audio_path="film"))
    with torch.no_grad():  # leave the zero init: make every path carry signal
        for p in m.parameters():
            if p.dim() > 1 and float(p.abs().sum()) == 0:
                p.normal_(0, 0.05)
        m.null_audio.normal_()
    x, mel = torch.randn(3, 3, 64, 64), torch.randn(3, 80, 16)
    t = torch.tensor([999, 999, 999])
    d = MaskedDiffusion(DiffusionConfig(anchor="image", sigma_data=0.5))
    keep, drop = torch.ones(3, dtype=torch.bool), torch.zeros(3, dtype=torch.bool)
    cond = d.network(m, x, t, x, x, mel)
    torch.testing.assert_close(cond, m(x, t, x, x, mel, keep))
    uncond = m(x, t, x, x, mel, drop)
    torch.testing.assert_close(uncond, m(x, t, x, x, torch.randn(3, 80, 16), drop))  # no audio: mel unused
    assert (cond - uncond).abs().mean() > 1e-4
    torch.testing.assert_close(d.network(m, x, t, x, x, mel, guidance=2.5), uncond + 2.5 * (cond - uncond),
                               atol=1e-5, rtol=1e-5)
    with pytest.raises(ValueError):
        UNet(ModelConfig(audio_path="sideways"))
    with pytest.raises(ValueError):
        UNet(ModelConfig(audio_encoder="fourier"))


def test_tiny_options_in_the_loss(prep_out):
    """Timesteps stay in [train_t_min, T); a blanked reference mouth and dropped audio change the loss; the
    mouth weight map is 1 + w on the template mouth and 1 far from it."""
    from prep.faces.align import template
    from refmodel.data import ShardFrameDataset
    from refmodel.train import loss_terms, mouth_weight_map, prepare_batch

    w = mouth_weight_map(64, 4.0)[0, 0]
    mouth = template(64)[48:68].mean(0).round().astype(int)
    assert float(w[mouth[1], mouth[0]]) == pytest.approx(5.0, abs=0.05) and float(w[5, 5]) == 1.0
    ds = ShardFrameDataset(prep_out, seed=3, window=5, batch_size=2, frames="train", holdout_fraction=0.2)
    data = prepare_batch(next(iter(ds)), "cpu")
    base = {**FAST, "diffusion.anchor": "image", "diffusion.sigma_data": 0.5, "diffusion.train_t_min": 700,
            "sync_weight": 0.0}
    seen = []

    class Spy(UNet):
        def forward(self, x, t, masked, reference, mel, audio_keep=None):
            seen.append((t.clone(), reference.clone(), audio_keep))
            return super().forward(x, t, masked, reference, mel, audio_keep)

    torch.manual_seed(0)
    cfg = get_config("tiny", base)
    spy = Spy(cfg.model)
    diffusion = MaskedDiffusion(cfg.diffusion)
    plain = loss_terms(spy, diffusion, cfg, data, torch.Generator().manual_seed(0))
    assert int(seen[-1][0].min()) >= 700 and seen[-1][2] is None
    assert torch.equal(seen[-1][1], data["reference"])
    cfg2 = get_config("tiny", {**base, "ref_mouth_drop": 1.0, "audio_drop": 1.0, "mouth_weight": 4.0})
    blank = loss_terms(spy, MaskedDiffusion(cfg2.diffusion), cfg2, data, torch.Generator().manual_seed(0))
    t_ref, ref, keep = seen[-1]
    assert float(ref[..., 32:, :].abs().max()) == 0.0 and torch.equal(ref[..., :32, :], data["reference"][..., :32, :])
    assert keep is not None and not keep.any()
    assert float(blank["total"].detach()) != float(plain["total"].detach())
