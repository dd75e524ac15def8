"""Leaderboard: validation, comparability, ranking, escaping of untrusted text, determinism, plots, CLI."""
from __future__ import annotations

import csv
import hashlib
import html.parser
import io
import json
import os
import re
import shutil
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from leaderboard import build_leaderboard
from leaderboard.escape import md, safe_url
from leaderboard.registry import RESULTS_SCHEMA, ResultsError, collect, protocol_hash
from leaderboard.tables import Row, rank_rows


def sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


REF_A, REF_B = sha("reference shards A"), sha("reference shards B")
INCEPTION, RANDOM_INCEPTION = sha("pt_inception"), sha("random inception")
SYNCNET, SYNCNET_OTHER = sha("syncnet_v2"), sha("another syncnet")
EVIL_NAME = "<script>document.body.setAttribute('data-pwned','1')</script>|evil"
EVIL_NOTES = "notes with <img src=x onerror=\"document.body.setAttribute('data-pwned','2')\"> and `code` | pipe\nnewline"

HIGHER = {"psnr": True, "ssim": True, "lmd_mouth": False, "lmd_face": False, "fid": False, "lse_d": False,
          "lse_c": True, "csim": True, "sync_inhouse": True}


def metric(key, value, stderr=None, *, weights=None, calibrated=True, reason=None, n=12):
    return {"value": value, "stderr": stderr, "higher_is_better": HIGHER[key], "n_scored": n if value is not None else 0,
            "n_skipped": 0, "unit": "", "version": f"{key}-1", "protocol": {"version": f"{key}-1", "crop_size": 256},
            "weights_sha256": weights,
            "calibrated": calibrated, "skipped_reason": reason}


def results_doc(name, kind, values: dict, *, ref=REF_A, bench="lrs2-test", version="evalkit-1.0",
                fid_weights=INCEPTION, fid_calibrated=True, syncnet=SYNCNET, link="", notes="", model="",
                date="2026-11-01", mode="reconstruction", per_video=None, skipped=0):
    metrics = {}
    for key, v in values.items():
        value, se = (v if isinstance(v, tuple) else (v, None))
        weights = fid_weights if key == "fid" else syncnet if key in ("lse_d", "lse_c") else None
        cal = fid_calibrated if key == "fid" else True
        reason = None if value is not None else (
            "official SyncNet weights absent" if key.startswith("lse") else "identical to the reference")
        metrics[key] = metric(key, value, se, weights=weights if value is not None else None, calibrated=cal,
                              reason=reason)
    doc = {"results_schema": RESULTS_SCHEMA, "talkbench_version": "0.1.0", "created": "2026-11-23T00:00:00Z",
           "benchmark": {"name": bench, "reference_shards_sha256": ref, "protocol_version": version,
                         "protocol_hash": ""},
           "submission": {"name": name, "model": model, "date": date, "link": link, "notes": notes,
                          "kind": kind, "mode": mode},
           "config": {"device": "cpu"}, "metrics": metrics, "skipped": [],
           "n_videos": {"expected": 12, "scored": 12 - skipped, "skipped": skipped}}
    for key, m in metrics.items():  # protocol dicts change with the protocol version
        m["protocol"]["release"] = version
    doc["benchmark"]["protocol_hash"] = protocol_hash({k: m["protocol"] for k, m in metrics.items()})
    if per_video is not None:
        doc["per_video"] = per_video
    return doc


def write_results(root: Path, rel: str, doc: dict, created_at: float | None = None) -> Path:
    p = root / rel / "results.json"
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text(json.dumps(doc, indent=1))
    if created_at is not None:
        os.utime(p, (created_at, created_at))
    return p


def write_per_video(folder: Path, values: dict[str, np.ndarray]) -> dict:
    n = len(next(iter(values.values())))
    t = pa.table({"clip_id": [f"clip{i:03d}" for i in range(n)], **{k: pa.array(v) for k, v in values.items()}})
    p = folder / "per_video.parquet"
    pq.write_table(t, p)
    return {"path": "per_video.parquet", "sha256": hashlib.sha256(p.read_bytes()).hexdigest()}


