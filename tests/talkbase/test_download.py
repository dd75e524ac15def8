"""`talkbench models fetch` against a loopback HTTP server (never the internet) and `models list` wording."""
from __future__ import annotations

import hashlib
import http.server
import subprocess
import sys
import threading
from functools import partial

import pytest

from talkbase.download import fetch
from talkbase.weights import WeightsMismatch


@pytest.fixture
def server(tmp_path):
    root = tmp_path / "www"
    root.mkdir()
    handler = partial(http.server.SimpleHTTPRequestHandler, directory=str(root))
    handler.log_message = lambda *a, **k: None
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    t = threading.Thread(target=httpd.serve_forever, daemon=True)
    t.start()
    yield root, f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


def test_fetch_downloads_hashes_and_labels_an_unpinned_file_unverified(server, tmp_path):
    root, base = server
    data = b"syncnet weights stand-in" * 1000
    (root / "syncnet_v2.model").write_bytes(data)
    got = fetch("syncnet", tmp_path / "dest", url=f"{base}/syncnet_v2.model", progress=False)
    assert len(got) == 1 and got[0].sha256 == hashlib.sha256(data).hexdigest() and not got[0].official
    assert (tmp_path / "dest" / "syncnet_v2.model").read_bytes() == data


def test_a_pinned_hash_that_differs_keeps_nothing(server, tmp_path):
    root, base = server
    (root / "fake.pth").write_bytes(b"not pytorch-fid's inception")
    with pytest.raises(WeightsMismatch, match="not the official 6726825d"):
        fetch("inception", tmp_path / "dest", url=f"{base}/fake.pth", progress=False)
    assert list((tmp_path / "dest").iterdir()) == []  # no partial or temp file left


def test_cli_fetch_with_a_progress_bar_and_errors(server, tmp_path):
    root, base = server
    (root / "sfd_face.pth").write_bytes(b"x" * 300_000)
    cmd = [sys.executable, "-m", "talkbench.cli", "models", "fetch", "s3fd", "--dest", str(tmp_path / "d")]
    r = subprocess.run(cmd + ["--url", f"{base}/sfd_face.pth"], capture_output=True, text=True)
    assert r.returncode == 0 and "UNVERIFIED" in r.stdout and "sfd_face.pth" in r.stderr, r.stdout + r.stderr
    r = subprocess.run(cmd + ["--url", f"{base}/missing.pth"], capture_output=True, text=True)
    assert r.returncode == 1 and "cannot download s3fd" in r.stderr and "Traceback" not in r.stderr
    r = subprocess.run(cmd + ["--url", "file:///etc/passwd"], capture_output=True, text=True)
    assert r.returncode == 2 and "only http(s)" in r.stderr


def test_models_list_says_where_a_missing_file_comes_from(tmp_path):
    import os

    env = dict(os.environ, TALKBENCH_CACHE=str(tmp_path / "empty"))
    env.pop("TALKBENCH_SYNCNET", None)
    r = subprocess.run([sys.executable, "-m", "talkbench.cli", "models", "list"], capture_output=True, text=True,
                       env=env)
    assert r.returncode == 0
    block = r.stdout.split("syncnet:", 1)[1].split("\ns3fd:", 1)[0]
    assert "MISSING" in block and "official URL: https://www.robots.ox.ac.uk/" in block
    inception = r.stdout.split("inception:", 1)[1].split("\nfan:", 1)[0]
    assert "official sha256: 6726825d" in inception
