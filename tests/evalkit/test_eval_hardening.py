"""Evaluation as an attacker and an unlucky user meet it: poisoned FID references, unverified weights, missing or
bad weight files, symlinked submissions, audio bombs, oversized frames, absolute paths in reasons, devices."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from evalkit.runner import EvaluationError, evaluate
from prep import media
from refmodel.testing import ClipSpec, build_fixed_crop_shards

N = 20  # frames per reference clip
FAST = dict(scheduler="inline", fid_stride=10)


def _talkbench(*args, cwd=None, env=None):
    e = dict(os.environ, **(env or {}))
    return subprocess.run([sys.executable, "-m", "talkbench.cli", *args], capture_output=True, text=True, cwd=cwd,
                          env=e)


@pytest.fixture(scope="module")
def env(tmp_path_factory, videos_dir):
    """A two-clip reference (fixed-box crops, sources trimmed beside the shards) and its ground truth."""
    root = tmp_path_factory.mktemp("evalhard")
    old_cache = os.environ.get("TALKBENCH_CACHE")
    os.environ["TALKBENCH_CACHE"] = str(root / "cache")  # no official weights anywhere
    specs = [ClipSpec(videos_dir / "w2l_input3.mp4", (140, 100, 240), "a", stop=N),
             ClipSpec(videos_dir / "w2l_input4.mp4", (300, 60, 270), "b", stop=N)]
    ref = build_fixed_crop_shards(specs, root / "ref")
    gt = root / "gt"
    for cid in ("a", "b"):
        gt.mkdir(exist_ok=True)
        shutil.copy(ref / "sources" / f"{cid}.mp4", gt / f"{cid}.mp4")
    yield {"root": root, "ref": ref, "gt": gt}
    if old_cache is None:
        os.environ.pop("TALKBENCH_CACHE", None)
    else:
        os.environ["TALKBENCH_CACHE"] = old_cache


def _relative_sources(ref: Path) -> None:
    """Rewrite the clips table so every source_path is relative (resolved against the prep output only)."""
    from prep.output import PrepOutput
    from prep.shards import write_table_atomic
    from talkbase.fileio import atomic_write_json, sha256_file

    po = PrepOutput.open(ref)
    t = po.clips_table()
    rows = [dict(r, source_path=f"sources/{r['clip_id']}.mp4") for r in t.to_pylist()]
    m = po.manifest
    entry = m["shards"]["clips"][0]
    write_table_atomic(t.from_pylist(rows, schema=t.schema), ref / entry["path"], "clips")
    entry.update(sha256=sha256_file(ref / entry["path"]))
    atomic_write_json(ref / "manifest.json", m)


# ---------------------------------------------------------------- 16.2: FID reference statistics

def test_fid_reference_is_not_poisoned_from_another_working_directory(env, tmp_path, monkeypatch):
    ref = tmp_path / "ref"
    shutil.copytree(env["ref"], ref)
    _relative_sources(ref)
    clean = evaluate(ref, env["gt"], tmp_path / "clean", metrics=["fid"], allow_uncalibrated_fid=True,
                     fid_cache_dir=tmp_path / "cache1", **FAST)
    hostile = tmp_path / "cwd"  # a same-named noise video where a CWD-relative lookup would find it
    rng = np.random.default_rng(0)
    for cid in ("a", "b"):
        noise = rng.integers(0, 255, (N, 480, 600 if cid == "a" else 850, 3), dtype=np.uint8)
        media.write_video(hostile / "sources" / f"{cid}.mp4", noise, np.zeros(N * 640, np.float32))
    monkeypatch.chdir(hostile)
    again = evaluate(ref, env["gt"], tmp_path / "again", metrics=["fid"], allow_uncalibrated_fid=True,
                     fid_cache_dir=tmp_path / "cache2", **FAST)
    assert again["metrics"]["fid"]["value"] == pytest.approx(clean["metrics"]["fid"]["value"], abs=1e-6)
    assert again["n_videos"]["scored"] == 2


def test_fid_cache_key_has_the_source_hashes_and_a_truncated_cache_is_a_miss(env, tmp_path):
    ref = tmp_path / "ref"
    shutil.copytree(env["ref"], ref)
    _relative_sources(ref)  # the copy's own sources
    cache = tmp_path / "cache"
    first = evaluate(ref, env["gt"], tmp_path / "r1", metrics=["fid"], allow_uncalibrated_fid=True,
                     fid_cache_dir=cache, **FAST)
    files = list(cache.glob("fid-ref-*.npz"))
    assert len(files) == 1
    files[0].write_bytes(files[0].read_bytes()[:100])  # truncated: zipfile.BadZipFile on read
    second = evaluate(ref, env["gt"], tmp_path / "r2", metrics=["fid"], allow_uncalibrated_fid=True,
                      fid_cache_dir=cache, **FAST)
    assert second["metrics"]["fid"]["value"] == pytest.approx(first["metrics"]["fid"]["value"], abs=1e-6)
    assert files[0].stat().st_size > 1000  # recomputed and stored again
    # a reference source swapped for another video (same name): its clip is not scored, FID refuses
    shutil.copy(env["gt"] / "b.mp4", ref / "sources" / "a.mp4")
    with pytest.raises(EvaluationError, match="FID reference set incomplete"):
        evaluate(ref, env["gt"], tmp_path / "r3", metrics=["fid"], allow_uncalibrated_fid=True,
                 fid_cache_dir=cache, **FAST)
    r = evaluate(ref, env["gt"], tmp_path / "r4", metrics=["psnr"], **FAST)
    assert [s["code"] for s in r["skipped"]] == ["reference_changed"] and r["n_videos"]["scored"] == 1


# ---------------------------------------------------------------- 16.3: unverified weights

def test_random_official_layout_syncnet_is_unverified_never_calibrated(env, tmp_path):
    import torch

    from evalkit.nets.syncnet import random_state_dict

    path = tmp_path / "syncnet_v2.model"
    torch.save(random_state_dict(3), path)
    r = evaluate(env["ref"], env["gt"], tmp_path / "out", metrics=["lse_d", "lse_c"], syncnet_path=path, **FAST)
    for key in ("lse_d", "lse_c"):
        m = r["metrics"][key]
        assert m["calibrated"] is False and m["weights_status"] == "unverified"
        assert "(unverified)" in m["unit"] and m["note"].startswith("UNVERIFIED")
        assert m["protocol"]["weights"]["syncnet"]["status"] == "unverified"
    from talkbench.commands.eval import format_summary

    assert "UNVERIFIED weights" in format_summary(r)


def test_readme_does_not_claim_syncnet_and_s3fd_are_checked_against_official_hashes():
    text = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    assert "sha256-checked" not in text.split("`talkbench eval`")[1].split("###")[0]
    assert "unverified" in text and "official_sha256" in text


# ---------------------------------------------------------------- 17.3 / 16.10: weights asked for explicitly

def test_missing_syncnet_file_exits_2_within_seconds(env, tmp_path):
    t0 = time.perf_counter()
    r = _talkbench("eval", "--reference", str(env["ref"]), "--submission", str(env["gt"]), "--out",
                   str(tmp_path / "o"), "--syncnet", str(tmp_path / "missing.model"), "--scheduler", "inline",
                   env={"TALKBENCH_CACHE": str(tmp_path / "c")})
    assert r.returncode == 2 and time.perf_counter() - t0 < 30, r.stderr
    assert "missing.model" in r.stderr and "Traceback" not in r.stderr and len(r.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "o" / "results.json").exists()
    r = _talkbench("eval", "--reference", str(env["ref"]), "--submission", str(env["gt"]), "--out",
                   str(tmp_path / "o"), "--metrics", "lse_d,lse_c", "--scheduler", "inline",
                   env={"TALKBENCH_CACHE": str(tmp_path / "c")})
    assert r.returncode == 2 and "SyncNet" in r.stderr and "Traceback" not in r.stderr


@pytest.mark.parametrize("flag", ["--inception", "--s3fd"])
def test_a_bad_weight_file_exits_2_with_one_line_naming_it(env, tmp_path, flag):
    bad = tmp_path / "bad.pth"
    bad.write_bytes(b"\x80\x04not a torch file at all" * 10)
    extra = ["--metrics", "fid", "--allow-uncalibrated-fid"] if flag == "--inception" else \
        ["--metrics", "lse_d", "--lse-crop", "syncnet-pipeline", "--lse-detector", "s3fd"]
    r = _talkbench("eval", "--reference", str(env["ref"]), "--submission", str(env["gt"]), "--out",
                   str(tmp_path / "o"), flag, str(bad), "--scheduler", "inline", *extra,
                   env={"TALKBENCH_CACHE": str(tmp_path / "c")})
    assert r.returncode == 2, r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and str(bad) in lines[0] and "Traceback" not in r.stderr, r.stderr


def test_a_non_checkpoint_passed_to_sample_exits_2_without_a_traceback(env, tmp_path):
    bad = tmp_path / "checkpoint.pt"
    bad.write_text("hello")
    r = _talkbench("sample", str(bad), str(env["ref"]), "--out", str(tmp_path / "s"))
    assert r.returncode == 2 and "Traceback" not in r.stderr and str(bad) in r.stderr, r.stderr


# ---------------------------------------------------------------- 17.2: symlinks, and scoring nothing

def test_symlinked_submission_exits_1_with_the_hint_and_can_be_followed_on_purpose(env, tmp_path):
    sub = tmp_path / "links"
    sub.mkdir()
    for cid in ("a", "b"):
        (sub / f"{cid}.mp4").symlink_to(env["gt"] / f"{cid}.mp4")
    common = ["eval", "--reference", str(env["ref"]), "--submission", str(sub), "--metrics", "psnr",
              "--scheduler", "inline", "--no-progress"]
    r = _talkbench(*common, "--out", str(tmp_path / "o1"))
    assert r.returncode == 1, r.stdout + r.stderr
    assert "skipped a [unsafe_path]" in r.stdout and "--follow-symlinks-inside" in r.stdout
    r = _talkbench(*common, "--out", str(tmp_path / "o2"), "--follow-symlinks-inside", str(env["gt"]))
    assert r.returncode == 0 and "2 scored" in r.stdout, r.stdout + r.stderr


# ---------------------------------------------------------------- 16.14: no absolute paths in results

def test_reasons_in_results_name_no_absolute_path_of_the_evaluator(env, tmp_path):
    ref = tmp_path / "ref"
    shutil.copytree(env["ref"], ref)
    _relative_sources(ref)
    (ref / "sources" / "b.mp4").unlink()  # a reference source gone missing
    sub = tmp_path / "sub"
    sub.mkdir()
    shutil.copy(env["gt"] / "a.mp4", sub / "a.mp4")
    from evalkit.config import EvalConfig

    # lse_d as a default metric (not asked for by name): skipped with the weights' reason
    r = evaluate(ref, sub, tmp_path / "out", config=EvalConfig(metrics=("psnr", "lse_d")), scheduler="inline")
    text = (tmp_path / "out" / "results.json").read_text()
    for secret in (str(tmp_path), str(Path.home()), os.environ["TALKBENCH_CACHE"]):
        assert secret not in text, secret
    reasons = {s["clip_id"]: s["reason"] for s in r["skipped"]}
    assert "b.mp4" in reasons["b"] and "not found" in reasons["b"]
    assert "SyncNet" in r["metrics"]["lse_d"]["skipped_reason"]


# ---------------------------------------------------------------- 16.5 / 16.6: resource bombs in submissions

def test_a_submission_with_hours_of_audio_is_skipped(env, tmp_path):
    sub = tmp_path / "sub"
    frames = media.read_frames(env["gt"] / "a.mp4")
    media.write_video(sub / "a.mp4", frames, np.zeros(200 * 16000, np.float32) + 0.01)
    shutil.copy(env["gt"] / "b.mp4", sub / "b.mp4")
    r = evaluate(env["ref"], sub, tmp_path / "out", metrics=["psnr"], **FAST)
    skips = {s["clip_id"]: s for s in r["skipped"]}
    assert skips["a"]["code"] == "audio_length" and "audio lasts 200" in skips["a"]["reason"]
    assert r["n_videos"]["scored"] == 1


def test_every_decoded_submission_frame_is_held_to_the_pixel_limit(env):
    """A stream whose SPS grows in-band passes the probe; the worker's decoder refuses the big frames."""
    from evalkit.config import EvalConfig, SubmissionLimits
    from evalkit.runner import load_reference
    from evalkit.submission import validate_submission
    from evalkit.tasks import EvalTask, ResolvedWeights
    from evalkit.worker import score_video
    from prep.output import PrepOutput

    refs, _ = load_reference(PrepOutput.open(env["ref"]))
    accepted, _ = validate_submission(env["ref"], env["gt"])
    video = next(v for v in accepted if v.clip_id == "a")
    cfg = EvalConfig(metrics=("psnr",), limits=SubmissionLimits(max_pixels=100_000))  # 600x480 > 100k
    res = score_video(EvalTask(refs["a"], video, N, cfg, ResolvedWeights(), ("psnr",)))
    assert res.status == "failed" and "is more than 100000 pixels" in res.reason