def make_results_root(root: Path, order_seed: int = 0) -> Path:
    """A results root with GT, baselines, models, an injected name, a mismatched protocol, other SyncNet
    weights, a broken file and a second benchmark with uncalibrated FID. ``order_seed`` changes the order
    (and mtimes) in which files are written, which must not change the output."""
    rng = np.random.default_rng(7)
    base = {"psnr": (29.5, 0.3), "ssim": (0.8812, 0.004), "lmd_mouth": (2.31, 0.05), "lmd_face": (1.9, 0.04),
            "fid": (14.2, 0.0), "lse_d": (7.12, 0.08), "lse_c": (6.85, 0.1), "csim": (0.912, 0.003)}
    entries = [
        ("gt", results_doc("Ground truth", "ground-truth",
                           {**base, "psnr": (None, None), "ssim": (1.0, 0.0), "lmd_mouth": (0.0, 0.0), "fid": (0.0, 0.0),
                            "lse_d": (6.71, 0.07), "lse_c": (7.95, 0.1), "csim": (1.0, 0.0)})),
        ("baselines/wav2lip", results_doc("Wav2Lip", "baseline", base, model="wav2lip_gan",
                                          link="https://github.com/Rudrabha/Wav2Lip")),
        ("baselines/copy", results_doc("Copy-first-frame", "baseline",
                                       {**base, "psnr": (24.1, 0.5), "lse_c": (1.2, 0.2), "lse_d": (11.9, 0.1),
                                        "fid": (40.3, 0.0)})),
        ("teams/diff/run1", results_doc("DiffLip", "model",
                                        {**base, "psnr": (31.25, 0.28), "ssim": (0.9011, 0.003), "fid": (11.7, 0.0),
                                         "lse_c": (7.41, 0.09), "lse_d": (6.95, 0.07), "csim": (0.93, 0.002)},
                                        model="refmodel-tiny", link="https://example.org/difflip?a=1&b=(2)",
                                        notes="trained 3 days")),
        ("teams/evil/run", results_doc(EVIL_NAME, "model", {**base, "psnr": (30.0, 0.3)}, model="x|y",
                                       link="javascript:alert(1)", notes=EVIL_NOTES)),
        ("teams/formula", results_doc("=HYPERLINK(\"http://x\")", "model", {**base, "psnr": (29.5, 0.3)},
                                      notes="tied PSNR with Wav2Lip")),
        ("teams/nosync", results_doc("NoSyncWeights", "model",
                                     {**base, "lse_d": (None, None), "lse_c": (None, None)}, skipped=2)),
        ("teams/old", results_doc("OldProtocol", "model", {**base, "psnr": (35.0, 0.2)}, version="evalkit-0.9")),
        ("teams/othersync", results_doc("OtherSyncNet", "model", {**base, "lse_c": (9.9, 0.1)},
                                        syncnet=SYNCNET_OTHER)),
        ("bench_b/gt", results_doc("GT-B", "ground-truth", {"ssim": (1.0, 0.0), "fid": (0.0, 0.0), "lse_c": (4.0, 0.2),
                                                     "lse_d": (8.0, 0.1)}, ref=REF_B,
                                   bench="demo-synthetic", fid_weights=RANDOM_INCEPTION, fid_calibrated=False)),
        ("bench_b/m1", results_doc("Model-B1", "model", {"ssim": (0.71, 0.01), "fid": (80.5, 0.0),
                                                         "lse_c": (3.1, 0.2), "lse_d": (9.0, 0.1)},
                                   ref=REF_B, bench="demo-synthetic", fid_weights=RANDOM_INCEPTION,
                                   fid_calibrated=False)),
        ("bench_b/m2", results_doc("Model-B2", "model", {"ssim": (0.74, 0.01), "fid": (70.1, 0.0),
                                                         "lse_c": (3.5, 0.2), "lse_d": (8.7, 0.1)},
                                   ref=REF_B, bench="demo-synthetic", fid_weights=RANDOM_INCEPTION,
                                   fid_calibrated=False)),
    ]
    order = list(range(len(entries)))
    if order_seed:
        np.random.default_rng(order_seed).shuffle(order)
    for i, k in enumerate(order):
        rel, doc = entries[k]
        if rel == "teams/diff/run1":
            folder = root / rel
            folder.mkdir(parents=True, exist_ok=True)
            doc["per_video"] = write_per_video(folder, {
                "psnr": rng.normal(31.25, 1.0, 12), "ssim": rng.normal(0.90, 0.01, 12),
                "lmd_mouth": rng.normal(2.3, 0.2, 12), "lse_c": rng.normal(7.4, 0.3, 12),
                "lse_d": rng.normal(6.95, 0.2, 12), "csim": rng.normal(0.93, 0.01, 12)})
        write_results(root, rel, doc, created_at=1_700_000_000 + (i if not order_seed else -i) * 1000)
    broken = root / "teams/broken/results.json"
    broken.parent.mkdir(parents=True, exist_ok=True)
    broken.write_text(json.dumps({"results_schema": RESULTS_SCHEMA, "benchmark": {"name": "x"}}))
    return root


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    root = make_results_root(tmp_path_factory.mktemp("results"))
    out = tmp_path_factory.mktemp("site")
    summary = build_leaderboard(root, out)
    return root, out, summary


