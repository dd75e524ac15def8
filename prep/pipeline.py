"""Per-clip processing: pure functions of (video, config) → committed part files, runnable on any worker.

A source is processed as one or more *segments* (a long video is split so one file doesn't pin a worker):
shot detection and face tracking on every decoded frame; then *finalised* (:mod:`prep.finalize`): its
shots, and per shot audio features, 3DMM fit, QA, sync QA and the commit. Every file is written
atomically and the ``done/<key>.json`` marker is written last, so a clip is either committed or absent:
a retried or resumed task rewrites the same bytes and never duplicates rows.
"""
from __future__ import annotations

import json
import logging
import os
import time
import traceback
from pathlib import Path

from talkbase.fileio import atomic_write_json
from talkbase.threads import SerialWorker, limit_process_threads, prefetch

from . import media, qa
from .config import PrepConfig
from .errors import FaceError, MediaError, TalkbenchError
from .failures import TRANSIENT_STAGE, is_transient
from .frames import convert_ahead
from .inputs import InputItem
from .shards import encode_crop, frames_table, write_table_atomic

log = logging.getLogger(__name__)


# ---------------------------------------------------------------- work-dir layout

class WorkDir:
    """``OUT/.work/<config hash>/``: parts/ (per-clip tables), segments/, done/ (commit markers)."""

    def __init__(self, root):
        self.root = Path(root)

    def part(self, key: str, kind: str) -> Path:
        return self.root / "parts" / f"{key}.{kind}.parquet"

    def segment(self, key: str, i: int) -> Path:
        return self.root / "segments" / key / f"seg-{i:05d}.parquet"

    def segment_summary(self, key: str, i: int) -> Path:
        return self.root / "segments" / key / f"seg-{i:05d}.json"

    def done(self, key: str) -> Path:
        return self.root / "done" / f"{key}.json"

    def read_done(self, key: str) -> dict | None:
        p = self.done(key)
        return json.loads(p.read_text()) if p.exists() else None


def source_stat(path) -> dict:
    st = os.stat(path)
    return {"size": st.st_size, "mtime_ns": st.st_mtime_ns}


