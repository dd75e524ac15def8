"""The inline job's schedule (prep.tasks.run_inline): clips tracked in turn, finalised in a second thread,
reported in input order, and a slow finalising does not stall the tracking of the next clips."""
from __future__ import annotations

import threading

from prep import tasks
from prep.config import PrepConfig
from prep.inputs import InputItem
from talkbase.executor import Executor


def _items(n):
    return [InputItem(source_path=f"/nowhere/c{i}.mp4", clip_id=f"c{i}") for i in range(n)]


def test_a_slow_finalising_does_not_stall_tracking_and_reports_stay_in_input_order(monkeypatch):
    items = _items(5)
    started: list[str] = []
    third_started = threading.Event()
    in_flight = {"now": 0, "max": 0}
    lock = threading.Lock()

    def finalise(it):
        with lock:
            in_flight["now"] += 1
            in_flight["max"] = max(in_flight["max"], in_flight["now"])
        try:
            if it.clip_id == "c0":  # the first clip's finalising outlasts the tracking of the next two
                assert third_started.wait(5), "tracking waited for the first clip's finalising"
            return {"status": "ok", "clip": it.clip_id}
        finally:
            with lock:
                in_flight["now"] -= 1

    def fake_start_clip(it, cfg, work_root, sync_scorer=None, finalize_in=None):
        started.append(it.clip_id)
        if it.clip_id == "c2":
            third_started.set()
        if it.clip_id == "c3":  # a clip that fails before finalising: a record, reported in its place
            return {"status": "failed", "clip": it.clip_id}
        return finalize_in.submit(finalise, it)

    monkeypatch.setattr(tasks, "start_clip", fake_start_clip)
    done: list[tuple[str, str]] = []
    tasks.run_inline(Executor("inline"), items, PrepConfig(), "/nowhere", lambda it, res: done.append(
        (it.clip_id, res.get("status"))))
    assert started == ["c0", "c1", "c2", "c3", "c4"]
    assert done == [("c0", "ok"), ("c1", "ok"), ("c2", "ok"), ("c3", "failed"), ("c4", "ok")]
    assert in_flight["max"] == 1  # one finalising thread: the clips wait for it in turn


def test_clips_waiting_for_finalising_are_bounded(monkeypatch):
    n, q = 7, tasks.FINALIZE_QUEUE
    items = _items(n)
    release = [threading.Event() for _ in range(n)]
    unfinished_at_start: list[int] = []
    futures: list = []

    def finalise(k):
        assert release[k].wait(5), f"clip {k}'s finalising was waited for before it could run"
        return {"status": "ok"}

    def fake_start_clip(it, cfg, work_root, sync_scorer=None, finalize_in=None):
        k = len(futures)
        unfinished_at_start.append(sum(not f.done() for f in futures))
        if k >= q:
            release[k - q].set()  # the finaliser may take clip k - q now
        if k == n - 1:
            for e in release:
                e.set()
        futures.append(finalize_in.submit(finalise, k))
        return futures[-1]

    monkeypatch.setattr(tasks, "start_clip", fake_start_clip)
    done: list[tuple] = []
    tasks.run_inline(Executor("inline"), items, PrepConfig(), "/nowhere",
                     lambda it, res: done.append((it.clip_id, res.get("status"))))
    assert done == [(it.clip_id, "ok") for it in items]
    # with the finaliser held back, clip k starts while min(k, q) clips wait for it: the tracking goes on
    # past a slow finalising, and the clips held in memory stay bounded
    assert q >= 2 and unfinished_at_start == [min(k, q) for k in range(n)]