def _section(text: str, start: str, end: str = "\n## ") -> str:
    i = text.index(start)
    j = text.find(end, i + len(start))
    return text[i:] if j < 0 else text[i:j]


def _md_cells(line: str) -> list[str]:
    """Split a Markdown table row on unescaped pipes."""
    return [c.strip() for c in re.split(r"(?<!\\)\|", line.strip())[1:-1]]


def _csv_rows(out: Path) -> list[dict]:
    return list(csv.DictReader(io.StringIO((out / "leaderboard.csv").read_text())))


# ---------------------------------------------------------------- grouping, ranking, comparability

def test_summary_counts(site):
    _, out, s = site
    assert s["benchmarks"] == 2
    assert s["accepted"] == 12 and len(s["rejected"]) == 1
    assert s["rejected"][0]["path"] == "teams/broken/results.json"
    assert s["rejected"][0]["reason"] == "results.submission: missing"
    assert s["not_ranked"] == 2  # OldProtocol and OtherSyncNet
    assert s["ranked"] == 10
    for k in ("markdown", "csv", "html"):
        assert Path(s[k]).is_file() and Path(s[k]).parent == out
    assert len(s["plots"]) == 4  # distributions + sync-vs-fid for each benchmark


def test_mismatched_protocol_and_weights_are_not_ranked(site):
    _, out, _ = site
    rows = {r["submission"]: r for r in _csv_rows(out)}
    assert rows["OldProtocol"]["table"] == "not-ranked"
    assert "protocol version evalkit-0.9 (benchmark: evalkit-1.0)" in rows["OldProtocol"]["not_ranked_reason"]
    assert rows["OldProtocol"]["psnr_rank"] == ""  # 35.0 dB would have been best: it must not be ranked
    assert rows["OtherSyncNet"]["table"] == "not-ranked"
    assert f"LSE-C weights {SYNCNET_OTHER[:12]}" in rows["OtherSyncNet"]["not_ranked_reason"]
    assert rows["OtherSyncNet"]["lse_c_rank"] == ""
    text = (out / "leaderboard.md").read_text()
    lrs2 = _section(text, "## lrs2-test · reconstruction")
    ranked = _section(lrs2, "### Ranked", "\n### ")
    assert "OldProtocol" not in ranked and "OtherSyncNet" not in ranked
    unranked = lrs2[lrs2.index("### Not ranked"):]
    assert "OldProtocol" in unranked and "OtherSyncNet" in unranked
    assert unranked.count("### Not ranked with this benchmark:") == 2


