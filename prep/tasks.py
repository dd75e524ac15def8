"""How a prep job's clips run: the first task of every clip (probe; a short clip processed at once, a long one
planned as segments), the Dask schedule and the inline one (a clip finalised in a second thread while the
next is tracked), and the warm-up of a process that runs them. The same functions make the same files
whichever schedule runs them.
"""
from __future__ import annotations

from talkbase.executor import Executor
from talkbase.threads import keep_freed_memory

from . import media
from .config import PrepConfig
from .errors import NoAudioStream, UndecodableMedia
from .inputs import InputItem
from .pipeline import (commit_failure, failure_record, finalize_long_clip, process_clip, safe_segment,
                       segment_bounds)


FINALIZE_QUEUE = 2  # short clips finalised or waiting for it in an inline job: each holds its frames table

# ---------------------------------------------------------------- the first task of every clip

def start_clip(it: InputItem, cfg: PrepConfig, work_root: str, sync_scorer=None, finalize_in=None):
    """Probe a clip; process it in this task when short, else return its segment plan. With ``finalize_in``
    a short clip's finalising goes there (see :func:`prep.pipeline.process_clip`)."""
    try:
        info = media.probe(it.source_path)
        if not info.has_audio:
            raise NoAudioStream(it.source_path, "no audio stream")
        too_long = media.check_audio_length(info)
        if too_long:
            raise UndecodableMedia(it.source_path, too_long)
    except Exception as e:  # noqa: BLE001
        return commit_failure(it, failure_record(it, e), work_root)
    src = {"width": info.width, "height": info.height, "src_fps": info.src_fps, "video_codec": info.video_codec}
    bounds = segment_bounds(info.est_num_frames, cfg.segment_frames)
    if len(bounds) == 1:
        return process_clip(it, cfg, work_root, src, sync_scorer, finalize_in)
    return {"status": "segment", "bounds": bounds, "src_info": src}


def run_inline(executor: Executor, items: list[InputItem], cfg: PrepConfig, work_root: str, on_done,
                sync_scorer=None) -> None:
    """The inline job: one clip after another in this thread, each short clip's finalising (audio features,
    3DMM fit, QA, sync QA, the commit) in a second thread while the next clips are decoded and tracked. At
    most ``FINALIZE_QUEUE`` clips wait for or are in finalising (a short clip tracked while a long one is
    finalised does not stall the tracking); ``on_done`` is called in input order, here. Long clips run their
    segments and finalising here, in turn. The same functions make the same files as a Dask worker's."""
    from concurrent.futures import Future, ThreadPoolExecutor

    pending: list = []  # [(item, Future)] of the clips handed to the finaliser, in input order

    def collect(keep: int = 0):
        """Report the finalised clips at the head of ``pending``; wait until at most ``keep`` remain."""
        while pending and (len(pending) > keep or pending[0][1].done()):
            it, fut = pending.pop(0)
            try:
                res = fut.result()
            except Exception as e:  # noqa: BLE001 - as a crashed task of a worker
                res = failure_record(it, e, stage="worker")
            on_done(it, res)

    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="talkbench-finalize") as finalizer:
        try:
            for it in items:
                try:
                    res = start_clip(it, cfg, work_root, sync_scorer, finalize_in=finalizer)
                except Exception as e:  # noqa: BLE001
                    res = failure_record(it, e, stage="worker")
                if isinstance(res, Future):
                    pending.append((it, res))
                    collect(keep=FINALIZE_QUEUE)
                    continue
                collect()  # a long clip or a failure: reported after the clips before it
                if res.get("status") == "segment":
                    res = _submit_long_clip(executor, it, res, cfg, work_root, sync_scorer).result()
                on_done(it, res)
        finally:
            collect()


def _submit_long_clip(executor: Executor, it: InputItem, plan: dict, cfg: PrepConfig, work_root: str,
                      sync_scorer=None):
    """A long clip's plan as segment tasks + the finalising task (returned)."""
    segs = [executor.submit(safe_segment, it, a, b, cfg, work_root, i, key=f"seg-{it.key}-{i}", retries=2)
            for i, (a, b) in enumerate(plan["bounds"])]
    return executor.submit(finalize_long_clip, it, segs, cfg, work_root, plan["src_info"], sync_scorer,
                           key=f"final-{it.key}", retries=2)


def run_tasks(executor: Executor, items: list[InputItem], cfg: PrepConfig, work_root: str, on_done,
               sync_scorer=None) -> None:
    """One ``start_clip`` task per clip; a long clip's plan becomes segment tasks + a finalising task."""
    if executor.inline:
        return run_inline(executor, items, cfg, work_root, on_done, sync_scorer)
    by_key, futures = {}, []
    for it in items:
        f = executor.submit(start_clip, it, cfg, work_root, sync_scorer, key=f"start-{it.key}", retries=2)
        by_key[f.key] = it
        futures.append(f)
    done = executor.as_completed(futures)
    for f in done:
        it = by_key.pop(f.key)
        try:
            res = f.result()
        except Exception as e:  # noqa: BLE001 - the worker died repeatedly, or the task crashed
            on_done(it, failure_record(it, e, stage="worker"))
            continue
        if res.get("status") == "segment":
            fin = _submit_long_clip(executor, it, res, cfg, work_root, sync_scorer)
            by_key[fin.key] = it
            done.add(fin)
            continue
        on_done(it, res)


# ---------------------------------------------------------------- start-up

def warm_process(backend: str = "dlib", detector: str = "hog") -> None:
    """Start loading this process's face models and heavy modules in the background (a Dask worker at
    cluster start, or the inline job before it scans its inputs), so the first task does not pay them."""
    import threading

    keep_freed_memory()

    def imports():
        from . import finalize, pipeline, shots  # noqa: F401
        from .faces import tracking  # noqa: F401

        import cv2  # noqa: F401
        import scenedetect.detectors  # noqa: F401
        # what the first clip's tables and finalising import otherwise in the task's thread (~0.5 s):
        # pyarrow's first array conversion imports pandas; MFCC scipy.fftpack; the 3DMM fit scipy.linalg
        import pyarrow as pa
        import python_speech_features  # noqa: F401
        import scipy.linalg  # noqa: F401

        pa.array([0])

    if backend == "dlib":
        from .faces.backends import preload, thread_detector
        from .faces.scans import scan_pool

        preload(detector)
        scan_pool().submit(thread_detector, detector)  # the scan thread's own detector, built now
    threading.Thread(target=imports, name="talkbench-warm", daemon=True).start()


__all__ = ["start_clip", "run_tasks", "run_inline", "warm_process"]