# ---------------------------------------------------------------- 17.10: --device

def test_device_option_runs_on_cpu_and_refuses_a_missing_gpu(env, tmp_path):
    import torch

    r = evaluate(env["ref"], env["gt"], tmp_path / "cpu", metrics=["psnr"], device="cpu", **FAST)
    assert r["config"]["device"] == "cpu" and r["n_videos"]["scored"] == 2
    if torch.cuda.is_available():
        pytest.skip("a GPU is present: the refusal is for machines without one")
    out = _talkbench("eval", "--reference", str(env["ref"]), "--submission", str(env["gt"]), "--out",
                     str(tmp_path / "o"), "--metrics", "psnr", "--device", "cuda", "--scheduler", "inline")
    assert out.returncode == 2 and "--device cuda" in out.stderr and "Traceback" not in out.stderr
    with pytest.raises(ValueError, match="device must be"):
        evaluate(env["ref"], env["gt"], tmp_path / "x", metrics=["psnr"], device="tpu", **FAST)
    assert json.loads((tmp_path / "cpu" / "results.json").read_text())["config"]["device"] == "cpu"


# ---------------------------------------------------------------- 17.4: the submission's audio

def test_reconstruction_submission_with_another_clips_audio_is_not_scored(env, tmp_path):
    sub = tmp_path / "sub"
    a = media.decode_clip(env["gt"] / "a.mp4")
    b = media.decode_clip(env["gt"] / "b.mp4")
    media.write_video(sub / "a.mp4", a.frames, b.audio)  # the right frames, another clip's audio
    media.write_video(sub / "b.mp4", b.frames, b.audio)  # re-encoded (AAC again): still its own audio
    r = evaluate(env["ref"], sub, tmp_path / "out", metrics=["psnr"], **FAST)
    skips = {s["clip_id"]: s for s in r["skipped"]}
    assert skips["a"]["code"] == "audio_mismatch" and "not its reference clip's audio" in skips["a"]["reason"]
    assert r["n_videos"]["scored"] == 1 and "b" not in skips
    off = evaluate(env["ref"], sub, tmp_path / "off", metrics=["psnr"], audio_check=False, **FAST)
    assert off["n_videos"]["scored"] == 2


