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
