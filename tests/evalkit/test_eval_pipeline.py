"""End-to-end ``evaluate`` on a real prep output: planted degradations, results.json contract, determinism.

The reference is ``run_prep`` over two 40-frame segments of a real clip. FID here uses a seeded *random*
Inception (``allow_uncalibrated_fid``; no official weights in tests) over ~20 samples per side, so its
values are uncalibrated and small-N biased; only their order is tested. LSE runs on a random-weight
SyncNet file only in the test that says so (official weights are never present in tests).
"""
from __future__ import annotations

import copy
import hashlib
import json
import os

import numpy as np
import pytest

from talkbase.results import ResultsError as ResultsSchemaError
from talkbase.results import load_results, parse_results

CLIPS = {"spk1/a": (0, 32), "b": (60, 92)}  # clip id -> frame range of w2l_input3
FAST = dict(csim_stride=8, fid_stride=4)  # fewer dlib embeddings and Inception passes per video


def _degrade(kind: str, frames: np.ndarray) -> np.ndarray:
    import io

    import cv2
    from PIL import Image

    if kind == "gt":
        return frames
    if kind == "blur":
        return np.stack([cv2.GaussianBlur(f, (0, 0), 2.5) for f in frames])
    if kind == "jpeg":
        out = []
        for f in frames:
            buf = io.BytesIO()
            Image.fromarray(f).save(buf, format="JPEG", quality=10)
            out.append(np.asarray(Image.open(buf).convert("RGB")))
        return np.stack(out)
    if kind == "noise":
        rng = np.random.default_rng(1)
        return np.clip(frames + rng.normal(0, 15, frames.shape), 0, 255).astype(np.uint8)
    raise ValueError(kind)


@pytest.fixture(scope="module")
def env(tmp_path_factory, videos_dir):
    """Reference prep output, submissions (ground truth re-encoded + 3 degradations), no weights on disk."""
    from prep.config import PrepConfig
    from prep.job import run_prep
    from prep.media import decode_clip, write_video

    root = tmp_path_factory.mktemp("evalpipe")
    old_cache = os.environ.get("TALKBENCH_CACHE")
    os.environ["TALKBENCH_CACHE"] = str(root / "cache")  # no official weights anywhere
    clip = decode_clip(videos_dir / "w2l_input3.mp4")
    for cid, (a, b) in CLIPS.items():
        write_video(root / "src" / f"{cid}.mp4", clip.frames[a:b], clip.audio[a * 640:b * 640])
    run_prep(str(root / "src"), root / "ref", PrepConfig(faces={"fit_3dmm": False}), scheduler="inline",
             progress=False)
    subs = {}
    for kind in ("gt", "blur", "jpeg", "noise"):
        for cid, (a, b) in CLIPS.items():
            src = decode_clip(root / "src" / f"{cid}.mp4")  # what the reference was made from
            write_video(root / "sub" / kind / f"{cid}.mp4", _degrade(kind, src.frames), src.audio)
        subs[kind] = root / "sub" / kind
    yield {"root": root, "ref": root / "ref", "subs": subs}
    if old_cache is None:
        os.environ.pop("TALKBENCH_CACHE", None)
    else:
        os.environ["TALKBENCH_CACHE"] = old_cache


@pytest.fixture(scope="module")
def runs(env):
    """Every submission evaluated in-process (``scheduler="synchronous"``) with all reconstruction metrics."""
    from evalkit.runner import evaluate

    out = {}
    for kind, sub in env["subs"].items():
        out[kind] = evaluate(env["ref"], sub, env["root"] / "res" / kind, scheduler="synchronous",
                             allow_uncalibrated_fid=True, fid_cache_dir=env["root"] / "fidcache",
                             submission_meta={"name": kind, "kind": "ground-truth" if kind == "gt" else "baseline"},
                             **FAST)
    return out


def _per_video(env, kind):
    import pandas as pd

    return pd.read_parquet(env["root"] / "res" / kind / "per_video.parquet").set_index("clip_id")


