"""Reference-free scoring of one video: its own face track stands in for the reference geometry.

``score_free_video(task)`` (the function Dask ships to workers) makes two passes over the submitted video:

1. **track**: ``prep.faces.FaceTracker`` over ``prep.media.iter_frames`` chunks at 25 fps, exactly as prep
   does (same :class:`~prep.faces.FaceConfig`, no 3DMM, nothing written): per frame the face flag, box,
   68 landmarks (aligned-crop and source pixels) and the smoothed crop affine (:class:`FaceTrack`);
2. **score**: the track becomes the video's geometry (a :class:`~evalkit.tasks.ReferenceClip` of the video
   itself, so :class:`~evalkit.inputs.TaskGeometry` maps it to the evaluation crops unchanged) and the
   frames are decoded again in chunks; :class:`FreeChunkInputs` gives the generated-side inputs
   (``gen_face_crops``, ``gen_landmarks`` from the tracker, ``gen_seq_crops`` for SyncNet and the sync
   expert, ``gen_detections`` for the syncnet-pipeline crop) and refuses the reference-side ones.

A metric runs in this mode when its spec lists ``"reference-free"`` in ``modes`` and reads only
generated-side inputs (``gen_*``, ``lse``, ``sync_expert``, or the whole track: ``VideoInputs.gen_track``).
"""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field, replace
from functools import cached_property

import numpy as np

from talkbase.threads import one_thread

from . import metrics
from .inputs import ChunkInputs, TaskGeometry, VideoInputs, video_level_needs
from .tasks import EvalTask, FreeTask, ReferenceClip, VideoScore

log = logging.getLogger(__name__)

TRACK_PROTOCOL = {"impl": "prep.faces.FaceTracker over prep.media.iter_frames chunks (as prep; no shards, no 3DMM)",
                  "geometry": "the submitted video's own face track: aligned crops from its smoothed affine, "
                              "landmarks from the tracker (one-euro smoothed)",
                  "frames": "every frame decoded at 25 fps"}


@dataclass(frozen=True)
class FaceTrack:
    """The tracked face of one video, per frame (NaN where there is no face)."""

    face: np.ndarray  # (n,) bool
    boxes: np.ndarray  # (n, 4) source px
    landmarks: np.ndarray  # (n, 68, 2) aligned-crop px of ``crop_size``
    landmarks_src: np.ndarray  # (n, 68, 2) source px
    affines: np.ndarray  # (n, 6) source px -> crop px (held / centred square where there is no face)
    crop_size: int
    width: int
    height: int
    summary: dict = field(default_factory=dict)

    @property
    def n(self) -> int:
        return len(self.face)


def track_video(path, face_config, chunk_size: int = 32) -> FaceTrack:
    """Track the face of every frame of ``path`` as prep does (``FaceTracker``; nothing is written)."""
    from prep import media
    from prep.faces import FaceTracker

    tracker = FaceTracker(face_config)
    face, boxes, lms, lms_src, affines = [], [], [], [], []
    hw = None
    for chunk in media.iter_frames(path, chunk_size=int(chunk_size)):
        hw = chunk.frames.shape[1:3]
        for r in tracker.process(chunk):
            ok = bool(r["face_found"])
            face.append(ok)
            boxes.append(np.asarray(r["box"], np.float64) if ok else np.full(4, np.nan))
            lms.append(np.asarray(r["landmarks"], np.float64) if ok else np.full((68, 2), np.nan))
            lms_src.append(np.asarray(r["landmarks_src"], np.float64) if ok else np.full((68, 2), np.nan))
            affines.append(np.asarray(r["affine"], np.float64).reshape(6))
    if hw is None:
        raise ValueError("no frame could be decoded")
    n = len(face)
    return FaceTrack(np.asarray(face, bool), np.asarray(boxes).reshape(n, 4), np.asarray(lms).reshape(n, 68, 2),
                     np.asarray(lms_src).reshape(n, 68, 2), np.asarray(affines).reshape(n, 6),
                     int(tracker.config.crop_size), int(hw[1]), int(hw[0]), dict(tracker.summary()))


