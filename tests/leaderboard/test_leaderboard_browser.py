"""The leaderboard page in a real headless Chromium: it renders offline, shows the expected rows, and
injected submitter markup stays inert. Skips only when no chromium binary is installed."""
from __future__ import annotations

import html.parser
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

import lb_results as fx

pytestmark = pytest.mark.browser

CHROMIUM = next((shutil.which(n) for n in ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
                 if shutil.which(n)), None)
needs_chromium = pytest.mark.skipif(CHROMIUM is None, reason="no chromium binary on PATH "
                                    "(apt-get install chromium; .ci/run installs it)")


def chromium(profile: Path, *args: str, timeout: int = 120) -> subprocess.CompletedProcess:
    cmd = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--hide-scrollbars",
           "--no-first-run", "--disable-extensions", "--disable-background-networking", f"--user-data-dir={profile}",
           *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=False)


class DomReader(html.parser.HTMLParser):
    """Tables (class, benchmark, rows of cell texts), body attributes and img sources from a dumped DOM."""

    def __init__(self):
        super().__init__()
        self.body_attrs: dict = {}
        self.tables: list[dict] = []
        self.imgs: list[str] = []
        self.scripts = 0
        self._cell: list[str] | None = None
        self._row: list[str] | None = None

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "body":
            self.body_attrs = a
        elif tag == "script":
            self.scripts += 1
        elif tag == "img":
            self.imgs.append(a.get("src") or "")
        elif tag == "table":
            self.tables.append({"class": a.get("class", ""), "benchmark": a.get("data-benchmark"), "rows": []})
        elif tag == "tr" and self.tables:
            self._row = []
        elif tag in ("td", "th") and self._row is not None:
            self._cell = []

    def handle_endtag(self, tag):
        if tag in ("td", "th") and self._cell is not None and self._row is not None:
            self._row.append("".join(self._cell).strip())
            self._cell = None
        elif tag == "tr" and self._row is not None:
            self.tables[-1]["rows"].append(self._row)
            self._row = None

    def handle_data(self, data):
        if self._cell is not None:
            self._cell.append(data)


@pytest.fixture
def site(lb_site):
    """The shared built site (tests/leaderboard/conftest.py): the factory module and its index.html."""
    return fx, lb_site[1] / "index.html"


@needs_chromium
def test_chromium_runs_scripts_in_dump_dom_mode(tmp_path):
    """Control: the 'no injected script ran' check below would see a script that did run."""
    page = tmp_path / "control.html"
    page.write_text("<!DOCTYPE html><html><body><script>document.body.setAttribute('data-pwned','1')</script>"
                    "</body></html>")
    r = chromium(tmp_path / "profile", "--dump-dom", page.as_uri())
    dom = DomReader()
    dom.feed(r.stdout)
    assert dom.body_attrs.get("data-pwned") == "1", r.stderr[-2000:]


@needs_chromium
def test_page_renders_expected_rows_and_injection_is_inert(site, tmp_path):
    fx, page = site
    r = chromium(tmp_path / "profile", "--dump-dom", page.as_uri())
    assert r.returncode == 0, r.stderr[-2000:]
    dom = DomReader()
    dom.feed(r.stdout)
    assert "data-pwned" not in dom.body_attrs  # neither the <script> name nor the onerror notes ran
    assert dom.scripts == 0
    assert len(dom.imgs) == 4 and all(s.startswith("data:image/png;base64,") for s in dom.imgs)

    ref_a = fx.REF_A[:12] + "-reconstruction"
    boards = [t for t in dom.tables if t["benchmark"] == ref_a]
    ranked = next(t for t in boards if "ranked" in t["class"].split())
    names = [row[0] for row in ranked["rows"][1:]]
    assert names == ["Ground truth", "DiffLip", fx.EVIL_NAME, "Wav2Lip", '=HYPERLINK("http://x")', "NoSyncWeights",
                     "Copy-first-frame"]  # the injected name is shown verbatim, as text
    header = ranked["rows"][0]
    assert header[4:11] == ["PSNR ↑", "SSIM ↑", "LMD (mouth) ↓", "FID ↓", "LSE-D ↓", "LSE-C ↑", "dlib-CSIM ↑"]
    diff = ranked["rows"][2]
    assert diff[4] == "31.25 ± 0.28 (1)"
    unranked = [row[0] for t in boards if "unranked" in t["class"].split() for row in t["rows"][1:]]
    assert sorted(unranked) == ["OldProtocol", "OtherSyncNet"]
    b = next(t for t in dom.tables if t["benchmark"] == fx.REF_B[:12] + "-reconstruction")
    head = b["rows"][0]  # only what B reports; no Model column (no B row names a model)
    assert "Model" not in head and head[head.index("SSIM ↑"):head.index("SSIM ↑") + 4] == [
        "SSIM ↑", "FID ↓ uncalibrated", "LSE-D ↓", "LSE-C ↑"]
    rejected = next(t for t in dom.tables if "rejected" in t["class"].split())
    assert rejected["rows"][1] == ["teams/broken/results.json", "results.submission: missing"]


@needs_chromium
def test_screenshot(site, tmp_path, artifact_dir):
    from PIL import Image

    _, page = site
    shot = artifact_dir / "leaderboard_index.png"
    shot.unlink(missing_ok=True)
    r = chromium(tmp_path / "profile", "--window-size=1900,3200", f"--screenshot={shot}", page.as_uri())
    assert shot.is_file(), r.stderr[-2000:]
    with Image.open(shot) as im:
        assert im.size == (1900, 3200)
        gray = np.asarray(im.convert("L"), dtype=np.float32)
    ink = (gray < 200).mean()
    assert 0.02 < ink < 0.6, ink  # text, tables and plots drawn; not blank, not an error page
    # the plots (large non-white areas of mid-grey axes/markers) are rendered below the first table
    assert (gray[1200:3200] < 200).mean() > 0.02