def segment_bounds(est_frames: int, segment_frames: int) -> list[tuple[int, int | None]]:
    """[start, stop) per segment; the last is open-ended so the exact count comes from decoding."""
    n = max(1, -(-est_frames // segment_frames)) if est_frames > segment_frames * 1.25 else 1
    return [(i * segment_frames, (i + 1) * segment_frames if i < n - 1 else None) for i in range(n)]


# ---------------------------------------------------------------- segments

CHUNK_BYTES = 24 << 20  # decoded frames per chunk: below glibc's mmap threshold (see media.iter_frames)

def _frame_rows(rows: list[dict], cfg: PrepConfig, blur: list) -> list[dict]:
    """Tracker rows → frames-table rows: the crop encoded, the blur sampled on every 5th face frame."""
    for r in rows:
        crop = r.pop("crop")
        if r["face_found"] and r["frame_index"] % 5 == 0:
            blur.append(qa.blur_score(crop))
        r["crop"] = None if crop is None else encode_crop(crop, cfg.crop_codec, cfg.jpeg_quality)
    return rows


def _with_next(items):
    """(item, the item after it or None) for each item."""
    it = iter(items)
    cur = next(it, None)
    while cur is not None:
        nxt = next(it, None)
        yield cur, nxt
        cur = nxt


def process_segment(it: InputItem, start: int, stop: int | None, cfg: PrepConfig, work_root: str,
                    index: int = 0, write: bool = True) -> dict:
    """Shots and faces for frames [start, stop) of one video → a segment table (no 3DMM yet) + a summary.

    Every decoded frame goes to the shot detector (:mod:`prep.shots`), then to the face tracker; at a
    (raw) cut the tracker is replaced by a fresh one before it sees the first frame after the cut, so
    tracks never cross a cut. The summary lists the raw cuts and one *piece* per tracker (its first
    frame and tracker summary). A segment after the first decodes one frame before ``start`` for the
    detector only, so a cut on the boundary is found. With ``write`` the table goes to the work dir (long
    videos); otherwise it is returned in memory. Rows keep source frame indices and the input's clip id;
    :mod:`prep.finalize` applies the detector's minimum shot length and renames rows per shot.
    """
    from .faces import FaceTracker
    from .faces.scans import make_backend, scan_ahead
    from .shots import ShotDetector

    # one thread per task: numbers must not depend on the worker's thread count (scipy's BLAS is limited
    # where it is used: finalising)
    limit_process_threads(load_scipy=False)
    work = WorkDir(work_root)
    seg_path, sum_path = work.segment(it.key, index), work.segment_summary(it.key, index)
    if write and seg_path.exists() and sum_path.exists():  # a retried task: already written
        return json.loads(sum_path.read_text())
    detector = ShotDetector(cfg.shots) if cfg.shots.enabled else None
    first = start - 1 if detector is not None and start > 0 else start
    state = {"tracker": None}
    pieces, cuts, rows = [], [], []
    t0 = time.perf_counter()

    def output(tracker, tracked: list[dict], blur: list):  # crops, JPEG, blur: in the output thread
        for row in _frame_rows(tracker.crop(tracked), cfg, blur):
            row["clip_id"] = it.clip_id
            rows.append(row)

    backend = make_backend(cfg.faces, cfg.device)  # one for the segment's trackers

    def track(chunk, lo: int, hi: int):
        if hi > lo:
            tracker = state["tracker"]
            tracked = tracker.track(media.FrameChunk(chunk.start + lo, chunk.frames[lo:hi]))
            out.submit(output, tracker, tracked, pieces[-1]["blur"])

    def new_piece(t: int, scan=None):
        if state["tracker"] is not None:
            pieces[-1].update(state["tracker"].summary())
        state["tracker"] = FaceTracker(cfg.faces, backend=backend, scan_ahead=True)
        if scan is not None:
            state["tracker"].expect_scan(t, scan)
        pieces.append({"start": t, "blur": []})

    def decoded():  # decoding and the shot detector run a chunk ahead, in a thread (both mostly GIL-free)
        for chunk in media.iter_planar(it.source_path, chunk_size=cfg.chunk_size, start=first, stop=stop):
            cut_flags = [detector.feed(chunk.start + j, f) if detector is not None else False
                         for j, f in enumerate(chunk.frames)]
            # the region the face was last seen in, converted and prepared for the backend here (GIL-free)
            tracker = state["tracker"]
            region = None if tracker is None else tracker.face_region
            for f in chunk.frames:
                convert_ahead(f, region, backend.prepare)
            # a new shot's tracker starts with a full-frame scan: it starts now, in the scan thread
            scans = {chunk.start + j: scan_ahead(f, cfg.faces, backend) for j, f in enumerate(chunk.frames)
                     if chunk.start + j == start or (cut_flags[j] and chunk.start + j > start)}
            yield chunk, cut_flags, scans

    # the crops are warped, encoded and blur-scored a chunk behind the tracker, in one thread (in order);
    # scheduled full-frame face scans start in another as their chunk arrives (FaceTracker's scan_ahead)
    with SerialWorker(depth=2, name="talkbench-crops") as out:
        for (chunk, cut_flags, scans), following in _with_next(prefetch(decoded(), depth=2)):
            if following is not None and state["tracker"] is not None:
                state["tracker"].look_ahead(following[0])
            lo = 0
            for j, cut in enumerate(cut_flags):
                t = chunk.start + j
                if t < start:  # the detector's warm-up frame
                    lo = j + 1
                elif cut or state["tracker"] is None:
                    track(chunk, lo, j)
                    if cut:
                        cuts.append(t)
                    new_piece(t, scans.get(t))
                    lo = j
            track(chunk, lo, len(chunk.frames))
    if state["tracker"] is not None:
        pieces[-1].update(state["tracker"].summary())
    summary = {"index": index, "start": start, "num_frames": len(rows), "cuts": cuts, "pieces": pieces,
               "seconds": time.perf_counter() - t0}
    table = frames_table(rows)
    if not write:
        summary["table"] = table
        return summary
    write_table_atomic(table, seg_path, "frames")
    atomic_write_json(sum_path, summary)
    return summary


# ---------------------------------------------------------------- finalise (prep.finalize)

def finalize_clip(it: InputItem, segments: list[dict], cfg: PrepConfig, work_root: str, src_info: dict,
                  sync_scorer=None) -> dict:
    """See :func:`prep.finalize.finalize_clip` (shots, audio features, 3DMM, QA, sync QA, the commit)."""
    from .finalize import finalize_clip as finalize

    return finalize(it, segments, cfg, work_root, src_info, sync_scorer)


def failure_record(item: InputItem, exc: BaseException, stage: str | None = None) -> dict:
    """The failure row of ``item``. An environment failure (:func:`prep.failures.is_transient`) gets
    ``transient=True`` and stage ``environment``: :func:`commit_failure` never commits it."""
    if is_transient(exc):
        return {"status": "failed", "clip_id": item.clip_id, "source_path": item.source_path,
                "stage": TRANSIENT_STAGE, "error_type": type(exc).__name__, "transient": True,
                "message": "".join(traceback.format_exception_only(type(exc), exc)).strip()
                           + " (not the input's fault: retried on the next run)"}
    if isinstance(exc, (MediaError, FaceError)):
        stage, message = stage or exc.stage, exc.reason
    elif isinstance(exc, TalkbenchError):
        stage, message = stage or "prep", str(exc)
    else:  # a bug or an unexpected library error: keep the job going, keep the evidence
        stage = stage or "internal"
        message = "".join(traceback.format_exception_only(type(exc), exc)).strip()
    return {"status": "failed", "clip_id": item.clip_id, "source_path": item.source_path,
            "stage": stage, "error_type": type(exc).__name__, "message": message}


def commit_failure(item: InputItem, record: dict, work_root: str) -> dict:
    """Commit a content failure (a rerun trusts it); an environment failure is returned, not committed."""
    if record.get("transient"):
        return record
    try:
        record = dict(record, source_stat=source_stat(item.source_path))
    except OSError:
        record = dict(record, source_stat=None)
    atomic_write_json(WorkDir(work_root).done(item.key), record)
    return record


def process_clip(it: InputItem, cfg: PrepConfig, work_root: str, src_info: dict, sync_scorer=None,
                 finalize_in=None):
    """A short clip in one task: one in-memory segment, then finalise. Failures become a committed record.

    With ``finalize_in`` (an executor: the inline job's finalising thread) the finalising is submitted
    there and its Future returned, so the caller can go on to the next clip meanwhile."""
    try:
        seg = process_segment(it, 0, None, cfg, work_root, write=False)
    except Exception as e:  # noqa: BLE001 — every error is data; the job goes on
        log.debug("clip %s failed", it.clip_id, exc_info=True)
        return commit_failure(it, failure_record(it, e), work_root)
    if finalize_in is not None:
        return finalize_in.submit(_finalize_or_fail, it, [seg], cfg, work_root, src_info, sync_scorer)
    return _finalize_or_fail(it, [seg], cfg, work_root, src_info, sync_scorer)


def _finalize_or_fail(it: InputItem, segments: list[dict], cfg: PrepConfig, work_root: str, src_info: dict,
                      sync_scorer=None) -> dict:
    """finalize_clip, or its error committed as the clip's failure record."""
    try:
        return finalize_clip(it, segments, cfg, work_root, src_info, sync_scorer)
    except Exception as e:  # noqa: BLE001 — every error is data; the job goes on
        log.debug("clip %s failed", it.clip_id, exc_info=True)
        return commit_failure(it, failure_record(it, e), work_root)


def finalize_long_clip(it: InputItem, segments: list[dict], cfg: PrepConfig, work_root: str,
                       src_info: dict, sync_scorer=None) -> dict:
    import shutil

    errors = [s["error"] for s in sorted(segments, key=lambda s: s["index"]) if "error" in s]
    if errors:
        return commit_failure(it, errors[0], work_root)
    done = _finalize_or_fail(it, segments, cfg, work_root, src_info, sync_scorer)
    shutil.rmtree(WorkDir(work_root).root / "segments" / it.key, ignore_errors=True)
    return done


def safe_segment(it: InputItem, start: int, stop, cfg: PrepConfig, work_root: str, index: int) -> dict:
    """A segment task that reports its error as data (the finaliser turns it into the clip's failure)."""
    try:
        return process_segment(it, start, stop, cfg, work_root, index=index, write=True)
    except Exception as e:  # noqa: BLE001
        return {"index": index, "error": failure_record(it, e)}


__all__ = ["WorkDir", "segment_bounds", "process_segment", "finalize_clip", "process_clip",
           "finalize_long_clip", "safe_segment", "failure_record", "commit_failure", "source_stat"]
