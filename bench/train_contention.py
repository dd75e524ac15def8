"""Reference-model training step time idle and beside one busy process, per thread setting (issue 17.8).

Each case runs ``refmodel.train.train`` (``tiny`` config, the demo's) in a fresh subprocess on a small shard set,
twice (``--short`` and ``--long`` steps) so that start-up and the final checkpoint cancel out:
step time = (t_long - t_short) / (long - short), wall and CPU seconds of that process alone. Cases:

* ``default``: torch's default intra-op threads (one per core) and OpenMP's default wait policy;
* ``passive``: the same with ``OMP_WAIT_POLICY=PASSIVE`` (idle OpenMP threads sleep instead of spinning);
* ``1thread``: ``torch.set_num_threads(1)`` (what ``talkbench train`` does on a CPU since this issue).

Each idle, then beside one busy process (a single-threaded numpy loop pinned to nothing, like another
user's job). The machine is shared: compare ratios within one run, not absolute times across runs.

    python bench/train_contention.py [--short 5 --long 25]
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
CASES = {"default": {}, "passive": {"OMP_WAIT_POLICY": "PASSIVE"}, "1thread": {"TALKBENCH_BENCH_THREADS": "1"}}
BUSY = "import numpy as np\na = np.random.rand(400, 400)\nwhile True:\n    a = a @ a; a /= a.max()\n"

CHILD = r"""
import json, os, resource, sys, time
sys.path.insert(0, {repo!r})
import torch
n = os.environ.get("TALKBENCH_BENCH_THREADS")
if n:
    torch.set_num_threads(int(n))
from refmodel.train import train
r0, t0 = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter()
train({prep!r}, {run!r}, "tiny", steps={steps}, seed=0, resume=False, sync_expert={expert!r},
      overrides={{"checkpoint_every": 10**6, "log_every": 10**6, "num_workers": 0}}, progress=False)
r1 = resource.getrusage(resource.RUSAGE_SELF)
print(json.dumps({{"wall": time.perf_counter() - t0, "cpu": (r1.ru_utime + r1.ru_stime) - (r0.ru_utime + r0.ru_stime),
                  "threads": torch.get_num_threads()}}))
"""


def _shards(tmp: Path) -> tuple[Path, Path]:
    sys.path.insert(0, str(REPO))
    from refmodel.sync_training import train_sync_expert
    from refmodel.testing import build_fixed_crop_shards, shared_clip_specs

    videos = REPO.parent / "shared" / "data" / "videos"
    prep = build_fixed_crop_shards(shared_clip_specs(videos, stop=60), tmp / "prep", crop_size=128)
    expert = train_sync_expert(prep, tmp / "expert" / "sync_expert.pt", "tiny", steps=5, seed=0)
    return prep, expert


def _run(prep: Path, expert: Path, tmp: Path, steps: int, env_extra: dict) -> dict:
    code = CHILD.format(repo=str(REPO), prep=str(prep), run=str(tmp / f"run{steps}"), steps=steps, expert=str(expert))
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_NUM_THREADS", "OMP_WAIT_POLICY", "MKL_NUM_THREADS")}
    env.update(env_extra)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--short", type=int, default=5)
    ap.add_argument("--long", type=int, default=25)
    ap.add_argument("--json", default=None)
    args = ap.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as t:
        tmp = Path(t)
        prep, expert = _shards(tmp)
        for busy in (False, True):
            burner = subprocess.Popen([sys.executable, "-c", BUSY], env=dict(os.environ, OMP_NUM_THREADS="1")) \
                if busy else None
            try:
                time.sleep(1.0 if busy else 0.0)
                for name, env in CASES.items():
                    a = _run(prep, expert, tmp, args.short, env)
                    b = _run(prep, expert, tmp, args.long, env)
                    n = args.long - args.short
                    rows.append({"case": name, "busy": busy, "threads": b["threads"],
                                 "step_wall_s": (b["wall"] - a["wall"]) / n, "step_cpu_s": (b["cpu"] - a["cpu"]) / n})
                    r = rows[-1]
                    print(f"{name:<8} {'beside a busy process' if busy else 'idle':<22} threads {r['threads']}  "
                          f"{r['step_wall_s']:.3f} s/step wall, {r['step_cpu_s']:.3f} CPU-s/step", flush=True)
            finally:
                if burner is not None:
                    burner.kill()
                    burner.wait()
    idle = {r["case"]: r["step_wall_s"] for r in rows if not r["busy"]}
    for r in rows:
        if r["busy"]:
            print(f"{r['case']:<8} busy / idle wall: {r['step_wall_s'] / idle[r['case']]:.2f}x")
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