def test_ranks_and_best(site):
    _, out, _ = site
    rows = {r["submission"]: r for r in _csv_rows(out) if r["table"] == "ranked"}
    gt = rows["Ground truth"]
    assert gt["kind"] == "ground-truth" and gt["ssim_rank"] == "" and gt["mean_rank"] == ""
    assert rows["DiffLip"]["psnr_rank"] == "1" and rows["DiffLip"]["fid_rank"] == "1"
    assert rows["'=HYPERLINK(\"http://x\")"]["psnr_rank"] == rows["Wav2Lip"]["psnr_rank"] == "3"  # tie: 29.5
    assert rows["Copy-first-frame"]["psnr_rank"] == "6"  # competition ranking: 1, 2, 3, 3, 3, 6
    assert rows["Copy-first-frame"]["lse_d_rank"] == "5"  # lower is better; NoSyncWeights has no LSE
    assert rows["NoSyncWeights"]["lse_d"] == "" and rows["NoSyncWeights"]["lse_d_rank"] == ""
    assert rows["NoSyncWeights"]["lse_d_skipped_reason"] == "official SyncNet weights absent"
    md_text = (out / "leaderboard.md").read_text()
    diff_line = next(line for line in md_text.splitlines() if line.startswith("| [DiffLip]"))
    cells = _md_cells(diff_line)
    assert cells[4] == "**31.25 ± 0.28** (1)"  # PSNR
    assert cells[7] == "**11.70 ± 0.00** (1)"  # FID
    wav_line = next(line for line in md_text.splitlines() if line.startswith("| [Wav2Lip]"))
    assert _md_cells(wav_line)[4] == "29.50 ± 0.30 (3)"


def test_rank_rows_unit():
    from leaderboard.registry import Metric, Submission

    def sub(name, psnr, kind="model"):
        m = Metric("psnr", psnr, None, True, 1, 0, None, True, None, None, None)
        return Submission(path=name, sha256="", benchmark_name="", reference_shards_sha256="", protocol_version="",
                          protocol_hash="", name=name, model="", date="", link="", notes="", kind=kind,
                          mode="reconstruction", talkbench_version="", metrics={"psnr": m}, n_expected=None,
                          n_scored=None, n_skipped=None)

    rows = [Row(sub("a", 30.0)), Row(sub("b", 32.0)), Row(sub("c", 32.0)), Row(sub("gt", float("inf"), "ground-truth")),
            Row(sub("d", float("nan")))]
    rank_rows(rows)
    assert [r.ranks.get("psnr") for r in rows] == [3, 1, 1, None, None]
    assert [("psnr" in r.best) for r in rows] == [False, True, True, False, False]


def test_uncalibrated_fid_is_labelled(site):
    _, out, _ = site
    md_text = (out / "leaderboard.md").read_text()
    b = _section(md_text, "## demo-synthetic · reconstruction")
    assert "FID ↓ (uncalibrated)" in b and "FID: weights " + RANDOM_INCEPTION + ", UNCALIBRATED" in b
    a = _section(md_text, "## lrs2-test · reconstruction")
    assert "uncalibrated" not in a.lower()
    html_text = (out / "index.html").read_text()
    sec = html_text[html_text.index(f'id="bench-{REF_B[:12]}-reconstruction"'):]
    assert '<span class="uncal"' in sec[:sec.index("</table>")]
    rows = [r for r in _csv_rows(out) if r["reference_shards_sha256"] == REF_B]
    assert rows and all(r["fid_calibrated"] == "false" for r in rows)
    assert {r["submission"]: r["fid_rank"] for r in rows} == {"GT-B": "", "Model-B1": "2", "Model-B2": "1"}


def test_cross_mode_is_its_own_table(tmp_path):
    root = tmp_path / "r"
    write_results(root, "a", results_doc("Recon", "model", {"fid": (10.0, 0.1)}))
    write_results(root, "b", results_doc("Cross", "model", {"fid": (12.0, 0.1)}, mode="cross"))
    s = build_leaderboard(root, tmp_path / "site", plots=False)
    assert s["benchmarks"] == 2 and s["ranked"] == 2
    text = (tmp_path / "site/leaderboard.md").read_text()
    assert "## lrs2-test · cross" in text and "## lrs2-test · reconstruction" in text


# ---------------------------------------------------------------- untrusted text

class _Audit(html.parser.HTMLParser):
    def __init__(self):
        super().__init__()
        self.tags, self.handlers, self.hrefs, self.srcs = [], [], [], []

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)
        for k, v in attrs:
            if k.startswith("on"):
                self.handlers.append((tag, k))
            if k == "href":
                self.hrefs.append(v)
            if k == "src":
                self.srcs.append(v)