def self_reference(track: FaceTrack, task: FreeTask) -> ReferenceClip:
    """The video's own track as the geometry the evaluation inputs are cut with."""
    v = task.video
    return ReferenceClip(v.clip_id, v.path, "", track.n, track.width, track.height, track.crop_size, track.face,
                         track.boxes, track.affines)


class FreeChunkInputs(ChunkInputs):
    """A chunk of the submitted video alone: generated-side inputs from its own track; no reference side."""

    def __init__(self, task, geo: TaskGeometry, start: int, gen: np.ndarray, track: FaceTrack):
        super().__init__(task, geo, start, None, gen)
        self.track = track

    @cached_property
    def gen_landmarks(self) -> np.ndarray:
        return self.track.landmarks[self.index] * (self.geo.size / float(self.track.crop_size))

    def _no_reference(self, what: str):
        raise RuntimeError(f"{what} needs a reference video; there is none in reference-free mode")

    ref_crops = property(lambda self: self._no_reference("ref_crops"))
    region_pairs = property(lambda self: self._no_reference("region_pairs"))
    landmarks = property(lambda self: self._no_reference("landmarks (both sides; use gen_landmarks)"))
    embeddings = property(lambda self: self._no_reference("embeddings"))


class FreeVideoInputs(VideoInputs):
    """Whole-video inputs of a reference-free task; ``gen_track`` is the video's own face track."""

    def __init__(self, task, geo: TaskGeometry, collect: set[str], track: FaceTrack):
        super().__init__(task, geo, collect)
        self.gen_track = track


def score_free_video(task: FreeTask) -> VideoScore:
    """Track and score one video with no reference; failures come back as ``status="failed"``."""
    t0 = time.perf_counter()
    cid = task.video.clip_id
    try:
        with one_thread():  # numbers must not depend on the worker's thread count
            out = _score(task)
    except Exception as e:  # noqa: BLE001 - a bad video must not take down the evaluation
        from .worker import _reason

        log.warning("scoring %s failed: %s", cid, e, exc_info=log.isEnabledFor(logging.DEBUG))
        return VideoScore(cid, "failed", f"scoring failed: {_reason(e)}", seconds=time.perf_counter() - t0)
    return VideoScore(cid, "scored", None, out["values"], out["n_frames"], out["n_face_frames"],
                      time.perf_counter() - t0)


def _score(task: FreeTask) -> dict:
    from prep import media

    cfg = task.config
    track = track_video(task.video.path, task.face_config, cfg.chunk_size)
    if track.n < cfg.limits.min_frames:
        raise RuntimeError(f"decoded only {track.n} frames")
    specs = [metrics.get(n) for n in task.metrics]
    # the track is in decoded-frame pixels: the task's video says the same size, so no rescaling happens
    video_info = replace(task.video, width=track.width, height=track.height)
    etask = EvalTask(self_reference(track, task), video_info, track.n, cfg, task.weights, task.metrics)
    geo = TaskGeometry(etask)
    video = FreeVideoInputs(etask, geo, video_level_needs({x for s in specs for x in s.needs}, cfg), track)
    accumulators = {s.name: s.new(cfg) for s in specs}
    fed = [s for s in specs if s.feed is not None]
    done = 0
    for ch in media.iter_frames(task.video.path, chunk_size=cfg.chunk_size, stop=track.n):
        chunk = FreeChunkInputs(etask, geo, ch.start, ch.frames, track)
        for s in fed:
            s.feed(accumulators[s.name], chunk)
        video.add_chunk(chunk)
        done = ch.start + len(ch.frames)
    if done != track.n:  # decoding is deterministic: a second pass must see the frames the first did
        raise RuntimeError(f"second decode gave {done} frames, tracking saw {track.n}")
    values = {s.name: s.finish(accumulators[s.name], video) for s in specs}
    return {"values": values, "n_frames": track.n, "n_face_frames": int(track.face.sum())}


__all__ = ["FaceTrack", "track_video", "score_free_video", "FreeChunkInputs", "FreeVideoInputs", "TRACK_PROTOCOL"]
