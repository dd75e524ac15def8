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
def synthetic_prep(tmp_path_factory):
    """The real prep job on a small synthetic set (``talkbench.demo_data``: the mouth opening is a known
    function of the audio): 2 speakers x 2 clips x 3 s, each speaker's second clip ``test``."""
    from prep.config import PrepConfig
    from prep.faces import FaceConfig
    from prep.job import run_prep
    from talkbench.demo_data import synthesize_dataset

    root = tmp_path_factory.mktemp("synthetic")
    synthesize_dataset(root / "videos", n_identities=2, clips_per_identity=2, seconds=3.0, seed=5, alt_fps=None)
    run_prep(root / "videos" / "speakers.csv", root / "prep", PrepConfig(faces=FaceConfig(fit_3dmm=False)),
             scheduler="inline", progress=False)
    return root / "prep"
