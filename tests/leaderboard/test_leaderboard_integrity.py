"""No unearned rank: incomplete submissions, unverified weights, tampered numbers and oversized per-video files."""
from __future__ import annotations

import csv
import json

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from lb_results import SYNCNET, finish, results_doc, sha, write_per_video, write_results

from leaderboard import build_leaderboard

BASE = {"psnr": (29.5, 0.3), "ssim": (0.88, 0.004), "lse_d": (7.1, 0.08), "lse_c": (6.8, 0.1)}


def _csv(site):
    with open(site / "leaderboard.csv", newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def _ranked_names(site) -> list[str]:
    return [r["submission"] for r in _csv(site) if r["table"] == "ranked"]


def _incomplete(doc: dict, scored: int, missing: list[str]) -> dict:
    doc["n_videos"] = {"expected": scored + len(missing), "scored": scored, "skipped": len(missing)}
    doc["skipped"] = [{"clip_id": c, "code": "missing", "reason": "no submission file", "path": f"{c}.mp4"}
                      for c in missing]
    for m in doc["metrics"].values():
        m["n_scored"] = min(m["n_scored"], scored)
    return doc


def test_a_submission_missing_a_clip_is_never_listed_above_a_complete_one(tmp_path):
    root = tmp_path / "r"
    write_results(root, "gt", results_doc("GT", "ground-truth", {**BASE, "psnr": (60.0, 0.0)}))
    write_results(root, "honest", results_doc("Honest", "model", BASE))
    # the ground truth re-submitted as a model with its hardest clip left out: best on every metric
    cheat = results_doc("Cheat", "model", {"psnr": (45.0, 0.1), "ssim": (0.99, 0.0), "lse_d": (6.0, 0.1),
                                           "lse_c": (8.0, 0.1)})
    write_results(root, "cheat", _incomplete(cheat, 11, ["spk1/hard"]))
    s = build_leaderboard(root, tmp_path / "site", plots=False)
    assert _ranked_names(tmp_path / "site") == ["GT", "Honest"]
    rows = {r["submission"]: r for r in _csv(tmp_path / "site")}
    assert rows["Cheat"]["table"] != "ranked" and rows["Cheat"]["psnr_rank"] == ""
    md = (tmp_path / "site/leaderboard.md").read_text()
    assert "incomplete" in md and "11 of 12 clips scored" in md and "spk1/hard (missing)" in md
    assert md.index("| Honest |") < md.index("| Cheat |")
    assert s["ranked"] == 2


def test_a_subset_evaluation_is_incomplete_even_if_it_scored_all_of_its_clips(tmp_path):
    root = tmp_path / "r"
    write_results(root, "gt", results_doc("GT", "ground-truth", BASE))
    write_results(root, "full", results_doc("Full", "model", BASE))
    sub = results_doc("Subset", "model", {**BASE, "psnr": (40.0, 0.1)})
    sub["n_videos"] = {"expected": 3, "scored": 3, "skipped": 0}
    for m in sub["metrics"].values():
        m["n_scored"] = 3
    write_results(root, "subset", sub)
    build_leaderboard(root, tmp_path / "site", plots=False)
    assert _ranked_names(tmp_path / "site") == ["GT", "Full"]
    assert "evaluated on 3 clips only" in (tmp_path / "site/leaderboard.md").read_text()


def test_unverified_weights_are_never_ranked_with_verified_ones(tmp_path):
    root = tmp_path / "r"
    write_results(root, "gt", results_doc("GT", "ground-truth", BASE))
    write_results(root, "a", results_doc("A", "model", BASE))
    write_results(root, "b", results_doc("B", "model", {**BASE, "lse_c": (7.0, 0.1)}))
    doc = results_doc("RandomSyncNet", "model", {**BASE, "lse_c": (12.0, 0.1)}, syncnet=sha("random file"))
    for k in ("lse_d", "lse_c"):
        doc["metrics"][k]["calibrated"] = False
        doc["metrics"][k]["weights_status"] = "unverified"
    write_results(root, "rand", finish(doc))
    build_leaderboard(root, tmp_path / "site", plots=False)
    assert "RandomSyncNet" not in _ranked_names(tmp_path / "site")
    md = (tmp_path / "site/leaderboard.md").read_text()
    assert "LSE-C uncalibrated (benchmark: calibrated)" in md


def _tampered(value_key: str = "psnr", value: float = -1.7e308, strip_range: bool = False,
              valid_range=(0.0, None)) -> dict:
    doc = results_doc("Tampered", "model", BASE)
    m = doc["metrics"][value_key]
    m["valid_range"] = list(valid_range)
    m["protocol"]["valid_range"] = list(valid_range)
    m["value"] = value
    if strip_range:  # a careful tamperer also removes the range and recomputes the hash
        del m["valid_range"], m["protocol"]["valid_range"]
    return finish(doc)


def test_one_tampered_results_file_is_rejected_with_its_reason_and_the_rest_builds(tmp_path):
    from talkbench.cli import main

    root = tmp_path / "r"
    write_results(root, "gt", results_doc("GT", "ground-truth", BASE))
    write_results(root, "ok", results_doc("Fine", "model", BASE))
    write_results(root, "bad1", _tampered(value=-5.0))
    write_results(root, "bad2", _tampered(strip_range=True))  # the issue's -1.7e308, range removed
    write_results(root, "bad4", _tampered())
    write_results(root, "bad3", _tampered("ssim", 1.7, valid_range=(-1.0, 1.0)))
    rc = main(["leaderboard", str(root), "--out", str(tmp_path / "site")])
    assert rc == 0 and (tmp_path / "site/index.html").is_file()
    s = build_leaderboard(root, tmp_path / "site", plots=True)
    reasons = {r["path"].split("/")[0]: r["reason"] for r in s["rejected"]}
    assert set(reasons) == {"bad1", "bad2", "bad3", "bad4"}
    assert "-5.0 outside the metric's range [0.0, None]" in reasons["bad1"]
    assert "-1.7e+308 is beyond any metric's range" in reasons["bad2"] == reasons["bad4"]
    assert "1.7 outside the metric's range [-1.0, 1.0]" in reasons["bad3"]
    assert _ranked_names(tmp_path / "site") == ["GT", "Fine"]


def test_an_oversized_per_video_table_is_ignored_without_being_read(tmp_path, monkeypatch):
    import leaderboard.registry as registry

    root = tmp_path / "r"
    folder = root / "big"
    folder.mkdir(parents=True)
    n = 50_000
    t = pa.table({"clip_id": pa.array(["c"] * n), "psnr": pa.array(np.full(n, 30.0))})
    pq.write_table(t, folder / "per_video.parquet")  # ~1 kB on disk: run-length encoded
    import hashlib

    pv = {"path": "per_video.parquet", "sha256": hashlib.sha256((folder / "per_video.parquet").read_bytes()).hexdigest()}
    write_results(root, "big", results_doc("Big", "model", BASE, per_video=pv))
    monkeypatch.setattr(registry, "MAX_PER_VIDEO_ROWS", 10_000)
    read = []
    monkeypatch.setattr(pq, "read_table", lambda *a, **k: read.append(a) or pa.table({}))
    s = build_leaderboard(root, tmp_path / "site", plots=True)
    assert any("per_video.parquet declares 50000 rows" in w for w in s["warnings"])
    assert read == []  # the rows were never decoded
    small = tmp_path / "r2"
    (small / "s").mkdir(parents=True)
    write_results(small, "s", results_doc("Small", "model", BASE,
                                           per_video=write_per_video(small / "s", {"psnr": np.full(12, 30.0)})))
    monkeypatch.undo()
    s2 = build_leaderboard(small, tmp_path / "site2", plots=True)
    assert not any("per_video" in w for w in s2["warnings"])


def test_one_line_per_missing_weight_not_one_per_row(tmp_path):
    root = tmp_path / "r"
    for name in ("A", "B", "C", "D"):
        write_results(root, name, results_doc(name, "model", {**BASE, "lse_d": (None, None), "lse_c": (None, None)}))
    build_leaderboard(root, tmp_path / "site", plots=False)
    md = (tmp_path / "site/leaderboard.md").read_text()
    notes = [line for line in md.splitlines() if "official SyncNet weights absent" in line]
    assert notes == ["- LSE-D, LSE-C: official SyncNet weights absent (4 rows)"]
    html = (tmp_path / "site/index.html").read_text()
    assert html.count("official SyncNet weights absent") == 1 + 8  # the note, and each cell's tooltip
    assert json.loads(json.dumps(SYNCNET))  # fixture sanity
