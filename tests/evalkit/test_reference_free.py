"""Reference-free mode: ``talkbench eval --submission DIR --out RES`` with no ``--reference``.

The folder holds short cuts of real clips (one in a subfolder), a blurred copy of one of them, and what a
folder from anyone may hold: a file that is not a video, a symlink to a video outside the folder, a dot file,
a text file. LSE runs on a *random-weight* SyncNet file in the official layout (wiring and labelling are
tested, not LSE values); CPBD is weights-free.
"""
from __future__ import annotations

import json
import os

import numpy as np
import pytest

from talkbase.results import load_results

CUTS = {"clipA": ("latentsync_demo1.mp4", 0, 48), "talk/clipB": ("w2l_input4.mp4", 10, 58)}
NAME = "dubbing-demo"


@pytest.fixture(scope="module")
def folder(tmp_path_factory, videos_dir):
    import cv2
    import torch

    from evalkit.nets.sync_expert import ExpertArch, SyncExpert, save_sync_expert
    from evalkit.nets.syncnet import random_state_dict
    from prep.media import read_audio, read_frames, write_video

    root = tmp_path_factory.mktemp("reffree")
    sub = root / "sub"
    for cid, (src, a, b) in CUTS.items():
        frames = read_frames(videos_dir / src, start=a, stop=b)
        if frames.shape[1] > 1000:  # the 1080x1920 portrait clip at half size: tracking cost, same kind of face
            frames = np.stack([cv2.resize(f, (f.shape[1] // 2, f.shape[0] // 2), interpolation=cv2.INTER_AREA)
                               for f in frames])
        audio = read_audio(videos_dir / src, b)[a * 640:b * 640]
        write_video(sub / f"{cid}.mp4", frames, audio)
        if cid == "clipA":
            blurred = np.stack([cv2.GaussianBlur(f, (0, 0), 2.0) for f in frames])
            write_video(sub / "clipA_blur.mp4", blurred, audio)
            write_video(root / "outside.mp4", frames, audio)
    (sub / "broken.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42 not really a video")
    (sub / "notes.txt").write_text("not a video")
    (sub / ".hidden.mp4").write_bytes(b"ignored")
    os.symlink(root / "outside.mp4", sub / "escape.mp4")  # resolves outside DIR: never followed
    weights = root / "weights"
    weights.mkdir()
    torch.save(random_state_dict(0), weights / "syncnet_v2.model")
    torch.manual_seed(0)
    expert = save_sync_expert(SyncExpert(ExpertArch()), weights / "sync_expert.pt")
    return {"root": root, "sub": sub, "syncnet": weights / "syncnet_v2.model", "expert": expert}


@pytest.fixture(scope="module")
def run(folder):
    from talkbench.cli import main

    out = folder["root"] / "res"
    rc = main(["eval", "--submission", str(folder["sub"]), "--out", str(out), "--benchmark-name", NAME,
               "--syncnet", str(folder["syncnet"]), "--sync-expert", str(folder["expert"]), "--scheduler", "inline",
               "--name", "model-x", "--no-progress"])
    assert rc == 0
    return out


def _per_video(out):
    import pandas as pd

    return pd.read_parquet(out / "per_video.parquet").set_index("clip_id")


def test_every_video_scored_without_a_reference(run, folder):
    from evalkit.free import submission_set_sha256
    from talkbase.fileio import sha256_file

    r = load_results(run / "results.json").doc
    assert r["submission"]["mode"] == "reference-free" and r["benchmark"]["name"] == NAME
    names = ["broken.mp4", "clipA.mp4", "clipA_blur.mp4", "escape.mp4", "talk/clipB.mp4"]
    assert r["benchmark"]["reference_shards_sha256"] == submission_set_sha256(NAME, names)
    assert r["benchmark"]["n_files"] == 5
    assert r["n_videos"] == {"expected": 5, "scored": 3, "skipped": 2, "extra": 0, "resampled": 0,
                             "skip_codes": {"corrupt": 1, "unsafe_path": 1}}
    assert {s["clip_id"]: s["code"] for s in r["skipped"]} == {"broken": "corrupt", "escape": "unsafe_path"}
    assert set(r["metrics"]) == {"lse_d", "lse_c", "sync_inhouse", "cpbd", "blink_rate", "head_motion",
                                 "head_motion_spread", "lipleak"}  # every reference-free metric
    for name in ("head_motion", "lipleak"):  # the motion statistics, from the video's own landmarks
        assert r["metrics"][name]["n_scored"] >= 2 and r["metrics"][name]["value"] is not None, name
    # these 1.9 s videos are below the blink rate's 2 s minimum: skipped per video with that reason
    assert r["metrics"]["blink_rate"]["value"] is None
    assert any(k.startswith("fewer than 2 s of frames with landmarks") and v == 3
               for k, v in r["metrics"]["blink_rate"]["skip_reasons"].items())
    for name in ("lse_d", "lse_c"):
        m = r["metrics"][name]
        assert m["n_scored"] == 3 and np.isfinite(m["value"]) and m["weights_sha256"] == sha256_file(folder["syncnet"])
        assert m["protocol"]["crop"] == "aligned" and "own tracked face" in m["protocol"]["crop_how"]
        assert m["protocol"]["tracking"]["face_config"]["fit_3dmm"] is False
    assert r["metrics"]["sync_inhouse"]["n_scored"] == 3
    c = r["metrics"]["cpbd"]
    assert c["n_scored"] == 3 and 0 < c["value"] < 1 and c["higher_is_better"] and c["stderr"] is not None
    pv = _per_video(run)
    assert list(pv.loc[["clipA", "clipA_blur", "talk/clipB"], "status"]) == ["scored"] * 3
    assert pv.loc["talk/clipB", "path"] == "talk/clipB.mp4" and pv["ref_num_frames"].isna().all()
    assert (pv.loc[["clipA", "clipA_blur", "talk/clipB"], "n_frames"] == 48).all()
    assert (pv.loc[["clipA", "talk/clipB"], "n_face_frames"] > 40).all()  # the tracker found the faces
    assert (pv.loc[["clipA", "talk/clipB"], "lse_windows"] == 48 - 5).all()
    assert pv.loc[["clipA", "talk/clipB"], "lse_c"].notna().all()
    # a blurred copy is less sharp, frame for frame of the same face track
    assert pv.loc["clipA_blur", "cpbd"] < 0.5 * pv.loc["clipA", "cpbd"]
    assert pv.loc["escape", "status"] == "skipped" and pv.loc["broken", "status"] == "skipped"


def test_same_folder_same_bytes_on_a_dask_cluster(run, folder):
    """A 2-worker LocalCluster gives the inline run's per-video values and the same benchmark key."""
    from evalkit.free import evaluate_reference_free

    r = evaluate_reference_free(folder["sub"], folder["root"] / "res-dask", NAME, metrics=["cpbd"], n_workers=2,
                                submission_meta={"name": "model-x"})
    inline = load_results(run / "results.json").doc
    assert r["benchmark"]["reference_shards_sha256"] == inline["benchmark"]["reference_shards_sha256"]
    assert r["metrics"]["cpbd"]["value"] == inline["metrics"]["cpbd"]["value"]
    assert r["metrics"]["cpbd"]["protocol"] == inline["metrics"]["cpbd"]["protocol"]
    a, b = _per_video(run)["cpbd"], _per_video(folder["root"] / "res-dask")["cpbd"]
    assert a.equals(b)


def test_cli_refuses_what_it_cannot_do(folder, capsys):
    from talkbench.cli import main

    base = ["eval", "--submission", str(folder["sub"]), "--out", str(folder["root"] / "refused"), "--no-progress",
            "--scheduler", "inline"]
    assert main(base + ["--benchmark-name", NAME, "--mode", "cross"]) == 2
    assert "needs --reference" in capsys.readouterr().err
    assert main(base + ["--benchmark-name", NAME, "--metrics", "psnr"]) == 2  # needs a reference
    assert "reference-free" in capsys.readouterr().err
    absent = folder["root"] / "nothing" / "syncnet_v2.model"
    assert main(base + ["--benchmark-name", NAME, "--metrics", "lse_c", "--syncnet", str(absent)]) == 2
    assert "syncnet_v2.model" in capsys.readouterr().err  # asked for explicitly: fail fast, nothing written
    assert not (folder["root"] / "refused" / "results.json").exists()


def test_the_bare_form_names_the_set_after_its_folder(folder):
    """``talkbench eval --submission DIR --out RES``, nothing else: the benchmark is named after DIR."""
    from talkbench.cli import main

    out = folder["root"] / "bare"
    assert main(["eval", "--submission", str(folder["sub"]), "--out", str(out), "--metrics", "cpbd",
                 "--scheduler", "inline", "--no-progress"]) == 0
    r = load_results(out / "results.json").doc
    assert r["benchmark"]["name"] == folder["sub"].name and r["submission"]["mode"] == "reference-free"


def test_discovery_rules(tmp_path):
    from evalkit.config import SubmissionLimits
    from evalkit.submission import discover_videos

    (tmp_path / "d").mkdir()
    for rel in ("a.mp4", "a.mov", "d/x.MKV", ".h.mp4", "d/y.txt"):
        (tmp_path / rel).write_bytes(b"junk")
    os.symlink(tmp_path / "d", tmp_path / "linked")  # a symlinked folder is not walked
    accepted, skipped, names = discover_videos(tmp_path)
    assert names == ["a.mov", "a.mp4", "d/x.MKV"] and not accepted
    codes = sorted((s["path"], s["code"]) for s in skipped)
    assert codes == [("a.mov", "ambiguous_name"), ("a.mp4", "ambiguous_name"), ("d/x.MKV", "corrupt")]
    with pytest.raises(ValueError, match="max_files"):
        discover_videos(tmp_path, SubmissionLimits(max_files=2))
    with pytest.raises(NotADirectoryError):
        discover_videos(tmp_path / "absent")


def test_benchmark_key_is_the_named_set_of_files():
    from evalkit.free import submission_set_sha256

    k = submission_set_sha256("set", ["b.mp4", "a.mp4"])
    assert k == submission_set_sha256("set", ["a.mp4", "b.mp4"])  # order of discovery does not matter
    assert k != submission_set_sha256("set", ["a.mp4"]) and k != submission_set_sha256("other", ["a.mp4", "b.mp4"])


def test_leaderboard_gives_a_reference_free_benchmark_its_own_table(run, tmp_path):
    """Two models over the same named file set are ranked in one table; another file set is another table."""
    import shutil

    from leaderboard.registry import collect
    from leaderboard.tables import build_benchmarks

    for who, cpbd in (("model-x", None), ("model-y", 0.01)):
        d = tmp_path / "results" / who
        shutil.copytree(run, d)
        doc = json.loads((d / "results.json").read_text())
        doc["submission"]["name"] = who
        if cpbd is not None:
            doc["metrics"]["cpbd"]["value"] = cpbd
        (d / "results.json").write_text(json.dumps(doc))
    other = tmp_path / "results" / "other-set"
    shutil.copytree(run, other)
    doc = json.loads((other / "results.json").read_text())
    doc["benchmark"]["reference_shards_sha256"] = doc["benchmark"]["submission_set_sha256"] = "0" * 64
    (other / "results.json").write_text(json.dumps(doc))
    benches = build_benchmarks(collect(tmp_path / "results"))
    assert len(benches) == 2 and {b.mode for b in benches} == {"reference-free"}
    main = next(b for b in benches if b.reference_shards_sha256 != "0" * 64)
    assert main.name == NAME and [r.sub.name for r in main.ranked.rows] == ["model-x", "model-y"]
    assert "cpbd" in {c.key for c in main.columns}


def test_syncnet_pipeline_crop_without_reference(folder, videos_dir, tmp_path):
    """syncnet_python's tracked crop (evalkit.syncnet_crop) on a clip long enough for its 100-frame track."""
    from evalkit.free import evaluate_reference_free
    from prep.media import read_audio, read_frames, write_video

    src = videos_dir / "w2l_input3.mp4"
    write_video(tmp_path / "sub" / "long.mp4", read_frames(src, stop=110), read_audio(src, 110))
    r = evaluate_reference_free(tmp_path / "sub", tmp_path / "res", "pipeline-set", metrics=["lse_d", "lse_c"],
                                syncnet_path=folder["syncnet"], lse_crop="syncnet-pipeline", scheduler="inline")
    for name in ("lse_d", "lse_c"):
        m = r["metrics"][name]
        assert m["n_scored"] == 1 and np.isfinite(m["value"]) and m["protocol"]["crop"] == "syncnet-pipeline"
    assert _per_video(tmp_path / "res").loc["long", "lse_windows"] > 90  # the track's frames, minus 5