def test_ground_truth_is_best_and_degradations_move_every_metric(env, runs):
    gt = runs["gt"]["metrics"]
    assert gt["psnr"]["value"] > 38 and gt["ssim"]["value"] > 0.95  # crf-18 re-encode of the reference
    assert gt["csim"]["value"] > 0.97
    assert runs["gt"]["metrics"]["fid"]["value"] < 1.0  # against the same frames: near 0 (small-N bias)
    for kind in ("blur", "jpeg", "noise"):
        m = runs[kind]["metrics"]
        assert m["psnr"]["value"] < gt["psnr"]["value"] - 5, kind
        assert m["ssim"]["value"] < gt["ssim"]["value"] - 0.05, kind
        assert m["lmd_mouth"]["value"] > gt["lmd_mouth"]["value"], kind
        assert m["lmd_face"]["value"] > gt["lmd_face"]["value"], kind
        # uncalibrated FID (random Inception, ~20 samples a side): only the direction is meaningful
        assert m["fid"]["value"] > gt["fid"]["value"], kind
        assert m["csim"]["value"] < gt["csim"]["value"], kind
        pv, pv_gt = _per_video(env, kind), _per_video(env, "gt")
        for cid in CLIPS:  # per video too, not only on average
            assert pv.loc[cid, "psnr"] < pv_gt.loc[cid, "psnr"] and pv.loc[cid, "ssim"] < pv_gt.loc[cid, "ssim"]


def test_results_follow_the_contract(env, runs):
    from evalkit.runner import reference_shards_sha256

    r = load_results(env["root"] / "res" / "gt" / "results.json").doc
    assert r == json.loads(json.dumps(runs["gt"]))
    assert r["benchmark"]["reference_shards_sha256"] == reference_shards_sha256(env["ref"])
    assert r["benchmark"]["name"] == f"{env['root'].name}/ref" and r["benchmark"]["protocol_version"] == "evalkit-2.0"
    assert r["submission"]["kind"] == "ground-truth" and r["submission"]["mode"] == "reconstruction"
    assert r["n_videos"] == {"expected": 2, "scored": 2, "skipped": 0, "extra": 0, "resampled": 0,
                             "skip_codes": {}}
    assert set(r["metrics"]) == {"psnr", "ssim", "lpips", "lmd_mouth", "lmd_face", "fid", "fvd", "lse_d", "lse_c",
                                 "csim", "csim_arcface", "sync_inhouse", "cpbd", "blink_rate", "head_motion",
                                 "head_motion_spread", "lipleak", "fid_exp"}
    # every computed metric carries a seeded 95 % bootstrap interval over videos
    for name, m in r["metrics"].items():
        if m["value"] is not None and m["n_scored"] >= 2:
            assert len(m["ci95"]) == 2 and m["ci95"][0] <= m["ci95"][1], name
            assert m["ci95_method"]["resamples"] > 0 and m["ci95_method"]["seed"] == 0, name
    assert r["metrics"]["psnr"]["ci95"][0] <= r["metrics"]["psnr"]["value"] <= r["metrics"]["psnr"]["ci95"][1]
    assert r["metrics"]["lse_d"]["protocol"]["preset"]["name"] == "fast"
    for name, file in (("lpips", "alexnet-owt-7be5be79.pth"), ("fvd", "i3d_torchscript.pt"),
                       ("csim_arcface", "w600k_r50.onnx")):  # default metrics without their weights: skipped, why
        assert r["metrics"][name]["value"] is None and file in r["metrics"][name]["skipped_reason"], name
    assert 0 < r["metrics"]["cpbd"]["value"] < 1 and r["metrics"]["cpbd"]["n_scored"] == 2
    psnr = r["metrics"]["psnr"]
    assert psnr["n_scored"] == 2 and psnr["stderr"] is not None and psnr["unit"] == "dB"
    assert psnr["protocol"]["region"] == "aligned_crop" and psnr["protocol"]["data_range"] == 255
    assert psnr["protocol"]["crop_size"] == 256 and psnr["protocol"]["color"] == "RGB"
    fid = r["metrics"]["fid"]
    assert fid["calibrated"] is False and "uncalibrated" in fid["unit"] and "UNCALIBRATED" in fid["note"]
    assert fid["label"] == "FID" and r["metric_order"][:4] == ["psnr", "ssim", "lmd_mouth", "lmd_face"]
    assert fid["n_samples"] == 16 and fid["n_reference_samples"] == 16 and "2048" in fid["warning"]
    assert len(fid["weights_sha256"]) == 64  # identifies the random network
    for name in ("lse_d", "lse_c"):
        assert r["metrics"][name]["value"] is None and "absent" in r["metrics"][name]["skipped_reason"]
    assert r["metrics"]["sync_inhouse"]["value"] is None and r["metrics"]["sync_inhouse"]["skipped_reason"]
    assert r["metrics"]["csim"]["protocol"]["embedding"].startswith("dlib") and \
        len(r["metrics"]["csim"]["weights_sha256"]) == 64
    pv = _per_video(env, "gt")
    assert list(pv.index) == sorted(CLIPS) and (pv["status"] == "scored").all()
    assert (pv["n_frames"] == 32).all() and pv["psnr"].mean() == pytest.approx(psnr["value"], abs=1e-9)


