"""The leaderboard page fits a 1400-px window (N scored and Notes not cut off), measured in headless Chromium."""
from __future__ import annotations

import re
import shutil
import subprocess

import pytest

import lb_results as fx

pytestmark = pytest.mark.browser
CHROMIUM = next((shutil.which(n) for n in ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
                 if shutil.which(n)), None)

PROBE = ("<script>window.onload=function(){var r=[];document.querySelectorAll('table.board').forEach(function(t){"
         "r.push(t.offsetWidth-t.parentElement.clientWidth)});document.title='OVERFLOW:'+r.join(',');}</script>")


@pytest.mark.skipif(CHROMIUM is None, reason="no chromium binary on PATH (apt-get install chromium)")
@pytest.mark.parametrize("width", [1400, 1280])
def test_tables_fit_the_window(tmp_path, width):
    from leaderboard import build_leaderboard

    root = fx.make_results_root(tmp_path / "r")
    build_leaderboard(root, tmp_path / "site", plots=False)
    page = (tmp_path / "site" / "index.html").read_text()
    # a copy with a measuring script (the real page's CSP forbids every script)
    page = re.sub(r'<meta http-equiv="Content-Security-Policy"[^>]*>', "", page).replace("</body>", PROBE + "</body>")
    (tmp_path / "probe.html").write_text(page)
    out = subprocess.run([CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                          f"--user-data-dir={tmp_path / 'profile'}", f"--window-size={width},900",
                          "--virtual-time-budget=3000", "--dump-dom", f"file://{tmp_path / 'probe.html'}"],
                         capture_output=True, text=True, timeout=120)
    title = re.findall(r"<title>OVERFLOW:(.*?)</title>", out.stdout)
    assert title, out.stderr[-500:]
    overflow = [int(x) for x in title[0].split(",")]
    assert overflow and max(overflow[:2]) <= 0, f"ranked tables wider than the window by {overflow} px"
