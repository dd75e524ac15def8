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
