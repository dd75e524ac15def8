"""Fixtures shared by the refmodel tests: one real prep output for the whole session, one intra-op thread."""
from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def prep_out(videos_dir, tmp_path_factory):
    """The real prep job on the first 60 frames of the two 480p shared clips (built once per session)."""
    from refmodel.testing import prep_trimmed_clips

    return prep_trimmed_clips(videos_dir, tmp_path_factory.mktemp("refmodel_prep"), num_frames=60)


@pytest.fixture(scope="session", autouse=True)
def _one_thread():
    # the machine is shared: one intra-op thread is faster here, and training is bitwise-stable with it
    from talkbase.threads import one_thread

    with one_thread():
        yield


@pytest.fixture(scope="session")
def oneshot_data(bfm_dir, tmp_path_factory):
    """A small synthetic set with blinks (``talkbench.demo_data``: the mouth opening is a known function of
    the audio; 2 speakers x 2 clips x 3 s, seed 5, each speaker's second clip ``test``) through the real prep
    job with the 3DMM fit: (videos dir, prep output). Built once per session."""
    from prep.config import PrepConfig
    from prep.job import run_prep
    from talkbench.demo_data import synthesize_dataset

    root = tmp_path_factory.mktemp("oneshot_data")
    videos = root / "videos"
    synthesize_dataset(videos, n_identities=2, clips_per_identity=2, seconds=3.0, seed=5, alt_fps=None)
    prep_out = root / "prep"
    run_prep(videos / "speakers.csv", prep_out, PrepConfig(frames_per_shard=64), scheduler="inline", progress=False)
    return videos, prep_out


@pytest.fixture(scope="session")
def synthetic_prep(oneshot_data):
    """The same synthetic set's prep output (one prep run serves the lip-sync and the one-shot models)."""
    return oneshot_data[1]


# a few steps of every stage: each part trains for real, in seconds
ONESHOT_FAST = {"ae.steps": 300, "lipsync.steps": 150, "lipsync.batch_size": 32, "motion.steps": 60,
                "motion.window": 32, "motion.batch_size": 8, "render.steps": 12, "render.batch_size": 4,
                "render.checkpoint_every": 6}


@pytest.fixture(scope="session")
def oneshot_run(oneshot_data, tmp_path_factory):
    """The oneshot3dmm model trained with ``ONESHOT_FAST`` on ``oneshot_data``: its run directory."""
    from refmodel.oneshot.train import train

    run = tmp_path_factory.mktemp("oneshot_run")
    train(oneshot_data[1], run, "tiny", seed=0, overrides=ONESHOT_FAST, progress=False)
    return run
