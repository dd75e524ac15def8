"""talkbase.threads: the serial background stage prep's crops run in."""
from __future__ import annotations

import threading
import time

import pytest

from talkbase.threads import SerialWorker


def test_serial_worker_runs_calls_in_order_in_one_thread_and_bounds_the_queue():
    done, threads, most_pending = [], set(), [0]
    with SerialWorker(depth=2) as w:
        for i in range(20):
            w.submit(lambda i=i: (time.sleep(0.002 * (i % 3)), threads.add(threading.get_ident()), done.append(i)))
            most_pending[0] = max(most_pending[0], len(w._pending))
    assert done == list(range(20))  # the exit drained everything, in submission order
    assert len(threads) == 1 and threading.get_ident() not in threads
    assert most_pending[0] <= 2


def test_serial_worker_raises_a_calls_error_and_drops_the_rest_on_error():
    ran = []
    w = SerialWorker(depth=4)
    w.submit(lambda: 1 / 0)
    with pytest.raises(ZeroDivisionError):
        w.drain()
    held = threading.Event()  # never set: the first call holds the thread (for 2 s) while the block fails
    with pytest.raises(RuntimeError, match="stop"):
        with SerialWorker(depth=4) as w2:
            w2.submit(lambda: held.wait(2.0))
            for i in range(3):
                w2.submit(lambda i=i: ran.append(i))
            raise RuntimeError("stop")
    assert ran == []  # not started before the block left: dropped


def _in_fresh_process(code: str):
    """What ``code`` prints last, as JSON, from a fresh interpreter with two BLAS threads by default (the
    limits are process-wide and permanent: prep's processes set them once)."""
    import json
    import os
    import subprocess
    import sys

    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                       env=dict(os.environ, OPENBLAS_NUM_THREADS="2"))
    return json.loads(r.stdout.strip().splitlines()[-1])


def test_limit_process_threads_limits_every_blas_pool_for_good():
    out = _in_fresh_process(
        "import json, numpy\n"
        "from threadpoolctl import threadpool_info\n"
        "from talkbase.threads import limit_process_threads\n"
        "before = [i['num_threads'] for i in threadpool_info() if i['user_api'] == 'blas']\n"
        "limit_process_threads(1)\n"
        "import gc; gc.collect()\n"
        "after = {i['filepath']: i['num_threads'] for i in threadpool_info() if i['user_api'] == 'blas'}\n"
        "print(json.dumps({'before': before, 'after': after}))\n")
    assert out["before"] and max(out["before"]) == 2  # numpy's pool as the environment set it
    assert len(out["after"]) > len(out["before"])  # scipy's own BLAS, loaded by the call, is covered too
    assert set(out["after"].values()) == {1}


def test_limit_process_threads_can_leave_scipy_unloaded_until_a_later_call():
    # a segment task limits what is loaded without importing scipy.linalg (start-up); finalising's call,
    # before the 3DMM fit, loads and limits it
    first, second = _in_fresh_process(
        "import json, sys\n"
        "from threadpoolctl import threadpool_info\n"
        "from talkbase.threads import limit_process_threads\n"
        "def state():\n"
        "    return {'scipy': 'scipy.linalg' in sys.modules,\n"
        "            'blas': [i['num_threads'] for i in threadpool_info() if i['user_api'] == 'blas']}\n"
        "limit_process_threads(1, load_scipy=False)\n"
        "first = state()\n"
        "limit_process_threads(1)\n"
        "print(json.dumps([first, state()]))\n")
    assert not first["scipy"] and first["blas"] and set(first["blas"]) == {1}
    assert second["scipy"] and len(second["blas"]) > len(first["blas"]) and set(second["blas"]) == {1}
