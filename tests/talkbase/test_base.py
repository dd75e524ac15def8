"""talkbase, the ground floor: weights registry and checked loader, results format, executor, escaping, files."""
from __future__ import annotations

import copy
import json
import os

import numpy as np
import pytest
import torch

from talkbase import escape, executor, fileio, paths, results, weights


# ---------------------------------------------------------------- weights

def test_every_model_is_in_one_list_with_a_source():
    names = [m.name for m in weights.MODELS]
    assert len(names) == len(set(names)) and set(names) == set(weights.REGISTRY)
    assert {"dlib", "3ddfa", "syncnet", "s3fd", "inception", "fan", "alexnet", "vgg16", "lpips", "arcface",
            "i3d"} <= set(names)
    for m in weights.MODELS:
        assert m.files and m.env and m.source, m.name
        assert set(m.official_sha256) <= set(m.files) and set(m.urls) <= set(m.files), m.name


def test_resolve_order_and_missing_message(tmp_path, monkeypatch):
    monkeypatch.setenv("TALKBENCH_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("TALKBENCH_SYNCNET", raising=False)
    with pytest.raises(weights.WeightsNotFound) as e:
        weights.resolve("syncnet")
    assert "TALKBENCH_SYNCNET" in str(e.value) and "robots.ox.ac.uk" in str(e.value)
    cached = tmp_path / "cache" / "models" / "syncnet" / "syncnet_v2.model"
    cached.parent.mkdir(parents=True)
    cached.write_bytes(b"cache")
    assert weights.resolve("syncnet") == cached
    env = tmp_path / "env.model"
    env.write_bytes(b"env")
    monkeypatch.setenv("TALKBENCH_SYNCNET", str(env))
    assert weights.resolve("syncnet") == env  # env var before cache
    explicit = tmp_path / "explicit.model"
    explicit.write_bytes(b"x")
    assert weights.resolve("syncnet", path=explicit) == explicit  # explicit path first


def test_torch_hub_insightface_and_package_copies_are_candidates(tmp_path, monkeypatch):
    monkeypatch.setenv("TALKBENCH_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    for var in ("TALKBENCH_ALEXNET", "TALKBENCH_ARCFACE", "TALKBENCH_LPIPS_DIR"):
        monkeypatch.delenv(var, raising=False)
    hub = tmp_path / "torch" / "hub" / "checkpoints" / "alexnet-owt-7be5be79.pth"
    hub.parent.mkdir(parents=True)
    hub.write_bytes(b"hub")
    assert weights.resolve("alexnet") == hub  # torchvision's own cache
    cached = tmp_path / "cache" / "models" / "alexnet" / "alexnet-owt-7be5be79.pth"
    cached.parent.mkdir(parents=True)
    cached.write_bytes(b"cache")
    assert weights.resolve("alexnet") == hub  # the hub copy is looked at before the cache dir
    ins = tmp_path / "home" / ".insightface" / "models" / "buffalo_l" / "w600k_r50.onnx"
    ins.parent.mkdir(parents=True)
    ins.write_bytes(b"onnx")
    assert weights.resolve("arcface") == ins and not weights.find("arcface").official  # nothing pinned
    heads = weights.find("lpips", filename="alex.pth")  # torchmetrics ships the lpips v0.1 heads
    assert heads.official and heads.path.endswith("lpips_models/alex.pth")
    assert weights.is_official("alexnet", "alexnet-owt-7be5be79.pth", "7be5be79" + "0" * 56)


def test_official_hash_decides_official_and_strict_models_refuse_others(tmp_path):
    f = tmp_path / "pt_inception-2015-12-05-6726825d.pth"
    f.write_bytes(b"not the official file")
    info = weights.find("inception", f)
    assert info.sha256 == fileio.sha256_file(f) and not info.official and info.status == "unverified"
    assert weights.is_official("inception", f.name, "6726825d" + "0" * 56)
    bad = tmp_path / "bfm"
    bad.mkdir()
    for name in weights.spec("3ddfa").files:
        (bad / name).write_bytes(b"x")
    with pytest.raises(weights.WeightsMismatch):
        weights.resolve("3ddfa", "u_shp.npy", bad)  # strict: a wrong basis is refused, not used


def test_torch_loader_is_weights_only_and_unwraps(tmp_path, monkeypatch):
    monkeypatch.setenv("TALKBENCH_CACHE", str(tmp_path / "cache"))
    sd = {"a.weight": torch.ones(2), "b": torch.zeros(1)}
    p = tmp_path / "w.pth"
    torch.save({"state_dict": {f"module.{k}": v for k, v in sd.items()}}, p)
    state, info = weights.load_torch_state("s3fd", p)
    assert set(state) == set(sd) and info.path == str(p) and len(info.sha256) == 64

    class Boom:
        def __reduce__(self):
            return (os.system, ("touch " + str(tmp_path / "pwned"),))

    torch.save({"x": Boom()}, tmp_path / "evil.pth")
    with pytest.raises(weights.WeightsUnreadable, match="weights-only"):
        weights.load_torch_state("s3fd", tmp_path / "evil.pth")
    assert not (tmp_path / "pwned").exists()
    (tmp_path / "text.pth").write_text("hello")
    with pytest.raises(weights.WeightsUnreadable):
        weights.load_torch_state("s3fd", tmp_path / "text.pth")
    net = torch.nn.Linear(2, 1)
    with pytest.raises(weights.WeightsUnreadable, match="missing"):
        weights.check_layout(net, {"weight": torch.zeros(1, 2)}, "linear")
    with pytest.raises(weights.WeightsUnreadable, match="shape"):
        weights.check_layout(net, {"weight": torch.zeros(2, 2), "bias": torch.zeros(1)}, "linear")


def test_dlib_models_come_from_the_wheel_without_importing_it():
    p = weights.dlib_model("shape_predictor_68_face_landmarks.dat")
    assert p.is_file() and p.parent.name == "models"


# ---------------------------------------------------------------- results format

def _doc():
    protocol = {"version": "m-1", "crop": "aligned"}
    metrics = {"psnr": {"value": 30.0, "stderr": 0.5, "ci95": [29.0, 31.0], "higher_is_better": True, "label": "PSNR",
                        "unit": "dB", "version": "m-1", "n_scored": 2, "n_skipped": 0, "protocol": protocol,
                        "weights_sha256": None, "calibrated": True, "skipped_reason": None, "decimals": 2,
                        "valid_range": [0.0, None]},
               "newmetric": {"value": None, "stderr": None, "higher_is_better": False, "version": "n-1",
                             "protocol": {"version": "n-1"}, "skipped_reason": "weights absent"}}
    return {"results_schema": results.RESULTS_SCHEMA, "benchmark": {
        "name": "b", "reference_shards_sha256": "a" * 64, "protocol_version": "evalkit-2.0",
        "protocol_hash": results.protocol_hash({k: m["protocol"] for k, m in metrics.items()})},
        "submission": {"name": "x", "kind": "model", "mode": "reconstruction", "date": "2026-11-30"},
        "metrics": metrics, "metric_order": ["psnr", "newmetric"],
        "n_videos": {"expected": 2, "scored": 2, "skipped": 0}}


def test_results_parse_is_typed_and_self_describing():
    r = results.parse_results(_doc())
    m = r.metrics["psnr"]
    assert (m.label, m.higher_is_better, m.ci95, m.extra["decimals"]) == ("PSNR", True, (29.0, 31.0), 2)
    assert r.metrics["newmetric"].label == "newmetric" and not r.metrics["newmetric"].computed
    assert r.metric_order == ("psnr", "newmetric") and r.n_scored == 2 and r.meta["kind"] == "model"
    text = results.dumps(_doc())
    assert results.read_results_bytes(text.encode()).protocol_hash == r.protocol_hash


@pytest.mark.parametrize("mutate", [
    lambda d: d["metrics"]["psnr"].update(value=float("nan")),
    lambda d: d["metrics"]["psnr"].update(value=-1.7e308),  # outside the metric's own valid range
    lambda d: d["metrics"]["psnr"].update(ci95=[31.0, 29.0]),
    lambda d: d["metrics"]["psnr"].update(protocol={"version": "m-1", "crop": "full"}),  # hash no longer matches
    lambda d: d["metrics"]["psnr"].update(n_scored=3),
    lambda d: d["metrics"]["psnr"].update(higher_is_better=None),
    lambda d: d.update(metric_order=["psnr"]),
    lambda d: d["n_videos"].update(skipped=1),
    lambda d: d.update(per_video={"path": "../escape.parquet", "sha256": "b" * 64}),
    lambda d: d["submission"].update(kind="winner"),
    lambda d: d["metrics"].update({"Bad Name": {}}),
])
def test_results_parse_rejects(mutate):
    d = copy.deepcopy(_doc())
    mutate(d)
    with pytest.raises(results.ResultsError):
        results.parse_results(d)


def test_results_bytes_refuse_nonstandard_json_and_size(tmp_path):
    text = json.dumps(_doc()).replace('"stderr": 0.5', '"stderr": Infinity')
    with pytest.raises(results.ResultsError, match="constant"):
        results.read_results_bytes(text.encode())
    with pytest.raises(results.ResultsError, match="larger"):
        results.read_results_bytes(b" " * (results.MAX_RESULTS_BYTES + 1))


# ---------------------------------------------------------------- executor

def _square(x):
    if x == 3:
        raise ValueError("three")
    return x * x


@pytest.mark.parametrize("scheduler", ["inline", None])
def test_executor_runs_in_order_and_reports_errors(scheduler):
    got = []
    with executor.Executor(scheduler, n_workers=2, n_tasks=6) as ex:
        ex.map_ordered(_square, list(range(6)), lambda i, v: got.append((i, v)),
                       on_error=lambda i, e: f"error: {e}")
        if scheduler is None:  # a LocalCluster on loopback only
            assert ex.dashboard_link.startswith("http://127.0.0.1:")
            assert all(a.startswith("tcp://127.0.0.1:") for a in ex.client.scheduler_info()["workers"])
    assert got == [(0, 0), (1, 1), (2, 4), (3, "error: three"), (4, 16), (5, 25)]


def test_inline_futures_resolve_futures_among_arguments():
    ex = executor.Executor("inline")
    a = ex.submit(_square, 2)
    b = ex.submit(sum, [a, ex.submit(_square, 4)])
    assert b.result() == 20
    with pytest.raises(ValueError):
        ex.submit(_square, 3).result()


# ---------------------------------------------------------------- text, paths, files

def test_escape_removes_bidi_and_zero_width_and_neutralises_markup():
    spoof = "evil\u202egpj.exe\u200b"
    assert escape.clean_text(spoof) == "evilgpj.exe"
    assert escape.h("<b>x</b>") == "&lt;b&gt;x&lt;/b&gt;" and escape.md("a|b*c") == "a\\|b\\*c"
    assert escape.safe_url("javascript:alert(1)") is None and escape.safe_url("https://x.org/\u202e") is None
    assert escape.csv_text("=1+1") == "'=1+1"


@pytest.mark.parametrize("name", ["../x", "/abs", "a\\b", "a//b", "./a", "", "a/\x00"])
def test_unsafe_ids_are_refused(name, tmp_path):
    assert paths.unsafe_relative_id(name) and paths.join_inside(tmp_path, name) is None


def test_join_inside_refuses_symlink_escapes(tmp_path):
    (tmp_path / "root").mkdir()
    os.symlink(tmp_path, tmp_path / "root" / "up")
    assert paths.join_inside(tmp_path / "root", "ok/clip") is not None
    assert paths.join_inside(tmp_path / "root", "up/secret") is None


def test_atomic_writes_keep_umask_permissions_and_leave_no_temp(tmp_path):
    p = tmp_path / "sub" / "f.json"
    fileio.atomic_write_json(p, {"b": 1, "a": np.float32(0.5)})
    assert json.loads(p.read_text()) == {"a": "0.5", "b": 1}
    assert p.stat().st_mode & 0o777 == fileio.FILE_MODE
    assert [x.name for x in p.parent.iterdir()] == ["f.json"]
    assert fileio.sha256_file(p) == fileio.sha256_bytes(p.read_bytes())


def test_keep_freed_memory_on_glibc():
    """Training's allocator setting: applied on glibc (this Linux), idempotent, and memory still works."""
    import platform

    from talkbase.threads import keep_freed_memory

    if platform.libc_ver()[0] != "glibc":
        pytest.skip("not glibc: keep_freed_memory is a no-op there")
    assert keep_freed_memory() is True
    assert keep_freed_memory() is True
    big = np.ones(64 << 20, np.uint8)  # above glibc's default mmap threshold
    assert int(big.sum()) == 64 << 20
