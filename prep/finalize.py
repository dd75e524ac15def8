"""Finalising a source whose segments are done: its shots, and per shot audio features, 3DMM, QA, sync QA.

The source's raw cuts (from every segment) go through the shot detector's minimum-length rule
(:func:`prep.shots.suppress_cuts`) and become shots; each shot is a clip (``<clip_id>/shot-<start>`` when
there are several) or a failure row (a short shot, a shot without a face, …), so every shot of every
source is accounted for. The audio is decoded once per source and sliced per shot. Each clip's parts
are written atomically under its own part key, then the source's ``done`` marker, listing its clips and
failures, is written last.

Memory stays bounded for long videos: only the landmark / face columns of all segments are held at
once; frame rows (with their crops) are streamed segment by segment into each clip's part file.
"""
from __future__ import annotations

import logging
from collections.abc import Sequence

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from talkbase.fileio import atomic_write_json, sha256_file
from talkbase.threads import limit_process_threads
from talkbase.timebase import SAMPLES_PER_FRAME

from . import audio as audio_features
from . import media, qa, syncqa
from .config import PrepConfig
from .errors import FaceError, TooShort
from .failures import is_transient
from .inputs import InputItem
from .schema import FRAMES_SCHEMA
from .shards import fixed_list_array, fixed_list_rows, rows_to_table, write_table_atomic, write_tables_atomic
from .shots import ShortShot, shot_bounds, shot_clip_id, suppress_cuts

log = logging.getLogger(__name__)


# ---------------------------------------------------------------- the done record of a source

def part_key(it: InputItem, start: int, num_shots: int) -> str:
    """Work-dir key of one clip's parts (the source's key for a single-shot source)."""
    return it.key if num_shots <= 1 else f"{it.key}-{start:06d}"


def done_clips(done: dict | None) -> list[dict]:
    """The committed clips of a source's done record: ``clip_id``, ``part``, ``num_frames``, ``qa_pass``."""
    return list((done or {}).get("clips") or [])


def done_failures(done: dict | None) -> list[dict]:
    """The failure rows of a source's done record (a source that failed before its shots: itself)."""
    if not done:
        return []
    if "failures" in done:
        return list(done["failures"])
    return [done] if done.get("status") == "failed" else []


def done_units(done: dict | None) -> int:
    """Rows this source must account for: one per shot (a source that failed before shot splitting: 1)."""
    return int((done or {}).get("num_shots") or 1)


# ---------------------------------------------------------------- per-shot pieces

def _merge_summaries(summaries: list[dict]) -> dict:
    """Shot-level face stats from its pieces' tracker summaries, weighted by frames."""
    n = np.array([s.get("num_frames", 0) for s in summaries], float)
    w = n / max(n.sum(), 1)

    def wmean(key):
        vals = np.array([np.nan if s.get(key) is None else s[key] for s in summaries], float)
        ok = ~np.isnan(vals) & (w > 0)
        return float(np.sum(vals[ok] * w[ok]) / np.sum(w[ok])) if ok.any() else float("nan")

    return {"main_track": summaries[0].get("main_track") if summaries else None,
            "num_faces_max": int(max([s.get("num_faces_max", 0) or 0 for s in summaries] or [0])),
            "face_size": wmean("face_size"), "jitter": wmean("jitter"),
            "blur": [b for s in summaries for b in s.get("blur", [])]}


def _fit_3dmm(landmarks: np.ndarray, valid: np.ndarray, width: int, height: int):
    """One 3DMM fit over the shot (one identity): the fit dict, or None when no frame has landmarks."""
    from .threedmm import fit_clip

    if not valid.any():
        return None
    return fit_clip(landmarks.reshape(-1, 68, 2), valid, (width, height))


