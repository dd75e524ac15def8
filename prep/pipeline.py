"""Per-clip processing: pure functions of (video, config) → committed part files, runnable on any worker.

A clip is processed as one or more *segments* (a long video is split so one file doesn't pin a worker),
then *finalised*: audio features, 3DMM fit over the whole clip, QA, and the commit. Every file is written
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

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from talkbase.fileio import atomic_write_json, sha256_file
from talkbase.threads import limit_process_threads

from . import audio as audio_features
from . import media, qa
from .config import PrepConfig
from .errors import FaceError, MediaError, TalkbenchError, TooShort
from .failures import TRANSIENT_STAGE, is_transient
from .inputs import InputItem
from .shards import encode_crop, rows_to_table, write_table_atomic, write_tables_atomic

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

def process_segment(it: InputItem, start: int, stop: int | None, cfg: PrepConfig, work_root: str,
                    index: int = 0, write: bool = True) -> dict:
    """Faces for frames [start, stop) of one video → a segment table (no 3DMM yet) + a small summary.

    With ``write`` the table goes to the work dir (long videos); otherwise it is returned in memory.
    """
    from .faces import FaceTracker

    limit_process_threads()  # one thread per task: numbers must not depend on the worker's thread count
    work = WorkDir(work_root)
    seg_path, sum_path = work.segment(it.key, index), work.segment_summary(it.key, index)
    if write and seg_path.exists() and sum_path.exists():  # a retried task: already written
        return json.loads(sum_path.read_text())
    tracker = FaceTracker(cfg.faces)
    rows, blur = [], []
    t0 = time.perf_counter()
    for chunk in media.iter_frames(it.source_path, chunk_size=cfg.chunk_size, start=start, stop=stop):
        for r in tracker.process(chunk):
            crop = r.pop("crop")
            if r["face_found"] and r["frame_index"] % 5 == 0:
                blur.append(qa.blur_score(crop))
            r["crop"] = None if crop is None else encode_crop(crop, cfg.crop_codec, cfg.jpeg_quality)
            r["clip_id"] = it.clip_id
            rows.append(r)
    summary = dict(tracker.summary())
    summary.update(index=index, start=start, num_frames=len(rows), blur=blur,
                   seconds=time.perf_counter() - t0)
    table = rows_to_table(rows, "frames")
    if not write:
        summary["table"] = table
        return summary
    write_table_atomic(table, seg_path, "frames")
    atomic_write_json(sum_path, summary)
    return summary


# ---------------------------------------------------------------- finalise

def _fit_3dmm(landmarks: list, width: int, height: int) -> tuple[dict | None, float]:
    """One 3DMM fit over the whole clip (one identity); per-frame columns, or None when no landmarks."""
    from .threedmm import fit_clip

    valid = np.array([v is not None for v in landmarks])
    if not valid.any():
        return None, float("nan")
    arr = np.stack([np.asarray(v, np.float32).reshape(68, 2) if v is not None else np.zeros((68, 2), np.float32)
                    for v in landmarks])
    fit = fit_clip(arr, valid, (width, height))
    ident = np.asarray(fit["mm_id"]).tolist()
    cols = {"mm_pose": [], "mm_id": [], "mm_exp": [], "mm_residual": []}
    for i in range(len(landmarks)):
        ok = bool(valid[i])
        cols["mm_pose"].append(fit["mm_pose"][i].tolist() if ok else None)
        cols["mm_id"].append(ident if ok else None)
        cols["mm_exp"].append(fit["mm_exp"][i].tolist() if ok else None)
        cols["mm_residual"].append(float(fit["residual"][i]) if ok else None)
    return cols, float(np.mean(np.asarray(fit["residual"])[valid]))


def _with_columns(table: pa.Table, cols: dict, offset: int) -> pa.Table:
    """Fill per-frame columns (clip-indexed lists) into a segment table starting at frame ``offset``."""
    schema = table.schema
    for name, vals in cols.items():
        i = schema.get_field_index(name)
        table = table.set_column(i, schema.field(name),
                                 pa.array(vals[offset:offset + table.num_rows], type=schema.field(name).type))
    return table


def _merge_summaries(summaries: list[dict]) -> dict:
    """Clip-level face stats from per-segment ones, weighted by frames."""
    n = np.array([s["num_frames"] for s in summaries], float)
    w = n / max(n.sum(), 1)

    def wmean(key):
        vals = np.array([np.nan if s.get(key) is None else s[key] for s in summaries], float)
        ok = ~np.isnan(vals)
        return float(np.sum(vals[ok] * w[ok]) / np.sum(w[ok])) if ok.any() else float("nan")

    return {"main_track": summaries[0].get("main_track"),
            "num_faces_max": int(max(s.get("num_faces_max", 0) or 0 for s in summaries)),
            "face_fraction": wmean("face_fraction"), "face_size": wmean("face_size"),
            "jitter": wmean("jitter"), "blur": [b for s in summaries for b in s.get("blur", [])]}


def finalize_clip(it: InputItem, segments: list[dict], cfg: PrepConfig, work_root: str, src_info: dict) -> dict:
    """Audio features + 3DMM + QA for a clip whose segments are done; write parts, then the done marker.

    Memory stays bounded for long videos: only the landmark column of all segments is held at once;
    frame rows (with their crops) are streamed segment by segment into the clip's part file.
    """
    from .faces.pipeline import clip_checks

    limit_process_threads()
    work = WorkDir(work_root)
    segments = sorted(segments, key=lambda s: s["index"])
    in_memory = {s["index"]: s.pop("table") for s in segments if "table" in s}

    def segment_tables(columns=None):
        for s in segments:
            t = in_memory.get(s["index"])
            yield t.select(columns) if t is not None and columns else (
                t if t is not None else pq.read_table(work.segment(it.key, s["index"]), columns=columns))

    index, landmarks, found = [], [], 0
    for t in segment_tables(["frame_index", "landmarks_src", "face_found"]):
        index += t.column("frame_index").to_pylist()
        landmarks += t.column("landmarks_src").to_pylist()
        found += int(pa.compute.sum(t.column("face_found").cast(pa.int32())).as_py() or 0)
    num_frames = len(index)
    if index != list(range(num_frames)):
        raise RuntimeError(f"{it.clip_id}: segment frame indices are not contiguous")
    if num_frames < cfg.min_frames:
        raise TooShort(it.source_path, f"{num_frames} frame(s) at 25 fps; at least {cfg.min_frames} needed")
    face = _merge_summaries(segments)
    face["num_frames"], face["face_fraction"] = num_frames, found / num_frames
    if found == 0:
        raise FaceError(it.clip_id, f"no face found in any of {num_frames} frames")
    wav, audio_coverage = media.read_audio_covered(it.source_path, num_frames)
    mel = audio_features.melspectrogram(wav)
    mfcc = audio_features.mfcc(wav)
    fc = cfg.faces
    mm_cols, residual = (_fit_3dmm(landmarks, src_info["width"], src_info["height"])
                         if fc.fit_3dmm else (None, float("nan")))
    del landmarks
    measures = {
        "qa_face_fraction": face["face_fraction"], "qa_face_size": face["face_size"],
        "qa_num_faces": face["num_faces_max"], "qa_jitter": face["jitter"],
        "qa_blur": float(np.median(face["blur"])) if face["blur"] else float("nan"),
        "qa_loudness_db": qa.loudness_db(wav), "qa_fit_residual": residual, "qa_audio_coverage": audio_coverage,
    }
    face_flags = clip_checks(dict(face, **({"fit_residual": residual} if mm_cols else {})), fc, it.clip_id)
    flags, passed = qa.apply_filters(measures, cfg.filters)
    flags, passed = face_flags + flags, passed and not face_flags
    sha = sha256_file(it.source_path)
    clip_row = {
        "clip_id": it.clip_id, "source_path": it.source_path, "source_sha256": sha, "split": it.split,
        "speaker": it.speaker, "fps": media.FPS, "num_frames": num_frames, "sample_rate": media.SAMPLE_RATE,
        "duration_s": num_frames / media.FPS, "src_width": src_info["width"], "src_height": src_info["height"],
        "src_fps": src_info["src_fps"], "src_video_codec": src_info["video_codec"],
        "mel": mel, "mel_shape": list(mel.shape), "mfcc": mfcc, "mfcc_shape": list(mfcc.shape),
        "crop_size": int(fc.crop_size), "main_track": face["main_track"], **measures,
        "qa_flags": flags, "qa_pass": passed,
    }

    def filled():
        offset = 0
        for t in segment_tables():
            yield _with_columns(t, mm_cols, offset) if mm_cols else t
            offset += t.num_rows

    write_tables_atomic(filled(), work.part(it.key, "frames"), "frames")
    write_table_atomic(rows_to_table([clip_row], "clips"), work.part(it.key, "clips"), "clips")
    done = {"status": "ok", "clip_id": it.clip_id, "source_path": it.source_path, "source_sha256": sha,
            "source_stat": source_stat(it.source_path), "num_frames": num_frames, "qa_pass": passed}
    atomic_write_json(work.done(it.key), done)
    return done


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


def process_clip(it: InputItem, cfg: PrepConfig, work_root: str, src_info: dict) -> dict:
    """A short clip in one task: one in-memory segment, then finalise. Failures become a committed record."""
    try:
        seg = process_segment(it, 0, None, cfg, work_root, write=False)
        return finalize_clip(it, [seg], cfg, work_root, src_info)
    except Exception as e:  # noqa: BLE001 — every error is data; the job goes on
        log.debug("clip %s failed", it.clip_id, exc_info=True)
        return commit_failure(it, failure_record(it, e), work_root)


def finalize_long_clip(it: InputItem, segments: list[dict], cfg: PrepConfig, work_root: str,
                       src_info: dict) -> dict:
    import shutil

    errors = [s["error"] for s in sorted(segments, key=lambda s: s["index"]) if "error" in s]
    if errors:
        return commit_failure(it, errors[0], work_root)
    try:
        done = finalize_clip(it, segments, cfg, work_root, src_info)
    except Exception as e:  # noqa: BLE001
        done = commit_failure(it, failure_record(it, e), work_root)
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
