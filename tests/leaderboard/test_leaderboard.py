"""Leaderboard: validation, comparability, ranking, escaping of untrusted text, determinism, plots, CLI."""
from __future__ import annotations

import csv
import dataclasses
import hashlib
import html.parser
import io
import json
import re
import shutil
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from lb_results import (HEADLINE_LABELS, RANDOM_INCEPTION, REF_A, REF_B, SYNCNET_OTHER, finish, make_results_root,
                        results_doc, write_per_video, write_results)
from leaderboard import build_leaderboard
from leaderboard.registry import ResultsError, Submission, collect
from leaderboard.tables import Row, build_benchmarks, rank_rows
from talkbase.escape import md, safe_url
from talkbase.results import parse_metric


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

def test_summary_counts(lb_site):
    _, out, s = lb_site
    assert s["benchmarks"] == 2
    assert s["accepted"] == 12 and len(s["rejected"]) == 1
    assert s["rejected"][0]["path"] == "teams/broken/results.json"
    assert s["rejected"][0]["reason"] == "results.submission: missing"
    assert s["not_ranked"] == 2  # OldProtocol and OtherSyncNet
    assert s["ranked"] == 10
    for k in ("markdown", "csv", "html"):
        assert Path(s[k]).is_file() and Path(s[k]).parent == out
    assert len(s["plots"]) == 4  # distributions + sync-vs-fid for each benchmark


def test_mismatched_protocol_and_weights_are_not_ranked(lb_site):
    _, out, _ = lb_site
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


def test_ranks_and_best(lb_site):
    _, out, _ = lb_site
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
    header = next(line for line in _section(md_text, "## lrs2-test").splitlines() if line.startswith("| Submission"))
    arrows = ["↑", "↑", "↓", "↓", "↓", "↑", "↑"]  # each file's own higher_is_better
    assert _md_cells(header)[4:11] == [f"{label} {a}" for label, a in zip(HEADLINE_LABELS, arrows)]
    diff_line = next(line for line in md_text.splitlines() if line.startswith("| [DiffLip]"))
    cells = _md_cells(diff_line)
    assert cells[4] == "**31.25 ± 0.28** (1)"  # PSNR
    assert cells[7] == "**11.70 ± 0.00** (1)"  # FID
    wav_line = next(line for line in md_text.splitlines() if line.startswith("| [Wav2Lip]"))
    assert _md_cells(wav_line)[4] == "29.50 ± 0.30 (3)"


def _metric(name, value, higher=True, **extra):
    entry = {"value": 0.0, "higher_is_better": higher, "version": f"{name}-1", "protocol": {}, "n_scored": 1,
             "n_skipped": 0, **extra}
    return dataclasses.replace(parse_metric(name, entry, f"metrics.{name}"), value=value)  # inf / nan: by hand


def _sub(name, metrics, kind="model"):
    return Submission(path=name, name=name, kind=kind, metrics=metrics)


def test_rank_rows_unit():
    def sub(name, psnr, kind="model"):
        return _sub(name, {"psnr": _metric("psnr", psnr)}, kind)

    rows = [Row(sub("a", 30.0)), Row(sub("b", 32.0)), Row(sub("c", 32.0)), Row(sub("gt", float("inf"), "ground-truth")),
            Row(sub("d", float("nan")))]
    rank_rows(rows)
    assert [r.ranks.get("psnr") for r in rows] == [3, 1, 1, None, None]
    assert [("psnr" in r.best) for r in rows] == [False, True, True, False, False]
    # the direction is the entry's own: lower is better here
    rows = [Row(_sub(n, {"lpips": _metric("lpips", v, higher=False)})) for n, v in (("a", 0.3), ("b", 0.1))]
    rank_rows(rows)
    assert [r.ranks["lpips"] for r in rows] == [2, 1]


def test_csv_only_metrics_are_not_ranked_or_shown(lb_site):
    _, out, _ = lb_site
    rows = {r["submission"]: r for r in _csv_rows(out) if r["table"] == "ranked"}
    assert rows["DiffLip"]["lmd_face"] == "1.9" and rows["DiffLip"]["lmd_face_rank"] == ""  # headline: false
    header = next(line for line in (out / "leaderboard.md").read_text().splitlines() if line.startswith("| Submission"))
    assert "LMD (face)" not in header


def test_uncalibrated_fid_is_labelled(lb_site):
    _, out, _ = lb_site
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


# ---------------------------------------------------------------- columns come from the results files

LPIPS = {"lpips": ("LPIPS", False, 4, True)}