def test_html_escapes_untrusted_text(site):
    _, out, _ = site
    text = (out / "index.html").read_text()
    audit = _Audit()
    audit.feed(text)
    assert "script" not in audit.tags and "iframe" not in audit.tags
    assert audit.tags.count("img") == 4  # only our 4 plots
    assert all(s.startswith("data:image/png;base64,") for s in audit.srcs)
    assert audit.handlers == []
    assert all(h.startswith(("https://", "http://", "#bench-")) for h in audit.hrefs), audit.hrefs
    assert "javascript:" not in text
    assert "&lt;script&gt;document.body.setAttribute(&#x27;data-pwned&#x27;,&#x27;1&#x27;)&lt;/script&gt;|evil" in text
    assert "Content-Security-Policy" in text and "default-src 'none'" in text
    assert 'href="https://example.org/difflip?a=1&amp;b=(2)"' in text
    assert "link" not in audit.tags and "url(" not in text and "@import" not in text  # no remote loads


def test_markdown_escapes_untrusted_text(site):
    _, out, _ = site
    text = (out / "leaderboard.md").read_text()
    assert "<script" not in text and "<img" not in text and "javascript:" not in text
    evil = next(line for line in text.splitlines() if "data-pwned" in line and line.startswith("| "))
    header = next(line for line in text.splitlines() if line.startswith("| Submission"))
    assert len(_md_cells(evil)) == len(_md_cells(header))  # the '|' in name/model/notes did not add columns
    assert _md_cells(evil)[0] == ("&lt;script&gt;document.body.setAttribute('data-pwned','1')&lt;/script&gt;\\|evil")
    assert _md_cells(evil)[2] == "x\\|y"
    assert "\\`code\\` \\| pipe newline" in evil
    assert "[DiffLip](https://example.org/difflip?a=1&b=%282%29)" in text
    for line in text[:text.index("## Rejected results")].splitlines():  # every row has the header's width
        if line.startswith("| "):
            assert len(_md_cells(line)) in (13, 14), line


def test_escape_helpers():
    assert md("a|b`c<d>\n*e*_[x](y)") == "a\\|b\\`c&lt;d&gt; \\*e\\*\\_\\[x\\](y)"
    assert safe_url("javascript:alert(1)") is None
    assert safe_url("https://ok.example/x") == "https://ok.example/x"
    assert safe_url("https://a b") is None and safe_url("data:text/html,hi") is None and safe_url("//x.org") is None


def test_csv_neutralises_formulas(site):
    _, out, _ = site
    rows = _csv_rows(out)
    names = [r["submission"] for r in rows]
    assert "'=HYPERLINK(\"http://x\")" in names and "=HYPERLINK(\"http://x\")" not in names
    evil = next(r for r in rows if "data-pwned" in r["submission"])
    assert evil["link"] == "" and "\n" not in evil["notes"]
    assert rows[-1]["table"] == "rejected"


# ---------------------------------------------------------------- determinism, plots, per-video data

def test_rebuild_is_byte_identical(site, tmp_path):
    root, out, _ = site
    names = ["leaderboard.md", "leaderboard.csv", "index.html"]
    first = {n: (out / n).read_bytes() for n in names}
    plots_first = {p.name: p.read_bytes() for p in sorted((out / "plots").glob("*.png"))}
    build_leaderboard(root, out)  # same output folder again
    assert {n: (out / n).read_bytes() for n in names} == first
    # the same results written in another order with other mtimes into another folder
    root2 = make_results_root(tmp_path / "results2", order_seed=3)
    out2 = tmp_path / "site2"
    build_leaderboard(root2, out2)
    assert {n: (out2 / n).read_bytes() for n in names} == first
    assert {p.name: p.read_bytes() for p in sorted((out2 / "plots").glob("*.png"))} == plots_first


def test_plots_are_pngs_of_reasonable_size(site):
    from PIL import Image

    _, out, s = site
    for p in map(Path, s["plots"]):
        with Image.open(p) as im:
            assert im.format == "PNG" and im.width >= 400 and im.height >= 200
            arr = np.asarray(im.convert("L"))
        assert arr.std() > 5  # not blank
    assert (out / "leaderboard.md").read_text().count("](plots/lb-") == 4


