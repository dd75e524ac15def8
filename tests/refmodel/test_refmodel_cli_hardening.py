"""The first hour with the reference model: short runs finish, bad checkpoints are one-line errors."""
from __future__ import annotations

import subprocess
import sys

import pytest
import torch


@pytest.mark.parametrize("steps", [1, 2, 3, 4, 5, 9, 10, 11, 15, 20, 40])
def test_learning_rate_schedule_works_for_any_step_count(steps):
    from refmodel.sync_training import one_cycle

    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.1)
    sched = one_cycle(opt, 0.1, steps)
    for _ in range(steps):  # torch's OneCycleLR with pct_start=0.1 divides by zero at 10 steps
        opt.step()
        sched.step()


def test_train_with_ten_steps_and_ten_sync_steps_finishes(prep_out, tmp_path):
    r = subprocess.run([sys.executable, "-m", "talkbench.cli", "train", str(prep_out), "--out", str(tmp_path / "run"),
                        "--steps", "10", "--set", "sync.steps=10", "--set", "batch_size=2", "--no-progress"],
                       capture_output=True, text=True, timeout=900)
    assert r.returncode == 0 and "Traceback" not in r.stderr, r.stderr[-2000:]
    assert (tmp_path / "run" / "checkpoint.pt").is_file()