def test_deterministic_across_runs_and_schedulers(env, runs, capsys):
    """The CLI on a 2-worker Dask LocalCluster gives the same bytes as the in-process run."""
    from talkbench.cli import main

    out = env["root"] / "res" / "gt-cluster"
    rc = main(["eval", "--reference", str(env["ref"]), "--submission", str(env["subs"]["gt"]), "--out", str(out),
               "--allow-uncalibrated-fid", "--workers", "2", "--name", "gt", "--kind", "ground-truth",
               "--csim-stride", "8", "--fid-stride", "4", "--fid-cache", str(env["root"] / "fidcache")])
    printed = capsys.readouterr().out
    assert rc == 0
    assert "2 scored, 0 skipped" in printed and "psnr" in printed and "↑" in printed and "UNCALIBRATED" in printed
    a, b = dict(runs["gt"]), load_results(out / "results.json").doc
    a.pop("created"), b.pop("created")
    assert a == b
    pv = env["root"] / "res" / "gt" / "per_video.parquet"
    assert (out / "per_video.parquet").read_bytes() == pv.read_bytes()


def test_missing_clip_rescaled_clip_and_cross_mode(env):
    from prep.media import decode_clip, write_video

    from evalkit.runner import evaluate

    sub = env["root"] / "sub" / "partial"
    sub.mkdir(parents=True)
    os.symlink(env["subs"]["gt"] / "b.mp4", sub / "b.mp4")  # a symlink that points outside DIR
    src = decode_clip(env["root"] / "src" / "spk1" / "a.mp4")  # half resolution: same framing, rescaled
    write_video(sub / "spk1" / "a.mp4", src.frames[:, ::2, ::2], src.audio)
    (sub / "extra.mp4").write_bytes(b"not a video")
    r = evaluate(env["ref"], sub, env["root"] / "res" / "partial", metrics=["psnr", "lmd_mouth"],
                 scheduler="synchronous")
    assert r["n_videos"]["expected"] == 2 and r["n_videos"]["scored"] == 1 and r["n_videos"]["skipped"] == 1
    assert r["n_videos"]["extra"] == 1
    assert {s["clip_id"]: s["code"] for s in r["skipped"]} == {"b": "unsafe_path", "extra": "unknown_clip"}
    assert r["metrics"]["psnr"]["n_scored"] == 1 and r["metrics"]["psnr"]["n_skipped"] == 1
    assert r["metrics"]["psnr"]["skip_reasons"] == {"video skipped: unsafe_path": 1}
    pv = _per_video(env, "partial")
    assert (pv.loc["spk1/a", "width"], pv.loc["spk1/a", "height"]) == (300, 240)
    # the reference affine is mapped onto the smaller frames: a blurrier face, not a misaligned one
    assert 26 < r["metrics"]["psnr"]["value"] < 40 and r["metrics"]["lmd_mouth"]["value"] < 3
    full = evaluate(env["ref"], sub, env["root"] / "res" / "partial-full", metrics=["psnr"], crop="full",
                    scheduler="synchronous")["metrics"]["psnr"]  # frames resized back to 600x480
    assert full["protocol"]["region"] == "full_frame" and "crop_size" not in full["protocol"]
    assert 26 < full["value"] < 40 and full["n_scored"] == 1
    assert pv.loc["b", "status"] == "skipped" and pv.loc["extra", "status"] == "unknown"
    with pytest.raises(ValueError, match="cross"):
        evaluate(env["ref"], sub, env["root"] / "res" / "x", mode="cross", metrics=["psnr"])


