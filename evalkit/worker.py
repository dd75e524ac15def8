"""Per-video scoring: the pure top-level functions Dask ships to workers.

``score_video(task)`` decodes one submitted video and its reference source side by side in chunks
(bounded memory, any resolution), feeds every active metric the inputs it needs (computed once per chunk,
:mod:`evalkit.inputs`), and returns a :class:`~evalkit.tasks.VideoScore`. ``reference_fid_features(task)``
does the reference side of FID for one reference clip. Neither touches shared state: same task, same result.
"""
from __future__ import annotations

import logging
import time

import numpy as np

from talkbase.threads import one_thread

from . import metrics
from .inputs import ChunkInputs, TaskGeometry, VideoInputs, features, fid_frame_mask, video_level_needs
from .metrics.base import MetricValue
from .tasks import EvalTask, ReferenceFIDTask, VideoScore

log = logging.getLogger(__name__)


def _reason(e: BaseException) -> str:
    r = getattr(e, "reason", None)
    return r if isinstance(r, str) else f"{type(e).__name__}: {e}"


def reference_fid_features(task: ReferenceFIDTask) -> dict:
    """Inception features of one reference clip's FID image set (every ``fid_stride``-th face frame)."""
    from prep import media

    from .geometry import crop_affines, warp_many

    clip, cfg, w = task.clip, task.config, task.inception
    try:
        with one_thread():
            affines = crop_affines(np.asarray(clip.affines), cfg.crop_size / clip.crop_size, (1, 1))
            use = fid_frame_mask(clip.face, cfg.fid_stride, cfg.region)
            feats = []
            for ch in media.iter_frames(clip.path, chunk_size=cfg.chunk_size, stop=clip.num_frames, max_pixels=None):
                sel = [i for i in range(ch.start, ch.start + len(ch.frames)) if use[i]]
                if sel:
                    imgs = ch.frames[[i - ch.start for i in sel]]
                    if cfg.region == "aligned":
                        imgs = warp_many(imgs, affines[sel], cfg.crop_size)
                    feats.append(features(w.path, w.seed, imgs, cfg.device))
        f = np.concatenate(feats) if feats else np.zeros((0, 2048), np.float32)
        return {"clip_id": clip.clip_id, "status": "ok", "features": f}
    except Exception as e:  # noqa: BLE001 - reported, never raised through Dask
        log.warning("reference FID features failed for %s: %s", clip.clip_id, e)
        return {"clip_id": clip.clip_id, "status": "failed", "reason": _reason(e), "features": None}


class AudioMismatch(ValueError):
    """The submission's audio is not the audio it must carry."""


def score_video(task: EvalTask) -> VideoScore:
    """Score one accepted submission video; failures come back as ``status="failed"`` with a reason, a video
    whose audio is not the one it must carry as ``status="skipped"``, ``code="audio_mismatch"``."""
    t0 = time.perf_counter()
    try:
        with one_thread():  # numbers must not depend on the worker's thread count
            out = _score_video(task)
    except AudioMismatch as e:
        return VideoScore(task.clip.clip_id, "skipped", str(e), seconds=time.perf_counter() - t0,
                          code="audio_mismatch")
    except Exception as e:  # noqa: BLE001 - a bad video must not take down the evaluation
        log.warning("scoring %s failed: %s", task.clip.clip_id, e, exc_info=log.isEnabledFor(logging.DEBUG))
        return VideoScore(task.clip.clip_id, "failed", f"scoring failed: {_reason(e)}",
                          seconds=time.perf_counter() - t0)
    return VideoScore(task.clip.clip_id, "scored", None, out["values"], out["n_frames"], out["n_face_frames"],
                      time.perf_counter() - t0)


def _score_video(task: EvalTask) -> dict:
    from prep import media

    specs = [metrics.get(n) for n in task.metrics]
    cfg = task.config
    geo = TaskGeometry(task)
    needs = video_level_needs({x for s in specs for x in s.needs}, cfg)
    video = VideoInputs(task, geo, needs)
    if task.audio is not None:  # before any frame is decoded
        from .audio_check import check

        n_audio = min(geo.n, task.audio.num_frames)
        what = "its reference clip" if task.audio.clip_id == task.clip.clip_id else f"clip {task.audio.clip_id}"
        why = check(media.read_audio(task.audio.path, n_audio), video.gen_audio[:n_audio * 640], what)
        if why:
            raise AudioMismatch(why)
    accumulators = {s.name: s.new(cfg) for s in specs}
    fed = [s for s in specs if s.feed is not None]
    n = geo.n
    ref_iter = media.iter_frames(task.clip.path, chunk_size=cfg.chunk_size, stop=n, max_pixels=None)  # verified
    gen_iter = media.iter_frames(task.video.path, chunk_size=cfg.chunk_size, stop=n, max_pixels=cfg.limits.max_pixels)
    done = 0
    for rch, gch in zip(ref_iter, gen_iter):
        if rch.start != gch.start:
            raise RuntimeError(f"reference and generated chunks disagree at frame {rch.start}")
        common = min(len(rch.frames), len(gch.frames))  # one side ended early: score the common frames
        chunk = ChunkInputs(task, geo, rch.start, rch.frames[:common], gch.frames[:common])
        for s in fed:
            s.feed(accumulators[s.name], chunk)
        video.add_chunk(chunk)
        done = rch.start + common
        if common < len(rch.frames) or common < len(gch.frames):
            break
    if done < n:  # the container promised more frames than decode gave; score what is there
        if done < 5:
            raise RuntimeError(f"decoded only {done} of {n} frames")
        log.warning("%s: decoded %d of %d frames; scoring those", task.clip.clip_id, done, n)
        video.truncate(done)
    values: dict[str, MetricValue] = {s.name: s.finish(accumulators[s.name], video) for s in specs}
    return {"values": values, "n_frames": video.n_frames, "n_face_frames": int(video.face.sum())}


__all__ = ["score_video", "reference_fid_features", "AudioMismatch"]
