"""Where fan-out work runs: this process, a LocalCluster on loopback, or a Dask cluster you started.

``Executor(scheduler)``: ``None`` starts a LocalCluster (processes, one thread each) whose scheduler,
workers and dashboard listen on 127.0.0.1 only (``host`` / ``dashboard`` widen that on purpose, e.g.
``dashboard="0.0.0.0:8787"`` to watch it from another machine); a ``tcp://host:port`` address or a
``dask.distributed.Client`` uses that cluster; ``"inline"`` runs every task here, in order (debugging,
profiling, tests: same numbers). The interface is the subset of Dask futures that prep and evalkit use, so
one code path drives all three.
"""
from __future__ import annotations

import logging
import os
import uuid
from collections import deque

log = logging.getLogger(__name__)

INLINE = "inline"
LOOPBACK = "127.0.0.1"
_INLINE_ALIASES = (INLINE, "synchronous")


def _resolve(a):
    if isinstance(a, InlineFuture):
        return a.result()
    if isinstance(a, list):
        return [_resolve(x) for x in a]
    return a


class InlineFuture:
    """A task run in this process when its result is first asked for (so progress is shown as it goes);
    futures among its arguments are resolved first, as Dask does. ``result()`` returns the value or raises
    the task's exception."""

    _PENDING = object()

    def __init__(self, key: str, fn, args, kwargs):
        self.key, self._call = key, (fn, args, kwargs)
        self._value, self._error = self._PENDING, None

    def result(self):
        if self._value is self._PENDING and self._error is None:
            fn, args, kwargs = self._call
            try:
                self._value = fn(*[_resolve(a) for a in args], **kwargs)
            except Exception as e:  # noqa: BLE001 - re-raised below, as a Dask future would
                self._error = e
            self._call = None
        if self._error is not None:
            raise self._error
        return self._value

    def release(self):
        pass


class _InlineCompleted:
    def __init__(self, futures):
        self._queue = deque(futures)

    def add(self, future):
        self._queue.append(future)

    def __iter__(self):
        while self._queue:
            yield self._queue.popleft()


class Executor:
    def __init__(self, scheduler=None, n_workers: int | None = None, threads_per_worker: int = 1,
                 memory_limit="auto", n_tasks: int | None = None, dashboard: str | None = None,
                 host: str = LOOPBACK):
        self.client = self.cluster = None
        self._own_client = True
        self.inline = scheduler in _INLINE_ALIASES or n_tasks == 0
        self.dashboard_link = None
        if self.inline:
            return
        from dask.distributed import Client, LocalCluster

        if scheduler is None:
            n = n_workers or max(1, (os.cpu_count() or 1) // max(1, threads_per_worker))
            if n_tasks:
                n = max(1, min(n, n_tasks))
            self.cluster = LocalCluster(n_workers=n, threads_per_worker=threads_per_worker, processes=True,
                                        memory_limit=memory_limit, host=host,
                                        dashboard_address=dashboard or f"{host}:0")
            self.client = Client(self.cluster)
        elif isinstance(scheduler, str):
            self.client = Client(scheduler)
        else:  # a dask.distributed.Client of the caller's
            self.client, self._own_client = scheduler, False
        self.dashboard_link = self.client.dashboard_link
        self._run = uuid.uuid4().hex[:12]  # task keys only; never part of a result

    def submit(self, fn, *args, key: str | None = None, retries: int = 0, **kwargs):
        key = key or f"{getattr(fn, '__name__', 'task')}-{uuid.uuid4().hex[:8]}"
        if self.inline:
            return InlineFuture(key, fn, args, kwargs)
        return self.client.submit(fn, *args, key=f"{key}-{self._run}", retries=retries, pure=False, **kwargs)

    def as_completed(self, futures):
        if self.inline:
            return _InlineCompleted(futures)
        from dask.distributed import as_completed

        return as_completed(futures, with_results=False)

    def map_ordered(self, fn, tasks: list, on_result, on_error=None, key_prefix: str | None = None) -> None:
        """Run ``fn(task)`` for every task; call ``on_result(i, value)`` in task order (early arrivals are
        buffered). A task that raises (or whose worker died) gives ``on_error(i, exc)``'s value instead;
        without ``on_error`` the exception propagates."""
        prefix = key_prefix or getattr(fn, "__name__", "task")
        futures = [self.submit(fn, t, key=f"{prefix}-{i}") for i, t in enumerate(tasks)]
        index = {f.key: i for i, f in enumerate(futures)}
        pending, nxt = {}, 0
        for f in self.as_completed(futures):
            i = index[f.key]
            try:
                pending[i] = f.result()
            except Exception as e:  # noqa: BLE001
                if on_error is None:
                    raise
                pending[i] = on_error(i, e)
            f.release()
            while nxt in pending:
                on_result(nxt, pending.pop(nxt))
                nxt += 1

    def close(self) -> None:
        if self.client is not None and self._own_client:
            self.client.close()
        if self.cluster is not None:
            self.cluster.close()
        self.client = self.cluster = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False


__all__ = ["Executor", "InlineFuture", "INLINE", "LOOPBACK"]