def _mm_columns(fit: dict, valid: np.ndarray, lo: int, hi: int) -> dict:
    """The ``mm_*`` frame columns of shot rows [lo, hi) (null where no face)."""
    v = valid[lo:hi]
    ident = np.broadcast_to(np.asarray(fit["mm_id"], np.float32), (hi - lo, len(fit["mm_id"])))
    cols = {"mm_pose": fit["mm_pose"][lo:hi], "mm_id": ident, "mm_exp": fit["mm_exp"][lo:hi]}
    out = {k: fixed_list_array(a, v, FRAMES_SCHEMA.field(k)) for k, a in cols.items()}
    out["mm_residual"] = pa.array(fit["residual"][lo:hi].astype(np.float32), mask=~v, type=pa.float32())
    return out


def _shot_tables(tables, a: int, b: int, cid: str, fit, valid: np.ndarray):
    """The shot's frame rows: segment tables sliced to [a, b), renamed, re-indexed, 3DMM filled in."""
    for start, t in tables:
        lo, hi = max(a, start), min(b, start + t.num_rows)
        if hi <= lo:
            continue
        sub = t.slice(lo - start, hi - lo)
        sub = sub.set_column(sub.schema.get_field_index("clip_id"), FRAMES_SCHEMA.field("clip_id"),
                             pa.array([cid] * sub.num_rows, pa.string()))
        idx = sub.schema.get_field_index("frame_index")
        sub = sub.set_column(idx, FRAMES_SCHEMA.field("frame_index"),
                             pc.subtract(sub.column("frame_index"), pa.scalar(a, pa.int32())))
        if fit is not None:
            for name, arr in _mm_columns(fit, valid, lo - a, hi - a).items():
                sub = sub.set_column(sub.schema.get_field_index(name), FRAMES_SCHEMA.field(name), arr)
        yield sub


# ---------------------------------------------------------------- finalise one source

def finalize_clip(it: InputItem, segments: list[dict], cfg: PrepConfig, work_root: str, src_info: dict,
                  sync_scorer=None) -> dict:
    """Shots, then audio features + 3DMM + QA + sync QA per shot; write parts, then the done marker."""
    from .pipeline import WorkDir, failure_record, source_stat

    limit_process_threads()
    work = WorkDir(work_root)
    segments = sorted(segments, key=lambda s: s["index"])
    in_memory = {s["index"]: s.pop("table") for s in segments if "table" in s}

    def segment_tables(columns=None):
        for s in segments:
            t = in_memory.get(s["index"])
            if t is None:
                t = pq.read_table(work.segment(it.key, s["index"]), columns=columns)
            yield s["start"], (t.select(columns) if columns else t)

    index, landmarks, found = [], [], []
    for _, t in segment_tables(["frame_index", "landmarks_src", "face_found"]):
        index += t.column("frame_index").to_pylist()
        landmarks.append(fixed_list_rows(t.column("landmarks_src")))
        found += t.column("face_found").to_pylist()
    landmarks = np.concatenate(landmarks)
    num_frames = len(index)
    if index != list(range(num_frames)):
        raise RuntimeError(f"{it.clip_id}: segment frame indices are not contiguous")
    if num_frames < cfg.min_frames:
        raise TooShort(it.source_path, f"{num_frames} frame(s) at 25 fps; at least {cfg.min_frames} needed")
    raw = [c for s in segments for c in s.get("cuts", [])]
    cuts = suppress_cuts(raw, cfg.shots.detector_min_frames) if cfg.shots.enabled else []
    bounds = shot_bounds(num_frames, cuts)
    pieces = sorted((p for s in segments for p in s.get("pieces", [])), key=lambda p: p["start"])
    wav, audio_span = media.read_audio_span(it.source_path, num_frames)  # the only audio decode of this source
    sha = sha256_file(it.source_path)
    found = np.array(found, bool)
    shot = _ShotContext(it, cfg, work, src_info, sync_scorer, bounds, cuts, landmarks, found, pieces, wav, sha,
                        segment_tables, audio_span)
    clips, failures = [], []
    for k, (a, b) in enumerate(bounds):
        cid = shot_clip_id(it.clip_id, a, len(bounds))
        try:
            clips.append(shot.finalize(k, a, b, cid))
        except Exception as e:  # noqa: BLE001 — every error is data; the other shots go on
            if is_transient(e):  # the environment's fault: the source is retried whole, nothing committed
                raise
            log.debug("shot %s failed", cid, exc_info=True)
            failures.append(dict(failure_record(it, e), clip_id=cid))
    done = {"status": "ok" if clips else "failed", "clip_id": it.clip_id, "source_path": it.source_path,
            "source_sha256": sha, "source_stat": source_stat(it.source_path),
            "num_frames": sum(c["num_frames"] for c in clips), "num_shots": len(bounds), "cuts": cuts,
            "clips": clips, "failures": failures, "qa_pass": any(c["qa_pass"] for c in clips)}
    if not clips:
        done.update({k: failures[0][k] for k in ("stage", "error_type", "message")})
    atomic_write_json(work.done(it.key), done)
    return done


