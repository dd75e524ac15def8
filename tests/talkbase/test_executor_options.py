"""The LocalCluster listens where it is told on purpose (a cluster dashboard), loopback otherwise."""
from __future__ import annotations

import socket

from talkbase.executor import Executor


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_explicit_dashboard_address_and_host():
    port = _free_port()
    with Executor(None, 1, n_tasks=1, dashboard=f"127.0.0.1:{port}", host="127.0.0.1") as ex:
        assert ex.dashboard_link.startswith(f"http://127.0.0.1:{port}/")
        assert ex.client.scheduler_info()["address"].startswith("tcp://127.0.0.1:")
        assert ex.submit(sum, [1, 2], key="t").result() == 3
