"""refmodel training: diffusion maths, the tiny model's loss falls on real shards, checkpoints resume to
the same loss curve, the sync expert trains and scores."""
from __future__ import annotations

import math

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from refmodel.config import get_config  # noqa: E402
from refmodel.diffusion import MaskedDiffusion, beta_schedule, mouth_mask  # noqa: E402
from refmodel.testing import prep_trimmed_clips  # noqa: E402
from refmodel.unet import UNet  # noqa: E402

# small batches keep a few dozen steps within the test budget; everything else is the tiny config
FAST = {"batch_size": 2, "checkpoint_every": 1000, "log_every": 1000}


@pytest.fixture(scope="module")
def prep_out(videos_dir, tmp_path_factory):
    return prep_trimmed_clips(videos_dir, tmp_path_factory.getbasetemp() / "refmodel_prep", num_frames=60)


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    # the machine is shared: one intra-op thread is faster and bitwise-stable
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def expert_path(prep_out, tmp_path_factory):
    from refmodel.sync_expert import train_sync_expert

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
    from prep.audio import mel_window
    from prep.shards import decode_crop, read_clip_audio, read_clip_frames
    from refmodel.sync_expert import load_sync_expert

    scorer = load_sync_expert(expert_path)
    m = scorer.metrics
    assert m["steps"] == 15
    for part in ("holdout", "train"):
        r = m[part]
        assert r["num_windows"] > 0 and 0.0 <= r["window_accuracy"] <= r["window_accuracy_pm1"] <= 1.0
    clip = "w2l_input3"
    mel = read_clip_audio(prep_out)[clip].mel
    crops = np.stack([decode_crop(b) for b in read_clip_frames(prep_out, clip, ["crop"]).column("crop").to_pylist()])
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


@pytest.fixture(scope="module")
def acceptance(videos_dir, tmp_path_factory, artifact_dir):
    """The acceptance run (~20 min of 2 cores): real prep of the four shared clips, the tiny config's
    full budget (sync expert + diffusion), then the held-out evaluation. Numbers go to
    ``artifacts/refmodel_acceptance.json``. Same as::

        talkbench prep VIDEOS PREP && talkbench train PREP --out RUN --config tiny
        python -m refmodel.evaluate RUN/checkpoint.pt PREP
    """
    import json
    import shutil
    import time

    from prep.config import PrepConfig
    from prep.job import run_prep
    from refmodel.evaluate import evaluate_heldout
    from refmodel.train import train

    root = tmp_path_factory.mktemp("acceptance")
    src = root / "in"
    src.mkdir()
    for p in sorted(videos_dir.glob("*.mp4")):
        shutil.copy(p, src / p.name)
    prep_out = root / "prep"
    run_prep(src, prep_out, PrepConfig(faces={"detect_every": 10, "fit_3dmm": False}, frames_per_shard=256),
             scheduler="inline", progress=False)
    torch.set_num_threads(2)
    t0, c0 = time.time(), time.process_time()
    ckpt = train(prep_out, root / "run", "tiny", seed=0, progress=False)
    wall, cpu = time.time() - t0, time.process_time() - c0
    res = evaluate_heldout(ckpt, prep_out, seed=0)
    res["train_wall_s"], res["train_cpu_s"] = round(wall, 1), round(cpu, 1)
    (artifact_dir / "refmodel_acceptance.json").write_text(json.dumps(res, indent=2) + "\n")
    return res


@pytest.mark.slow
def test_acceptance_tiny_beats_mean_fill_and_follows_audio(acceptance):
    m = acceptance["methods"]
    assert acceptance["train_cpu_s"] <= 2 * 20 * 60, "tiny budget: at most 20 min of 2 cores"
    assert m["model"]["psnr"] > m["mean-fill"]["psnr"]
    assert m["model"]["lmd"] < m["mean-fill"]["lmd"]
    assert m["model"]["sync"] > m["model-shuffled-audio"]["sync"]