class ShotCrops(Sequence):
    """The encoded crops (bytes or None) of source frames [a, b), read from ``tables`` (``(start, table)`` per
    segment, as finalize_clip's ``segment_tables``) one segment's crop column at a time: a long shot's crops
    are never in memory together. Frames asked in order are served segment after segment; an earlier one
    restarts the scan."""

    def __init__(self, tables, a: int, b: int):
        self._tables, self.a, self.b = tables, a, b
        self._scan = None
        self._cur = None  # (start, crop column) of the segment read last

    def __len__(self) -> int:
        return self.b - self.a

    def __getitem__(self, i: int):
        if not -len(self) <= i < len(self):
            raise IndexError(i)
        g = self.a + i % len(self)
        if self._cur is None or not self._cur[0] <= g < self._cur[0] + len(self._cur[1]):
            if self._cur is None or g < self._cur[0]:
                self._scan = self._tables(["crop"])
            self._cur = None
            for start, t in self._scan:
                if start <= g < start + t.num_rows:
                    self._cur = (start, t.column("crop"))
                    break
            if self._cur is None:
                raise IndexError(f"frame {g} is in no segment")
        start, col = self._cur
        return col[g - start].as_py()


class _ShotContext:
    """What every shot of one source shares (its frames' landmarks, pieces, audio, …)."""

    def __init__(self, it, cfg, work, src_info, scorer, bounds, cuts, landmarks, found, pieces, wav, sha, tables,
                 audio_span):
        self.it, self.cfg, self.work, self.src, self.scorer = it, cfg, work, src_info, scorer
        self.bounds, self.cuts, self.landmarks, self.found = bounds, cuts, landmarks, found
        self.pieces, self.wav, self.sha, self.tables = pieces, wav, sha, tables
        self.audio_span = audio_span

    def audio_coverage(self, a: int, b: int) -> float:
        """Fraction of shot [a, b)'s audio samples that came from the file (not padding)."""
        lo, hi = a * SAMPLES_PER_FRAME, b * SAMPLES_PER_FRAME
        got = max(0, min(hi, self.audio_span[1]) - max(lo, self.audio_span[0]))
        return got / (hi - lo) if hi > lo else 0.0

    def _crops(self, a: int, b: int) -> syncqa.LazyCrops:
        from .output import decode_crop

        return syncqa.LazyCrops(ShotCrops(self.tables, a, b), decode_crop)

    def _sync(self, a: int, b: int, valid: np.ndarray):
        """Sync measure, the frames shifted by, and the sync flags of shot [a, b)."""
        scfg = self.cfg.sync
        if self.scorer is None:
            return None, 0, []
        clip_wav = self.wav[a * SAMPLES_PER_FRAME:b * SAMPLES_PER_FRAME]
        m = syncqa.measure_clip(self.scorer, scfg, self._crops(a, b), clip_wav, valid)
        flags = syncqa.sync_flags(m, scfg)
        shift = int(m.offset) if scfg.shift and m.offset is not None and not flags else 0
        return m, shift, flags

    def finalize(self, k: int, a: int, b: int, cid: str) -> dict:
        from .faces.pipeline import clip_checks

        cfg, it, fc, n = self.cfg, self.it, self.cfg.faces, b - a
        need = max(cfg.min_frames, cfg.shots.min_shot_frames)
        if len(self.bounds) > 1 and n < need:
            raise ShortShot(it.source_path, f"shot [{a}, {b}) has {n} frames; at least {need} needed "
                                            f"(shots.min_shot_frames)")
        valid = self.found[a:b]
        face = _merge_summaries([p for p in self.pieces if a <= p["start"] < b])
        face["num_frames"], face["face_fraction"] = n, float(valid.mean())
        if not valid.any():
            raise FaceError(cid, f"no face found in any of {n} frames")
        fit = _fit_3dmm(self.landmarks[a:b], valid, self.src["width"], self.src["height"]) if fc.fit_3dmm else None
        residual = float(np.nanmean(fit["residual"])) if fit is not None else float("nan")
        measure, shift, sync_flags = self._sync(a, b, valid)
        clip_wav = self.wav[a * SAMPLES_PER_FRAME:b * SAMPLES_PER_FRAME]
        feat_wav = syncqa.shifted_audio(self.wav, a, b, shift) if shift else clip_wav
        mel, mfcc = audio_features.melspectrogram(feat_wav), audio_features.mfcc(feat_wav)
        measures = {
            "qa_face_fraction": face["face_fraction"], "qa_face_size": face["face_size"],
            "qa_num_faces": face["num_faces_max"], "qa_jitter": face["jitter"],
            "qa_blur": float(np.median(face["blur"])) if face["blur"] else float("nan"),
            "qa_loudness_db": qa.loudness_db(clip_wav), "qa_fit_residual": residual,
            "qa_audio_coverage": self.audio_coverage(a, b),
        }
        face_flags = clip_checks(dict(face, **({"fit_residual": residual} if fit is not None else {})), fc, cid)
        flags, passed = qa.apply_filters(measures, cfg.filters)
        flags = face_flags + flags + sync_flags
        passed = passed and not face_flags and not sync_flags
        note = None if self.scorer is not None else "not measured: no sync scorer (see manifest sync_qa)"
        row = {
            "clip_id": cid, "source_path": it.source_path, "source_sha256": self.sha, "split": it.split,
            "speaker": it.speaker, "fps": media.FPS, "num_frames": n, "sample_rate": media.SAMPLE_RATE,
            "duration_s": n / media.FPS, "src_width": self.src["width"], "src_height": self.src["height"],
            "src_fps": self.src["src_fps"], "src_video_codec": self.src["video_codec"],
            "mel": mel, "mel_shape": list(mel.shape), "mfcc": mfcc, "mfcc_shape": list(mfcc.shape),
            "crop_size": int(fc.crop_size), "main_track": face["main_track"],
            "source_clip_id": it.clip_id, "shot_index": k, "num_shots": len(self.bounds), "shot_start": a,
            "shot_stop": b, "source_cuts": list(self.cuts), **measures,
            **syncqa.columns(measure, shift, note), "sync_tracks": None, "qa_flags": flags, "qa_pass": passed,
        }
        key = part_key(it, a, len(self.bounds))
        write_tables_atomic(_shot_tables(self.tables(), a, b, cid, fit, valid), self.work.part(key, "frames"),
                            "frames")
        write_table_atomic(rows_to_table([row], "clips"), self.work.part(key, "clips"), "clips")
        return {"clip_id": cid, "part": key, "num_frames": n, "qa_pass": passed}


__all__ = ["finalize_clip", "done_clips", "done_failures", "done_units", "part_key", "ShotCrops"]