def test_unknown_metric_gets_its_own_column_and_direction(tmp_path):
    """A metric no table knows ('lpips', lower is better) is a column with its label, precision and direction."""
    root = tmp_path / "r"
    for rel, name, kind, lp in (("gt", "GT", "ground-truth", 0.0), ("a", "A", "model", 0.21), ("b", "B", "model", 0.12),
                                ("c", "C", "model", 0.3)):
        write_results(root, rel, results_doc(name, kind, {"psnr": (30.0, 0.1), "lpips": (lp, 0.01)}, specs=LPIPS))
    s = build_leaderboard(root, tmp_path / "site", plots=False)
    assert s["ranked"] == 4 and s["rejected"] == []
    rows = {r["submission"]: r for r in _csv_rows(tmp_path / "site")}
    assert {n: rows[n]["lpips_rank"] for n in "ABC"} == {"A": "2", "B": "1", "C": "3"}
    assert rows["GT"]["lpips_rank"] == ""
    assert rows["B"]["lpips"] == "0.12"
    text = (tmp_path / "site/leaderboard.md").read_text()
    header = next(line for line in text.splitlines() if line.startswith("| Submission"))
    cells = _md_cells(header)
    assert "Model" not in cells  # no row names a model: no empty column
    assert cells[cells.index("PSNR ↑"):cells.index("PSNR ↑") + 2] == ["PSNR ↑", "LPIPS ↓"]
    b_line = next(line for line in text.splitlines() if line.startswith("| B |"))
    assert _md_cells(b_line)[cells.index("LPIPS ↓")] == "**0.1200 ± 0.0100** (1)"
    html_text = (tmp_path / "site/index.html").read_text()
    assert '<th class="metric" data-metric="lpips">LPIPS ↓</th>' in html_text


def test_metric_without_label_or_decimals_falls_back(tmp_path):
    root = tmp_path / "r"
    doc = results_doc("A", "model", {"psnr": (30.0, 0.1), "new_metric": (1.23456, None)},
                      specs={"new_metric": ("", True, 3, True)}, order=False)
    for k in ("label", "decimals", "headline"):
        doc["metrics"]["new_metric"].pop(k)
    write_results(root, "a", doc)
    (b,) = build_benchmarks(collect(root))
    assert [(c.key, c.label, c.decimals, c.headline) for c in b.columns] == [
        ("new_metric", "new_metric", 3, True), ("psnr", "PSNR", 2, True)]  # no metric_order: sorted names
    build_leaderboard(root, tmp_path / "site", plots=False)
    assert "| new\\_metric ↑ |" in (tmp_path / "site/leaderboard.md").read_text()


def test_column_order_follows_metric_order_across_files(tmp_path):
    root = tmp_path / "r"
    spec = {"zeta": ("Zeta", True, 3, True), "alpha": ("Alpha", True, 3, True)}
    write_results(root, "a", results_doc("A", "model", {"psnr": 1.0, "zeta": 1.0}, specs=spec))
    write_results(root, "b", results_doc("B", "model", {"psnr": 2.0, "alpha": 2.0, "zeta": 2.0}, specs=spec))
    (b,) = build_benchmarks(collect(root))
    assert [c.key for c in b.columns] == ["psnr", "zeta", "alpha"]  # a's order, then what b adds
    assert [c.key for c in b.ranked.columns] == ["psnr", "zeta", "alpha"]


def test_direction_conflict_minority_is_not_ranked(tmp_path):
    """Files disagreeing on a metric's direction are never ranked together: the majority sets the column,
    the minority goes to its own unranked table that says why."""
    root = tmp_path / "r"
    lower = {"lpips": ("LPIPS", False, 4, True)}
    higher = {"lpips": ("LPIPS (inverted)", True, 4, True)}
    for rel, lp in (("a", 0.2), ("b", 0.1)):
        write_results(root, rel, results_doc(rel.upper(), "model", {"psnr": 30.0, "lpips": lp}, specs=lower))
    write_results(root, "c", results_doc("C", "model", {"psnr": 31.0, "lpips": 0.9}, specs=higher))
    (b,) = build_benchmarks(collect(root))
    lp = next(c for c in b.columns if c.key == "lpips")
    assert (lp.label, lp.higher_is_better) == ("LPIPS", False)
    assert [r.sub.name for r in b.ranked.rows] == ["B", "A"]
    (t,) = b.unranked
    assert [r.sub.name for r in t.rows] == ["C"] and t.reason == "LPIPS higher is better (benchmark: lower is better)"
    assert t.rows[0].ranks == {}
    s = build_leaderboard(root, tmp_path / "site", plots=False)
    assert (s["ranked"], s["not_ranked"]) == (2, 1)
    # a tie between directions goes to the ground truth
    write_results(root, "gt", results_doc("GT", "ground-truth", {"psnr": 99.0, "lpips": 0.0}, specs=higher))
    write_results(root, "d", results_doc("D", "model", {"psnr": 30.0, "lpips": 0.5}, specs=higher))
    (b,) = build_benchmarks(collect(root))
    assert next(c for c in b.columns if c.key == "lpips").higher_is_better is True
    assert sorted(r.sub.name for t in b.unranked for r in t.rows) == ["A", "B"]