def test_cross_mode_pairs_list_in_wav2lip_and_csv_format_is_verified(env, tmp_path):
    from evalkit.pairs import PairsError, read_pairs

    sub = tmp_path / "sub"
    a = media.decode_clip(env["gt"] / "a.mp4")
    b = media.decode_clip(env["gt"] / "b.mp4")
    media.write_video(sub / "a.mp4", a.frames, b.audio)  # video a driven by b's audio: as the list says
    media.write_video(sub / "b.mp4", b.frames, b.audio)  # the list says a's audio: not what it carries
    txt = tmp_path / "lrs2.txt"
    txt.write_text("# Wav2Lip's test_filelists: audio source first, then the video\nb a\na b\n")
    csv_file = tmp_path / "pairs.csv"
    csv_file.write_text("video,audio\na,b\nb,a\n")
    assert read_pairs(txt, ["a", "b"]) == read_pairs(csv_file, ["a", "b"]) == {"a": "b", "b": "a"}
    assert read_pairs(txt, ["main/a", "main/b"]) == {"main/a": "main/b", "main/b": "main/a"}  # by suffix
    with pytest.raises(PairsError, match="not a reference clip"):
        read_pairs(txt, ["x"])
    for pairs in (txt, csv_file):
        r = evaluate(env["ref"], sub, tmp_path / f"out-{pairs.suffix}", mode="cross", metrics=["csim"], pairs=pairs,
                     **FAST)
        skips = {s["clip_id"]: s for s in r["skipped"]}
        assert set(skips) == {"b"} and skips["b"]["code"] == "audio_mismatch" and "clip a" in skips["b"]["reason"]
        assert r["config"]["pairs"]["n"] == 2
    with pytest.raises(EvaluationError, match="--mode cross"):
        evaluate(env["ref"], sub, tmp_path / "x", metrics=["psnr"], pairs=txt, **FAST)