def test_lpips_arcface_fvd_with_given_weights(env, arcface_onnx, i3d_standin):
    """LPIPS (random AlexNet in torchvision's layout, the real v0.1 heads), ArcFace-CSIM (an ONNX model of
    w600k_r50's interface) and FVD (a TorchScript stand-in of i3d_torchscript.pt) through ``evaluate``:
    wiring, labelling and the direction of a planted blur (random networks: not comparable values)."""
    import torch

    from evalkit.nets.lpips import random_backbone_state
    from evalkit.runner import EvaluationError, evaluate
    from talkbase.fileio import sha256_file

    alex = env["root"] / "weights" / "alexnet-owt-7be5be79.pth"
    alex.parent.mkdir(parents=True, exist_ok=True)
    torch.save(random_backbone_state("alex", 0), alex)
    paths = {"alexnet": alex, "arcface": arcface_onnx["path"], "i3d": i3d_standin}
    got = {kind: evaluate(env["ref"], env["subs"][kind], env["root"] / "res" / f"new-{kind}", scheduler="synchronous",
                          metrics=["lpips", "csim_arcface", "fvd", "cpbd"], weight_paths=paths, csim_stride=8)["metrics"]
           for kind in ("gt", "blur")}
    gt, blur = got["gt"], got["blur"]
    assert 0 <= gt["lpips"]["value"] < blur["lpips"]["value"] and gt["lpips"]["n_scored"] == 2
    assert gt["lpips"]["weights_sha256"] == sha256_file(alex) and gt["lpips"]["calibrated"] is False
    assert gt["lpips"]["protocol"]["weights"]["lpips"]["calibrated"] is True  # the v0.1 heads are the real ones
    assert gt["lpips"]["protocol"]["net"] == "alex" and not gt["lpips"]["higher_is_better"]
    assert gt["csim_arcface"]["label"] == "ArcFace-CSIM" and gt["csim_arcface"]["value"] > blur["csim_arcface"]["value"]
    assert gt["csim_arcface"]["weights_sha256"] == sha256_file(arcface_onnx["path"])
    assert 0.9 < gt["csim_arcface"]["value"] <= 1.0  # the same faces, re-encoded
    f = gt["fvd"]
    assert f["n_samples"] == 4 and f["n_reference_samples"] == 4  # two 16-frame windows of two 32-frame clips
    assert f["protocol"]["clip_length"] == 16 and f["protocol"]["weights"]["i3d"]["sha256"] == sha256_file(i3d_standin)
    assert 0 <= f["value"] < blur["fvd"]["value"] and "biased" in f["warning"]
    assert gt["cpbd"]["value"] > blur["cpbd"]["value"]
    full = evaluate(env["ref"], env["subs"]["blur"], env["root"] / "res" / "new-full", scheduler="synchronous",
                    metrics=["lpips"], weight_paths=paths, crop="full")["metrics"]["lpips"]
    assert full["protocol"]["region"] == "full_frame" and full["value"] > 0
    with pytest.raises(EvaluationError, match="i3d_torchscript.pt"):  # asked for, weights absent: fail fast
        evaluate(env["ref"], env["subs"]["gt"], env["root"] / "res" / "new-absent", metrics=["fvd"],
                 scheduler="synchronous")


def test_fid_refused_without_official_weights(env):
    from evalkit.runner import FIDWeightsMissing, evaluate

    out = env["root"] / "res" / "refused"
    with pytest.raises(FIDWeightsMissing, match="allow-uncalibrated-fid"):
        evaluate(env["ref"], env["subs"]["gt"], out, metrics=["fid"], scheduler="synchronous")
    assert not (out / "results.json").exists()