def test_labels_from_results_files_are_escaped(tmp_path):
    root = tmp_path / "r"
    evil = "<img src=x onerror=alert(1)>|x"
    write_results(root, "a", results_doc("A", "model", {"psnr": 30.0, "evil": 1.0},
                                         specs={"evil": (evil, True, 3, True)}))
    write_results(root, "b", results_doc("B", "model", {"psnr": 31.0, "evil": 2.0},
                                         specs={"evil": (evil, True, 3, True)}))
    build_leaderboard(root, tmp_path / "site")
    html_text = (tmp_path / "site/index.html").read_text()
    audit = _Audit()
    audit.feed(html_text)
    assert audit.handlers == [] and audit.tags.count("img") == 1  # the distributions plot only
    assert "&lt;img src=x onerror=alert(1)&gt;|x ↑" in html_text
    md_text = (tmp_path / "site/leaderboard.md").read_text()
    assert "<img" not in md_text
    header = next(line for line in md_text.splitlines() if line.startswith("| Submission"))
    assert len(_md_cells(header)) == 3 + 2 + 3  # no Model column: no row names one


def test_metric_names_clashing_in_the_csv_are_left_out(tmp_path):
    root = tmp_path / "r"
    write_results(root, "a", results_doc("A", "model", {"psnr": 30.0, "psnr_rank": 5.0},
                                         specs={"psnr_rank": ("sneaky", True, 3, True)}))
    s = build_leaderboard(root, tmp_path / "site", plots=False)
    rows = _csv_rows(tmp_path / "site")
    assert rows[0]["psnr"] == "30.0" and rows[0]["psnr_rank"] == "1"  # the real rank, not the metric's value
    assert any("'psnr_rank'" in w and "left out of leaderboard.csv" in w for w in s["warnings"])


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


def test_html_escapes_untrusted_text(lb_site):
    _, out, _ = lb_site
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


def test_markdown_escapes_untrusted_text(lb_site):
    _, out, _ = lb_site
    text = (out / "leaderboard.md").read_text()
    assert "<script" not in text and "<img" not in text and "javascript:" not in text
    lines = text.splitlines()
    i = next(i for i, line in enumerate(lines) if "data-pwned" in line and line.startswith("| "))
    evil = lines[i]
    header = next(line for line in reversed(lines[:i]) if line.startswith("| Submission"))  # its table's
    assert len(_md_cells(header)) in (13, 14)  # 4 + the 7 headline metrics + 2 (+ mean rank)
    assert len(_md_cells(evil)) == len(_md_cells(header))  # the '|' in name/model/notes did not add columns
    assert _md_cells(evil)[0] == ("&lt;script&gt;document.body.setAttribute('data-pwned','1')&lt;/script&gt;\\|evil")
    assert _md_cells(evil)[2] == "x\\|y"
    assert "\\`code\\` \\| pipe newline" in evil
    assert "[DiffLip](https://example.org/difflip?a=1&b=%282%29)" in text
    width = None
    for line in text[:text.index("## Rejected results")].splitlines():  # every row has its header's width
        if line.startswith("| Submission"):
            width = len(_md_cells(line))
        elif line.startswith("| "):
            assert len(_md_cells(line)) == width, line


def test_escape_helpers():
    assert md("a|b`c<d>\n*e*_[x](y)") == "a\\|b\\`c&lt;d&gt; \\*e\\*\\_\\[x\\](y)"
    assert safe_url("javascript:alert(1)") is None
    assert safe_url("https://ok.example/x") == "https://ok.example/x"
    assert safe_url("https://a b") is None and safe_url("data:text/html,hi") is None and safe_url("//x.org") is None


def test_csv_neutralises_formulas(lb_site):
    _, out, _ = lb_site
    rows = _csv_rows(out)
    names = [r["submission"] for r in rows]
    assert "'=HYPERLINK(\"http://x\")" in names and "=HYPERLINK(\"http://x\")" not in names
    evil = next(r for r in rows if "data-pwned" in r["submission"])
    assert evil["link"] == "" and "\n" not in evil["notes"]
    assert rows[-1]["table"] == "rejected"


# ---------------------------------------------------------------- determinism, plots, per-video data

def test_rebuild_is_byte_identical(lb_site, tmp_path):
    root, out, _ = lb_site
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


