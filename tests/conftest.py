"""Shared fixtures: where the real clips and the 3DMM basis live, and where tests save artifacts."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("TALKBENCH_SHARED", REPO.parent / "shared"))
VIDEOS = SHARED / "data" / "videos"
BFM = SHARED / "models" / "3ddfa_bfm"
ARTIFACTS = Path(os.environ.get("TALKBENCH_TEST_ARTIFACTS", REPO / "artifacts"))

# the prep job finds the 3DMM basis through this variable (workers inherit it)
os.environ.setdefault("TALKBENCH_3DDFA_DIR", str(BFM))

REAL_CLIPS = ["w2l_input3.mp4", "w2l_input4.mp4", "latentsync_demo1.mp4", "latentsync_demo2.mp4"]


@pytest.fixture(scope="session")
def videos_dir() -> Path:
    if not VIDEOS.is_dir():
        pytest.fail(f"real clips missing: {VIDEOS} (CI checks out ../shared beside the repo)")
    return VIDEOS


@pytest.fixture(scope="session")
def bfm_dir() -> Path:
    if not BFM.is_dir():
        pytest.fail(f"3DMM basis missing: {BFM}")
    return BFM


@pytest.fixture(scope="session")
def artifact_dir() -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    return ARTIFACTS