def test_lse_and_inhouse_sync_with_given_checkpoints(env):
    """LSE through the real SyncNet code path on a *random-weight* file in the official layout (the
    numbers are not LSE values; the test checks wiring and labelling), and a random in-house expert."""
    import torch

    from evalkit.nets.sync_expert import ExpertArch, SyncExpert, save_sync_expert
    from evalkit.nets.syncnet import random_state_dict
    from evalkit.runner import EvaluationError, evaluate
    from talkbase.fileio import sha256_file as file_sha256

    syncnet = env["root"] / "weights" / "syncnet_v2.model"
    syncnet.parent.mkdir(parents=True, exist_ok=True)
    torch.save(random_state_dict(0), syncnet)
    torch.manual_seed(0)
    expert = save_sync_expert(SyncExpert(ExpertArch()), env["root"] / "weights" / "sync_expert.pt")
    r = evaluate(env["ref"], env["subs"]["gt"], env["root"] / "res" / "cross", mode="cross",
                 metrics=["lse_d", "lse_c", "sync_inhouse"], syncnet_path=syncnet, sync_expert=expert,
                 scheduler="synchronous")
    assert set(r["metrics"]) == {"lse_d", "lse_c", "sync_inhouse"} and r["submission"]["mode"] == "cross"
    for name in ("lse_d", "lse_c"):
        m = r["metrics"][name]
        assert m["n_scored"] == 2 and np.isfinite(m["value"]) and m["weights_sha256"] == file_sha256(syncnet)
        assert m["protocol"]["crop"] == "aligned" and m["protocol"]["window_frames"] == 5
    assert r["metrics"]["lse_c"]["value"] >= 0
    s = r["metrics"]["sync_inhouse"]
    assert s["n_scored"] == 2 and -1 <= s["value"] <= 1 and "in-domain" in s["protocol"]["domain"]
    pv = _per_video(env, "cross")
    assert pv["lse_offset"].between(-15, 15).all() and (pv["lse_windows"] == 32 - 5).all()  # upstream: T - 5
    # syncnet_python's tracked crop keeps only tracks of > 100 frames: these 32-frame clips have none,
    # and the metric says so instead of inventing a number
    r = evaluate(env["ref"], env["subs"]["gt"], env["root"] / "res" / "pipeline-crop", metrics=["lse_d"],
                 syncnet_path=syncnet, lse_crop="syncnet-pipeline", scheduler="synchronous")
    m = r["metrics"]["lse_d"]
    assert m["value"] is None and m["n_scored"] == 0 and m["protocol"]["crop"] == "syncnet-pipeline"
    assert any("no face track" in why and k == 2 for why, k in m["skip_reasons"].items())

    # upstream's detector: absent weights skip LSE with the reason; a file in the official layout runs
    # S3FD on every frame at scale 0.25 and its sha256 goes into the protocol
    from evalkit.nets.s3fd import random_state_dict as s3fd_random

    with pytest.raises(EvaluationError, match="sfd_face.pth"):  # asked for: refused up front, not skipped
        evaluate(env["ref"], env["subs"]["gt"], env["root"] / "res" / "pipeline-s3fd-absent", metrics=["lse_d"],
                 syncnet_path=syncnet, lse_crop="syncnet-pipeline", lse_detector="s3fd",
                 s3fd_path=env["root"] / "weights" / "absent" / "sfd_face.pth", scheduler="synchronous")
    r = evaluate(env["ref"], env["subs"]["gt"], env["root"] / "res" / "pipeline-s3fd-default",
                 syncnet_path=syncnet, lse_crop="syncnet-pipeline", lse_detector="s3fd", allow_uncalibrated_fid=True,
                 fid_cache_dir=env["root"] / "fidcache", scheduler="synchronous", csim_stride=16, fid_stride=8)
    m = r["metrics"]["lse_d"]  # a default metric whose detector weights are absent: skipped, with the reason
    assert m["value"] is None and "sfd_face.pth" in m["skipped_reason"] and m["protocol"]["detector"] == "s3fd"
    s3fd_file = env["root"] / "weights" / "sfd_face.pth"
    torch.save(s3fd_random(0), s3fd_file)
    r = evaluate(env["ref"], env["subs"]["gt"], env["root"] / "res" / "pipeline-s3fd", metrics=["lse_d"],
                 syncnet_path=syncnet, lse_crop="syncnet-pipeline", lse_detector="s3fd", s3fd_path=s3fd_file,
                 scheduler="synchronous")
    m = r["metrics"]["lse_d"]
    assert m["protocol"]["weights"]["s3fd"]["sha256"] == file_sha256(s3fd_file) and "S3FD" in m["protocol"]["detector_how"]
    assert m["n_scored"] == 0 and sum(m["skip_reasons"].values()) == 2  # 32-frame clips: no 100-frame track