def test_plots_are_pngs_of_reasonable_size(lb_site):
    from PIL import Image

    _, out, s = lb_site
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
    write_results(root, "d", results_doc("D", "model", {"psnr": (28.0, 0.5)},
                                         per_video={"path": "pv.parquet", "sha256": pv["sha256"]}))
    (root / "d/pv.parquet").symlink_to(root / "a/per_video.parquet")  # resolves outside its folder
    c = collect(root)
    by = {s.name: s for s in c.submissions}
    assert by["A"].per_video == root / "a/per_video.parquet"
    assert by["C"].per_video is None and by["D"].per_video is None
    # a per_video path that names another folder is a malformed results file (talkbase.results refuses it)
    assert [(r.path, "per_video.path" in r.reason) for r in c.rejected] == [("b/results.json", True)]
    assert any(w.startswith("d/results.json") and "leaves the results folder" in w for w in c.warnings)
    assert any(w.startswith("c/results.json") and "sha256 does not match" in w for w in c.warnings)


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
    (lambda d: d["metrics"]["psnr"].update(higher_is_better="yes"), "metrics.psnr.higher_is_better"),
    (lambda d: d["metrics"]["psnr"].pop("higher_is_better"), "metrics.psnr.higher_is_better: missing"),
    (lambda d: d["metrics"]["psnr"].pop("version"), "metrics.psnr.version: missing"),
    (lambda d: d.update(metric_order=["psnr", "fid"]), "metric_order"),
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


def test_one_results_parser():
    """The leaderboard reads results files with talkbase.results only (its own parser is gone)."""
    import leaderboard.registry as registry
    import talkbase.results

    assert registry.ResultsError is talkbase.results.ResultsError
    for gone in ("parse_results", "parse_metric", "protocol_hash", "Metric", "RESULTS_SCHEMA"):
        assert not hasattr(registry, gone), gone


def test_bad_registry_is_an_error(tmp_path):
    (tmp_path / "registry.json").write_text("{not json")
    with pytest.raises(ResultsError, match="registry.json"):
        collect(tmp_path)


# ---------------------------------------------------------------- CLI

def test_cli(lb_site, tmp_path, capsys):
    from talkbench.cli import main

    root, out, _ = lb_site
    assert main(["leaderboard", str(root), "--out", str(tmp_path / "s")]) == 0
    printed = capsys.readouterr().out
    assert "2 benchmark(s), 12 results accepted (10 ranked, 2 not ranked), 1 rejected" in printed
    assert (tmp_path / "s/leaderboard.md").read_bytes() == (out / "leaderboard.md").read_bytes()
    assert main(["leaderboard", str(root), "--out", str(tmp_path / "s"), "--strict"]) == 1
    assert main(["leaderboard", str(tmp_path / "nope"), "--out", str(tmp_path / "s")]) == 2


def test_cli_module_is_cheap_to_import():
    import subprocess
    import sys

    code = ("import sys, leaderboard, leaderboard.registry, leaderboard.tables, talkbench.commands.leaderboard; "
            "heavy = [m for m in ('numpy', 'pyarrow', 'matplotlib', 'torch', 'pandas') if m in sys.modules]; "
            "assert not heavy, heavy")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=Path(__file__).parents[2])
    assert r.returncode == 0, r.stderr


def test_reads_evalkits_metric_descriptions(tmp_path):
    """Contract check: metric entries carrying what evalkit's metric specs describe (label, direction, version,
    unit, decimals, headline, valid_range) become columns with those headings and directions, in evalkit's
    order."""
    from evalkit import metrics as M

    infos = [s.info() for s in M.all_specs()]
    keys = ("label", "higher_is_better", "version", "unit", "decimals", "headline", "valid_range")
    metrics = {}
    for i, info in enumerate(infos):
        lo, hi = info["valid_range"]
        value = lo if lo is not None else hi if hi is not None else 1.0
        metrics[info["name"]] = {**{k: info[k] for k in keys}, "value": value, "stderr": 0.0, "n_scored": 10,
                                 "n_skipped": 0, "protocol": {"version": info["version"]}}
    doc = results_doc("evalkit-made", "model", {})
    doc["metrics"], doc["metric_order"] = metrics, [i["name"] for i in infos]
    doc["n_videos"] = {"expected": 10, "scored": 10, "skipped": 0}
    write_results(tmp_path / "r", "run", finish(doc))
    c = collect(tmp_path / "r")
    assert c.rejected == [] and len(c.submissions) == 1
    (b,) = build_benchmarks(c)
    assert [(col.key, col.label, col.higher_is_better, col.decimals, col.headline) for col in b.columns] == [
        (i["name"], i["label"], i["higher_is_better"], i["decimals"], i["headline"]) for i in infos]

