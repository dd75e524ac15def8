"""Acceptance runs of both tiny reference models (slow: ~20 min of 2 cores per training).

1. **Lip sync on a synthetic set made with a seed nothing else uses** (``talkbench.demo_data``: the mouth
   opening is a known function of the audio): ``talkbench train --model M --config tiny`` within the
   budget, then every clip sampled with ``talkbench sample --audio-from`` the next clip; the mouth opening
   measured by dlib on the *output videos* must follow the driving clip's (measured the same way on its
   source video) at r >= 0.5 on average over clips, while copy-reference stays near 0. The held-out
   evaluation (``refmodel.evaluate``) adds true vs shuffled audio (r against the true and the shuffled
   opening, LMD, in-domain sync), each with a 95 % block-bootstrap interval.
2. **Real clips** (the four shared clips, held-out tails): both models still beat mean-fill on PSNR.

Numbers go to ``artifacts/refmodel_acceptance_<model>_{synthetic,real}.json``. One run is the commands::

    python -c "from talkbench.demo_data import synthesize_dataset as s; s('syn', seed=2718)"
    talkbench prep syn/speakers.csv PREP --no-3dmm ; talkbench train PREP --out RUN --model M --config tiny
    talkbench sample RUN PREP --out SUB --clips spk00/clip00 --audio-from spk00/clip01   # ... each clip
"""
from __future__ import annotations

import json
import resource
import time

import numpy as np
import pytest

MODELS = ("diff2lip", "attnwav2lip")
SEED = 2718  # synthetic set: a seed no other test or measurement uses
BUDGET_CPU_S = 2 * 20 * 60  # 20 minutes of 2 cores


def _cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def _train(prep_out, run, model):
    """``talkbench train`` in-process with 2 intra-op threads; (wall s, CPU s)."""
    import torch

    from talkbench.cli import main

    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        t0, c0 = time.time(), _cpu()
        assert main(["train", str(prep_out), "--out", str(run), "--model", model, "--config", "tiny",
                     "--no-progress"]) == 0
        return time.time() - t0, _cpu() - c0
    finally:
        torch.set_num_threads(before)


@pytest.fixture(scope="module")
def synthetic_set(tmp_path_factory):
    from prep.config import PrepConfig
    from prep.faces import FaceConfig
    from prep.job import run_prep
    from talkbench.demo_data import synthesize_dataset

    root = tmp_path_factory.mktemp("acceptance_synthetic")
    synthesize_dataset(root / "videos", seed=SEED)
    run_prep(root / "videos" / "speakers.csv", root / "prep", PrepConfig(faces=FaceConfig(fit_3dmm=False)),
             scheduler="inline", progress=False)
    return root / "prep"


def cross_video_lipsync(prep_out, sub_dir, drivers: dict, n_boot: int = 1000) -> dict:
    """r between the mouth opening of each output video and its driving clip's (dlib on both videos)."""
    from prep.output import PrepOutput
    from refmodel import lipsync as L

    prep = PrepOutput.open(prep_out)
    src = {c.clip_id: prep.verified_source(c) for c in prep.clips()}
    pairs = {}
    for clip, driver in drivers.items():
        gen = L.video_mouth_opening(sub_dir / f"{clip}.mp4")
        true = L.video_mouth_opening(src[driver])[:len(gen)]
        own = L.video_mouth_opening(src[clip])[:len(gen)]
        pairs[clip] = (gen, true, own)
    stats = L.lipsync_stats({c: p[:2] for c, p in pairs.items()}, n_boot=n_boot)
    stats["vs_own_video"] = L.block_bootstrap([(p[0], p[2]) for p in pairs.values()], L.mean_r, n_boot)
    return stats