def test_per_video_path_escape_and_hash_mismatch_are_ignored(tmp_path):
    root = tmp_path / "r"
    (root / "a").mkdir(parents=True)
    pv = write_per_video(root / "a", {"psnr": np.array([30.0, 31.0, 32.0])})
    write_results(root, "a", results_doc("A", "model", {"psnr": (31.0, 0.5)}, per_video=pv))
    write_results(root, "b", results_doc("B", "model", {"psnr": (30.0, 0.5)},
                                         per_video={"path": "../a/per_video.parquet", "sha256": pv["sha256"]}))
    write_results(root, "c", results_doc("C", "model", {"psnr": (29.0, 0.5)},
                                         per_video={"path": "per_video.parquet", "sha256": "0" * 64}))
    shutil.copy(root / "a/per_video.parquet", root / "c/per_video.parquet")
    c = collect(root)
    by = {s.name: s for s in c.submissions}
    assert by["A"].per_video == root / "a/per_video.parquet"
    assert by["B"].per_video is None and by["C"].per_video is None
    assert any("leaves the results folder" in w for w in c.warnings)
    assert any("sha256 does not match" in w for w in c.warnings)


def test_per_video_values_long_and_wide(tmp_path):
    from leaderboard.plots import per_video_values

    wide = tmp_path / "wide.parquet"
    pq.write_table(pa.table({"clip_id": ["a", "b", "c"], "psnr": [1.0, float("nan"), 3.0]}), wide)
    long = tmp_path / "long.parquet"
    pq.write_table(pa.table({"clip_id": ["a", "a", "b"], "metric": ["psnr", "fid", "psnr"], "value": [1.0, 9.0, 2.0]}),
                   long)
    assert per_video_values(wide, ["psnr", "fid"])["psnr"].tolist() == [1.0, 3.0]
    got = per_video_values(long, ["psnr", "fid"])
    assert {k: v.tolist() for k, v in got.items()} == {"psnr": [1.0, 2.0], "fid": [9.0]}
    (tmp_path / "junk.parquet").write_bytes(b"not parquet")
    assert per_video_values(tmp_path / "junk.parquet", ["psnr"]) == {}


# ---------------------------------------------------------------- registry

def _registry(root: Path, subs: list[tuple[str, str]], benchmarks=None, **meta) -> Path:
    doc = {"registry_schema": "talkbench-registry/1", "benchmarks": benchmarks or [],
           "submissions": [{"results": rel, "sha256": digest, **meta.get(rel, {})} for rel, digest in subs]}
    p = root / "registry.json"
    p.write_text(json.dumps(doc))
    return p


def test_registry_checks_hashes_and_declares_the_protocol(tmp_path):
    root = tmp_path / "r"
    ok = write_results(root, "ok", results_doc("Ok", "model", {"psnr": (30.0, 0.1)}))
    tampered = write_results(root, "tampered", results_doc("Tampered", "model", {"psnr": (31.0, 0.1)}))
    write_results(root, "unlisted", results_doc("Unlisted", "model", {"psnr": (32.0, 0.1)}))
    newer = write_results(root, "newer", results_doc("Newer", "model", {"psnr": (33.0, 0.1)}, version="evalkit-1.1"))
    digest = lambda p: hashlib.sha256(p.read_bytes()).hexdigest()  # noqa: E731
    tampered_digest = digest(tampered)
    tampered.write_text(tampered.read_text().replace("31.0", "39.0"))
    newer_hash = json.loads(newer.read_text())["benchmark"]["protocol_hash"]
    decl = [{"name": "official", "reference_shards_sha256": REF_A, "protocol_version": "evalkit-1.1",
             "protocol_hash": newer_hash}]
    _registry(root, [("ok", "0" * 64), ("ok/results.json", digest(ok)), ("tampered/results.json", tampered_digest),
                     ("newer/results.json", digest(newer)), ("missing/results.json", "1" * 64)], decl,
              **{"ok/results.json": {"name": "Ok (registry name)", "link": "https://ok.example"}})
    s = build_leaderboard(root, tmp_path / "site", plots=False)
    reasons = {r["path"]: r["reason"] for r in s["rejected"]}
    assert "does not match the registry entry" in reasons["tampered/results.json"]
    assert reasons["unlisted/results.json"] == "not listed in the submission registry"
    assert reasons["missing/results.json"] == "registered results file is missing"
    assert "ok" in reasons  # a registry path that is not a file
    rows = {r["submission"]: r for r in _csv_rows(tmp_path / "site") if r["table"] != "rejected"}
    assert set(rows) == {"Ok (registry name)", "Newer"}
    assert rows["Newer"]["table"] == "ranked" and rows["Newer"]["benchmark"] == "official"
    assert rows["Ok (registry name)"]["table"] == "not-ranked"  # the registry declares evalkit-1.1
    assert "benchmark: evalkit-1.1" in rows["Ok (registry name)"]["not_ranked_reason"]
    assert "(submission registry in use)" in (tmp_path / "site/leaderboard.md").read_text()