def test_score_video_reports_instead_of_raising(env, tmp_path):
    import dataclasses

    from evalkit.config import EvalConfig
    from evalkit.runner import load_reference
    from evalkit.submission import validate_submission
    from evalkit.tasks import EvalTask, ResolvedWeights
    from evalkit.worker import score_video
    from prep.output import PrepOutput

    prep_out = PrepOutput.open(env["ref"])
    clips, problems = load_reference(prep_out)
    assert problems == [] and sorted(clips) == sorted(CLIPS)
    video = {v.clip_id: v for v in validate_submission(env["ref"], env["subs"]["gt"])[0]}["b"]
    bad = tmp_path / "b.mp4"
    bad.write_bytes(b"\x00" * 1000)
    task = EvalTask(clips["b"], dataclasses.replace(video, path=str(bad)), 32, EvalConfig(metrics=("psnr",)),
                    ResolvedWeights(), ("psnr",))
    res = score_video(task)
    assert res.status == "failed" and res.reason.startswith("scoring failed") and res.clip_id == "b"
    good = score_video(dataclasses.replace(task, video=video))
    assert good.status == "scored" and good.values["psnr"].value > 38 and good.n_frames == 32


def test_changed_reference_source_is_never_scored(env, tmp_path):
    """A reference video that no longer has its prep-time sha256 is skipped, with the reason."""
    import shutil

    from evalkit.runner import evaluate

    ref = tmp_path / "ref"
    shutil.copytree(env["ref"], ref)
    src = tmp_path / "b.mp4"
    shutil.copy(env["root"] / "src" / "b.mp4", src)
    import pyarrow as pa
    import pyarrow.parquet as pq

    f = next((ref / "clips").glob("*.parquet"))
    t = pq.read_table(f)
    paths = [str(src) if c == "b" else p for c, p in zip(t.column("clip_id").to_pylist(),
                                                            t.column("source_path").to_pylist())]
    pq.write_table(t.set_column(t.schema.get_field_index("source_path"), "source_path", pa.array(paths)), f)
    src.write_bytes(src.read_bytes()[:-10] + b"0123456789")  # same name, other bytes
    r = evaluate(ref, env["subs"]["gt"], tmp_path / "res", metrics=["psnr"], scheduler="inline")
    assert r["n_videos"]["scored"] == 1 and [s["code"] for s in r["skipped"]] == ["reference_changed"]
    assert "changed since prep" in r["skipped"][0]["reason"]


# ---------------------------------------------------------------- the validator

def test_load_results_rejects_schema_violations(env, runs, tmp_path):
    good = json.loads(json.dumps(runs["gt"]))
    parse_results(good)

    def broken(mutate):
        r = copy.deepcopy(good)
        mutate(r)
        return r

    cases = {
        "missing key": lambda r: r.pop("benchmark"),
        "wrong schema": lambda r: r.update(results_schema="talkbench-results/0"),
        "value type": lambda r: r["metrics"]["psnr"].update(value="31.2"),
        "null without reason": lambda r: r["metrics"]["psnr"].update(value=None),
        "reason with value": lambda r: r["metrics"]["psnr"].update(skipped_reason="x"),
        "direction not a bool": lambda r: r["metrics"]["fid"].update(higher_is_better="no"),
        "out of the metric's range": lambda r: r["metrics"]["ssim"].update(value=1.5),
        "infinite": lambda r: r["metrics"]["psnr"].update(value=float("inf")),
        "protocol edited": lambda r: r["metrics"]["ssim"]["protocol"].update(sigma=2.0),
        "counts": lambda r: r["n_videos"].update(scored=1),
        "kind": lambda r: r["submission"].update(kind="mystery"),
        "date": lambda r: r["submission"].update(date="23/11/2026"),
        "sha": lambda r: r["benchmark"].update(reference_shards_sha256="abc"),
        "escaping per_video path": lambda r: r["per_video"].update(path="../x.parquet"),
        "n_scored too big": lambda r: r["metrics"]["psnr"].update(n_scored=5),
    }
    for what, mutate in cases.items():
        with pytest.raises(ResultsSchemaError):
            parse_results(broken(mutate))
            pytest.fail(f"accepted: {what}")
    p = tmp_path / "results.json"
    p.write_text(json.dumps(good).replace('"stderr": null', '"stderr": NaN', 1))
    with pytest.raises(ResultsSchemaError):
        load_results(p)
    # per_video.parquet next to results.json must match its recorded sha256
    p.write_text(json.dumps(good))
    (tmp_path / "per_video.parquet").write_bytes(b"tampered")
    with pytest.raises(ResultsSchemaError, match="sha256"):
        load_results(p)
    assert hashlib.sha256(b"tampered").hexdigest() != good["per_video"]["sha256"]