@pytest.fixture(scope="module", params=MODELS)
def synthetic_run(request, synthetic_set, tmp_path_factory, artifact_dir):
    from prep.output import PrepOutput
    from refmodel.evaluate import evaluate_heldout, summary_lines
    from talkbench.cli import main

    model = request.param
    root = tmp_path_factory.mktemp(f"acceptance_{model}")
    wall, cpu = _train(synthetic_set, root / "run", model)
    ids = sorted(c.clip_id for c in PrepOutput.open(synthetic_set).clips())
    drivers = {c: ids[(i + 1) % len(ids)] for i, c in enumerate(ids)}
    for clip, driver in drivers.items():
        for args in (["sample", str(root / "run")], ["sample", "--baseline", "copy-reference"]):
            out = root / ("model" if len(args) == 2 else "copy")
            assert main([*args, str(synthetic_set), "--out", str(out), "--clips", clip, "--audio-from", driver,
                         "--no-progress"]) == 0
    res = {"model": model, "seed": SEED, "train_wall_s": round(wall, 1), "train_cpu_s": round(cpu, 1),
           "cross_video": cross_video_lipsync(synthetic_set, root / "model", drivers),
           "copy_reference_cross_video": cross_video_lipsync(synthetic_set, root / "copy", drivers),
           "heldout": evaluate_heldout(root / "run", synthetic_set, frames="holdout")}
    (artifact_dir / f"refmodel_acceptance_{model}_synthetic.json").write_text(json.dumps(res, indent=2) + "\n")
    print("\n".join(summary_lines(res["heldout"])))
    return res


@pytest.mark.slow
def test_tiny_follows_the_driving_audio_on_unseen_synthetic_data(synthetic_run):
    res = synthetic_run
    assert res["train_cpu_s"] <= BUDGET_CPU_S, "tiny budget: at most 20 min of 2 cores"
    cross, copy = res["cross_video"], res["copy_reference_cross_video"]
    assert cross["r"]["value"] >= 0.5, cross["r"]
    assert abs(copy["r"]["value"]) < 0.2 and copy["r"]["lo"] < 0.2, copy["r"]  # a still mouth follows nothing
    assert cross["r"]["lo"] > copy["r"]["hi"]
    assert cross["amplitude"]["value"] > 0.3  # the mouth moves, not 1/1000 of the real motion
    ls = res["heldout"]["lipsync"]
    # shuffled audio: the mouth follows the shuffled audio's opening, not the frame's own
    assert ls["shuffled_vs_shuffled_opening"]["r"]["lo"] > ls["shuffled_vs_true_opening"]["r"]["hi"]
    assert ls["true_audio"]["r"]["lo"] > ls["shuffled_vs_true_opening"]["r"]["hi"]
    assert ls["lmd_true_minus_shuffled"]["hi"] < 0  # true audio: lower mouth LMD
    assert ls["sync_true_minus_shuffled"]["lo"] > 0  # and a higher in-domain sync score


@pytest.fixture(scope="module", params=MODELS)
def real_run(request, videos_dir, tmp_path_factory, artifact_dir):
    """Real prep of the four shared clips, the tiny budget, held-out tails (as the first acceptance run)."""
    import shutil

    from prep.config import PrepConfig
    from prep.faces import FaceConfig
    from prep.job import run_prep
    from refmodel.evaluate import evaluate_heldout

    model = request.param
    root = tmp_path_factory.mktemp(f"acceptance_real_{model}")
    src = root / "in"
    src.mkdir()
    for p in sorted(videos_dir.glob("*.mp4")):
        shutil.copy(p, src / p.name)
    run_prep(src, root / "prep", PrepConfig(faces=FaceConfig(detect_every=10, fit_3dmm=False), frames_per_shard=256),
             scheduler="inline", progress=False)
    wall, cpu = _train(root / "prep", root / "run", model)
    res = evaluate_heldout(root / "run", root / "prep", seed=0)
    res.update(train_wall_s=round(wall, 1), train_cpu_s=round(cpu, 1))
    (artifact_dir / f"refmodel_acceptance_{model}_real.json").write_text(json.dumps(res, indent=2) + "\n")
    return res


@pytest.mark.slow
def test_tiny_beats_mean_fill_on_real_clips(real_run):
    m = real_run["methods"]
    assert real_run["train_cpu_s"] <= BUDGET_CPU_S
    assert m["model"]["psnr"] > m["mean-fill"]["psnr"]
    assert np.isfinite(m["model"]["lmd"])