def test_empty_root_and_symlinked_results(tmp_path):
    root = tmp_path / "r"
    root.mkdir()
    s = build_leaderboard(root, tmp_path / "site")
    assert (s["benchmarks"], s["accepted"], s["rejected"], s["plots"]) == (0, 0, [], [])
    assert "_No accepted results._" in (tmp_path / "site/leaderboard.md").read_text()
    outside = write_results(tmp_path, "outside", results_doc("Outside", "model", {"psnr": (30.0, 0.1)}))
    (root / "link").mkdir()
    (root / "link/results.json").symlink_to(outside)
    (root / "linked_dir").symlink_to(outside.parent, target_is_directory=True)  # not followed
    c = collect(root)
    assert c.submissions == [] and [(r.path, r.reason) for r in c.rejected] == [
        ("link/results.json", "results file is a symlink")]


def test_registry_rejects_paths_outside_root(tmp_path):
    root = tmp_path / "r"
    outside = write_results(tmp_path, "outside", results_doc("Outside", "model", {"psnr": (30.0, 0.1)}))
    d = hashlib.sha256(outside.read_bytes()).hexdigest()
    _registry(root.mkdir() or root, [("../outside/results.json", d), ("/etc/passwd", d)])
    c = collect(root)
    assert c.submissions == []
    assert {r.reason for r in c.rejected} == {"registered path leaves the results root"}


def test_submission_json_metadata_and_hash(tmp_path):
    root = tmp_path / "r"
    p = write_results(root, "a", results_doc("from results", "model", {"psnr": (30.0, 0.1)}))
    d = hashlib.sha256(p.read_bytes()).hexdigest()
    (root / "a/submission.json").write_text(json.dumps({"name": "from submission.json", "results_sha256": d,
                                                        "notes": "n"}))
    q = write_results(root, "b", results_doc("B", "model", {"psnr": (30.0, 0.1)}))
    (q.parent / "submission.json").write_text(json.dumps({"results_sha256": "f" * 64}))
    c = collect(root)
    assert [(s.name, s.notes, s.metadata_source) for s in c.submissions] == [("from submission.json", "n",
                                                                               "submission.json")]
    assert c.rejected[0].path == "b/results.json" and "submission.json" in c.rejected[0].reason


@pytest.mark.parametrize("mutate, needle", [
    (lambda d: d.update(results_schema="talkbench-results/2"), "results_schema"),
    (lambda d: d["benchmark"].update(protocol_hash="xyz"), "protocol_hash"),
    (lambda d: d["benchmark"].update(protocol_hash="a" * 64), "does not match the metrics' protocol dicts"),
    (lambda d: d["metrics"]["psnr"]["protocol"].update(crop_size=128), "does not match the metrics' protocol dicts"),
    (lambda d: d["metrics"]["psnr"].pop("protocol"), "metrics.psnr.protocol: missing"),
    (lambda d: d["metrics"]["psnr"].update(value="31"), "expected a number"),
    (lambda d: d["metrics"]["psnr"].update(value=True), "expected a number"),
    (lambda d: d["metrics"]["psnr"].update(higher_is_better=False), "higher_is_better"),
    (lambda d: d["submission"].update(kind="admin"), "submission.kind"),
    (lambda d: d["metrics"]["psnr"].update(weights_sha256="../../etc"), "weights_sha256"),
    (lambda d: d.update(metrics={"bad name": {}}), "bad metric name"),
])
def test_schema_violations_are_rejected(tmp_path, mutate, needle):
    doc = results_doc("x", "model", {"psnr": (30.0, 0.1)})
    mutate(doc)
    write_results(tmp_path, "x", doc)
    c = collect(tmp_path)
    assert c.submissions == [] and needle in c.rejected[0].reason