# ---------------------------------------------------------------- 17.6: aligned-crop submissions

def test_aligned_crop_submissions_are_a_declared_kind_scored_against_the_reference_crops(env, tmp_path):
    from refmodel.testing import crop_frame

    boxes = {"a": (140, 100, 240), "b": (300, 60, 270)}
    sub, full = tmp_path / "crops", tmp_path / "full"
    for cid, box in boxes.items():
        clip = media.decode_clip(env["gt"] / f"{cid}.mp4")
        media.write_video(sub / f"{cid}.mp4", np.stack([crop_frame(f, box, 512) for f in clip.frames]), clip.audio)
        media.write_video(full / f"{cid}.mp4", clip.frames, clip.audio)  # the same, re-encoded as full frames
    refused = evaluate(env["ref"], sub, tmp_path / "refused", metrics=["psnr"], **FAST)
    assert refused["n_videos"]["scored"] == 0
    assert "--submission-kind crops" in refused["skipped"][0]["reason"]
    crops = evaluate(env["ref"], sub, tmp_path / "c", metrics=["psnr", "ssim", "lmd_mouth"], submission_kind="crops",
                     **FAST)
    frames = evaluate(env["ref"], full, tmp_path / "f", metrics=["psnr", "ssim", "lmd_mouth"], **FAST)
    assert crops["n_videos"]["scored"] == 2
    assert crops["metrics"]["psnr"]["value"] > 30 and crops["metrics"]["ssim"]["value"] > 0.9
    assert crops["metrics"]["lmd_mouth"]["value"] < 1.5 * frames["metrics"]["lmd_mouth"]["value"] + 0.5
    assert crops["benchmark"]["protocol_hash"] != frames["benchmark"]["protocol_hash"]  # never ranked together
    assert crops["metrics"]["psnr"]["protocol"]["submission_kind"] == "crops"
    with pytest.raises(ValueError, match="crop full"):
        evaluate(env["ref"], sub, tmp_path / "x", metrics=["psnr"], submission_kind="crops", crop="full", **FAST)