def test_protocol_hash_is_evalkits():
    protocol = pytest.importorskip("evalkit.protocol")
    protos = {"psnr": {"version": "psnr-1", "region": "aligned_crop", "data_range": 255.0},
              "fid": {"version": "fid-1", "resize": 299, "note": "ünïcode"}}
    assert protocol_hash(protos) == protocol.protocol_hash(protos)


def test_bad_registry_is_an_error(tmp_path):
    (tmp_path / "registry.json").write_text("{not json")
    with pytest.raises(ResultsError, match="registry.json"):
        collect(tmp_path)


# ---------------------------------------------------------------- CLI

def test_cli(site, tmp_path, capsys):
    from talkbench.cli import main

    root, out, _ = site
    assert main(["leaderboard", str(root), "--out", str(tmp_path / "s")]) == 0
    printed = capsys.readouterr().out
    assert "2 benchmark(s), 12 results accepted (10 ranked, 2 not ranked), 1 rejected" in printed
    assert (tmp_path / "s/leaderboard.md").read_bytes() == (out / "leaderboard.md").read_bytes()
    assert main(["leaderboard", str(root), "--out", str(tmp_path / "s"), "--strict"]) == 1
    assert main(["leaderboard", str(tmp_path / "nope"), "--out", str(tmp_path / "s")]) == 2


def test_cli_module_is_cheap_to_import():
    import subprocess
    import sys

    code = ("import sys, leaderboard.cli; heavy = [m for m in ('numpy', 'pyarrow', 'matplotlib', 'torch', 'pandas') "
            "if m in sys.modules]; assert not heavy, heavy")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=Path(__file__).parents[1])
    assert r.returncode == 0, r.stderr


def test_accepts_what_evalkit_writes(tmp_path):
    """Contract check: a results.json assembled with evalkit's own helpers passes evalkit's validator and is
    read here with the same numbers (skips while evalkit is absent)."""
    R = pytest.importorskip("evalkit.results")
    P = pytest.importorskip("evalkit.protocol")
    metrics = {}
    for i, (name, (version, _, _)) in enumerate(sorted(P.METRICS.items())):
        proto = {"version": version, "region": "aligned_crop"}
        if name == "sync_inhouse":
            metrics[name] = R.metric_entry(name, None, None, 0, 10, proto, skipped_reason="no checkpoint given")
        else:
            metrics[name] = R.metric_entry(name, 1.5 + i, 0.1, 10, 0, proto,
                                           weights_sha256=SYNCNET if name.startswith("lse") else None,
                                           calibrated=name != "fid")
    doc = {"results_schema": R.RESULTS_SCHEMA_VERSION, "talkbench_version": "0.1.0", "created": "2026-11-23T00:00:00Z",
           "benchmark": {"name": "ref", "reference_shards_sha256": REF_A, "protocol_version": "evalkit-1.0",
                         "protocol_hash": P.protocol_hash({k: m["protocol"] for k, m in metrics.items()})},
           "submission": {"name": "evalkit-made", "model": None, "date": None, "link": None, "notes": None,
                          "kind": "model", "mode": "reconstruction"},
           "config": {}, "metrics": metrics, "skipped": [],
           "n_videos": {"expected": 10, "scored": 10, "skipped": 0, "extra": 0, "skip_codes": {}},
           "per_video": {"path": "per_video.parquet", "sha256": "0" * 64}}
    R.validate_results(doc)
    (tmp_path / "run").mkdir()
    (tmp_path / "run/results.json").write_text(R.dumps(doc))
    c = collect(tmp_path)
    assert c.rejected == [] and len(c.submissions) == 1
    sub = c.submissions[0]
    assert {k: m.value for k, m in sub.metrics.items()} == {k: m["value"] for k, m in metrics.items()}
    assert sub.metrics["fid"].calibrated is False and sub.metrics["sync_inhouse"].skipped_reason == "no checkpoint given"
    assert sub.model == "" and sub.per_video is None  # null metadata reads as empty; absent per-video file
