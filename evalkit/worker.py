"""Per-video scoring: the pure top-level functions Dask ships to workers.

``score_video(task)`` decodes one submitted video and its reference source side by side in chunks
(bounded memory, any resolution), cuts aligned crops with the reference frame's stored affine, and
returns per-video metric states, values and FID features. ``reference_fid_features(task)`` does the
reference side of FID for one reference clip. Neither touches shared state: same task, same result.
Models are loaded once per worker process (``functools.lru_cache``).
"""
from __future__ import annotations

import logging
import time
from functools import lru_cache

import numpy as np

log = logging.getLogger(__name__)

SEQ_SIZE = 224  # aligned crops for SyncNet (its input size) and the sync expert (resizes itself)


# ---------------------------------------------------------------- per-process model caches

@lru_cache(maxsize=2)
def _inception(path, allow_random: bool, seed: int):
    from .fid import inference_model
    from .inception import load_inception

    return inference_model(load_inception(path, allow_random=allow_random, seed=seed), fuse=True)


@lru_cache(maxsize=2)
def _syncnet(path):
    from .syncnet import load_syncnet

    return load_syncnet(path)


@lru_cache(maxsize=2)
def _sync_expert(path):
    from refmodel.sync_expert import load_sync_expert

    return load_sync_expert(path)


@lru_cache(maxsize=1)
def _face_backend():
    from prep.faces import get_backend

    return get_backend("dlib")


@lru_cache(maxsize=2)
def _s3fd(path):
    from .s3fd import S3FDDetector, load_s3fd

    return S3FDDetector(load_s3fd(path))


@lru_cache(maxsize=2)
def _embedder(chip_size: int, padding: float):
    from .csim import DlibFaceEmbedder

    return DlibFaceEmbedder(chip_size, padding)


class _Threads:
    """One intra-op thread inside a task (numbers must not depend on the worker's thread count)."""

    def __enter__(self):
        import cv2
        import torch

        self._torch, self._cv2 = torch.get_num_threads(), cv2.getNumThreads()
        torch.set_num_threads(1)
        cv2.setNumThreads(1)
        return self

    def __exit__(self, *exc):
        import cv2
        import torch

        torch.set_num_threads(self._torch)
        cv2.setNumThreads(self._cv2)
        return False


# ---------------------------------------------------------------- geometry

def fill_affines(affines: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """Affines with invalid rows replaced by the nearest valid row (earlier wins a tie); for metrics
    that need a crop on every frame (SyncNet windows). All-invalid input is returned unchanged."""
    out = np.array(affines, dtype=np.float64, copy=True)
    idx = np.flatnonzero(valid)
    if idx.size == 0:
        return out
    for i in np.flatnonzero(~valid):
        j = idx[np.argmin(np.abs(idx - i))]
        out[i] = out[j]
    return out


def _crop_affines(affines: np.ndarray, out_scale: float, src_scale) -> np.ndarray:
    from .protocol import rescale_affine

    return np.stack([rescale_affine(a, out_scale, src_scale) if np.all(np.isfinite(a))
                     else np.full((2, 3), np.nan) for a in affines.reshape(-1, 2, 3)]) \
        if len(affines) else np.zeros((0, 2, 3))


def _warp_many(frames: np.ndarray, affines: np.ndarray, size: int) -> np.ndarray:
    from .protocol import warp_region

    return np.stack([warp_region(f, a, size) for f, a in zip(frames, affines)]) if len(frames) \
        else np.zeros((0, size, size, 3), np.uint8)


def _resize_to(frames: np.ndarray, hw: tuple[int, int]) -> np.ndarray:
    import cv2

    if frames.shape[1:3] == tuple(hw):
        return frames
    return np.stack([cv2.resize(f, (hw[1], hw[0]), interpolation=cv2.INTER_LINEAR) for f in frames])


# ---------------------------------------------------------------- the tasks

def reference_fid_features(task: dict) -> dict:
    """Inception features of one reference clip's FID image set (every ``fid_stride``-th face frame)."""
    from prep import media

    cfg = task["config"]
    try:
        with _Threads():
            net = _inception(task["inception"]["path"], task["inception"]["allow_random"],
                             task["inception"]["seed"])
            affines = _crop_affines(np.asarray(task["affines"]), cfg["crop_size"] / task["ref_crop_size"], (1, 1))
            use = _fid_frames(task["face"], cfg["fid_stride"], cfg["region"])
            feats = []
            for ch in media.iter_frames(task["ref_path"], chunk_size=cfg["chunk_size"], stop=task["ref_num_frames"]):
                sel = [i for i in range(ch.start, ch.stop) if use[i]]
                if not sel:
                    continue
                imgs = ch.frames[[i - ch.start for i in sel]]
                if cfg["region"] == "aligned":
                    imgs = _warp_many(imgs, affines[sel], cfg["crop_size"])
                feats.append(_features(net, imgs))
        f = np.concatenate(feats) if feats else np.zeros((0, 2048), np.float32)
        return {"clip_id": task["clip_id"], "status": "ok", "features": f}
    except Exception as e:  # noqa: BLE001 - reported, never raised through Dask
        log.warning("reference FID features failed for %s: %s", task["clip_id"], e)
        return {"clip_id": task["clip_id"], "status": "failed", "reason": _reason(e), "features": None}


def _fid_frames(face: np.ndarray, stride: int, region: str) -> np.ndarray:
    face = np.asarray(face, bool)
    take = (np.arange(len(face)) % int(stride)) == 0
    return take & face if region == "aligned" else take


def _features(net, images: np.ndarray) -> np.ndarray:
    from .fid import extract_features

    return extract_features(net, [images], batch_size=max(1, len(images)), fuse=False)


def _reason(e: BaseException) -> str:
    from prep.errors import MediaError

    if isinstance(e, MediaError):
        return e.reason
    return f"{type(e).__name__}: {e}"


def score_video(task: dict) -> dict:
    """Score one accepted submission video; failures come back as ``status="failed"`` with a reason."""
    t0 = time.perf_counter()
    try:
        with _Threads():
            out = _score_video(task)
    except Exception as e:  # noqa: BLE001 - a bad video must not take down the evaluation
        log.warning("scoring %s failed: %s", task["clip_id"], e, exc_info=log.isEnabledFor(logging.DEBUG))
        out = {"clip_id": task["clip_id"], "status": "failed", "reason": f"scoring failed: {_reason(e)}"}
    out["seconds"] = time.perf_counter() - t0
    return out


def _check_reference_source(task: dict) -> None:
    from prep.shards import sha256_file

    want = task.get("ref_sha256")
    if want and sha256_file(task["ref_path"]) != want:
        raise ValueError(f"reference source {task['ref_path']} changed since prep (sha256 differs)")


def _score_video(task: dict) -> dict:
    from prep import media

    from .csim import CSIM
    from .image_metrics import PSNR, SSIM
    from .lmd import LMD
    from .protocol import transform_points

    cfg = task["config"]
    active = set(cfg["metrics"])
    _check_reference_source(task)
    n = int(task["n_frames"])
    face = np.asarray(task["face"], bool)[:n]
    boxes = np.asarray(task["boxes"], np.float64)[:n]
    S = int(cfg["crop_size"])
    out_scale = S / float(task["ref_crop_size"])
    ref_hw = (int(task["ref_height"]), int(task["ref_width"]))
    src_scale = (task["ref_width"] / task["gen_width"], task["ref_height"] / task["gen_height"])
    a_ref = _crop_affines(np.asarray(task["affines"])[:n], out_scale, (1.0, 1.0))
    a_gen = _crop_affines(np.asarray(task["affines"])[:n], out_scale, src_scale)
    want_lse = bool(active & {"lse_d", "lse_c"}) and bool(task.get("syncnet"))
    want_sync = "sync_inhouse" in active and bool(task.get("sync_expert"))
    # one contiguous crop per frame (missing faces hold the nearest affine), warped straight to 224
    need_seq = (want_lse and cfg["lse_crop"] == "aligned") or want_sync
    a_seq = _crop_affines(fill_affines(np.asarray(task["affines"])[:n], face), SEQ_SIZE / float(task["ref_crop_size"]),
                          src_scale)

    m = {}
    if "psnr" in active:
        m["psnr"] = PSNR(cap_db=cfg["psnr_cap_db"])
    if "ssim" in active:
        m["ssim"] = SSIM(kernel_size=cfg["ssim_kernel"], sigma=cfg["ssim_sigma"])
    if "lmd_mouth" in active:
        m["lmd_mouth"] = LMD("mouth", cfg["lmd_preset"])
    if "lmd_face" in active:
        m["lmd_face"] = LMD("face", cfg["lmd_preset"])
    if "csim" in active:
        m["csim"] = CSIM()
    want_fid = "fid" in active and task.get("inception") is not None
    net = _inception(task["inception"]["path"], task["inception"]["allow_random"],
                     task["inception"]["seed"]) if want_fid else None
    fid_use = _fid_frames(face, cfg["fid_stride"], cfg["region"]) if want_fid else None
    fid_feats = []
    seq_crops = np.zeros((n, SEQ_SIZE, SEQ_SIZE, 3), np.uint8) if need_seq and face.any() else None
    detections = [] if want_lse and cfg["lse_crop"] == "syncnet-pipeline" else None
    need_lms = bool(active & {"lmd_mouth", "lmd_face"})
    backend = _face_backend() if need_lms or (detections is not None and cfg["lse_detector"] == "dlib") else None
    embedder = _embedder(cfg["csim_chip_size"], cfg["csim_chip_padding"]) if "csim" in active else None

    chunk = int(cfg["chunk_size"])
    ref_iter = media.iter_frames(task["ref_path"], chunk_size=chunk, stop=n)
    gen_iter = media.iter_frames(task["gen_path"], chunk_size=chunk, stop=n)
    done = 0
    need_crops = cfg["region"] == "aligned" and bool(active & {"psnr", "ssim", "fid"})
    for rch, gch in zip(ref_iter, gen_iter):
        if rch.start != gch.start:
            raise RuntimeError(f"reference and generated chunks disagree at frame {rch.start}")
        common = min(len(rch.frames), len(gch.frames))  # one side ended early: score the common frames
        ref, gen = rch.frames[:common], gch.frames[:common]
        idx = np.arange(rch.start, rch.start + common)
        f_idx = idx[face[idx]]
        rel = f_idx - rch.start
        crops_r = _warp_many(ref[rel], a_ref[f_idx], S) if need_crops and len(f_idx) else None
        crops_g = _warp_many(gen[rel], a_gen[f_idx], S) if need_crops and len(f_idx) else None
        for name in ("psnr", "ssim"):
            if name not in m:
                continue
            if cfg["region"] == "aligned":
                vals = np.full(len(idx), np.nan)
                if len(f_idx):
                    vals[rel] = m[name].frame_values(crops_r, crops_g)
                m[name].add_frame_values(vals)
            else:
                m[name].update(ref, _resize_to(gen, ref_hw))
        if need_lms:
            lm_r = np.full((len(idx), 68, 2), np.nan)
            lm_g = np.full((len(idx), 68, 2), np.nan)
            if len(f_idx):
                b_ref = boxes[f_idx]
                b_gen = b_ref / np.array([src_scale[0], src_scale[1], src_scale[0], src_scale[1]])
                pr = backend.landmarks(ref[rel], b_ref)
                pg = backend.landmarks(gen[rel], b_gen)
                for j, i in enumerate(f_idx):
                    lm_r[i - rch.start] = transform_points(pr[j], a_ref[i])
                    lm_g[i - rch.start] = transform_points(pg[j], a_gen[i])
            for name in ("lmd_mouth", "lmd_face"):
                if name in m:
                    m[name].update(lm_r, lm_g)
        if "csim" in m:
            sel = f_idx[(f_idx % int(cfg["csim_stride"])) == 0]
            if len(sel):
                b_ref = boxes[sel]
                b_gen = b_ref / np.array([src_scale[0], src_scale[1], src_scale[0], src_scale[1]])
                e_r = embedder.embed(ref[sel - rch.start], b_ref)
                e_g = embedder.embed(gen[sel - rch.start], b_gen)
                m["csim"].update(e_r, e_g)
        if want_fid:
            sel = idx[fid_use[idx]]
            if len(sel):
                if cfg["region"] == "aligned":
                    pos = np.searchsorted(f_idx, sel)
                    imgs = crops_g[pos]
                else:
                    imgs = gen[sel - rch.start]
                fid_feats.append(_features(net, imgs))
        if seq_crops is not None:
            seq_crops[idx] = _warp_many(gen, a_seq[idx], SEQ_SIZE)
        if detections is not None:
            if cfg["lse_detector"] == "s3fd":
                detections.extend(_s3fd(task["s3fd"]).detect(gen, scale=0.25))  # upstream's facedet_scale
            else:
                detections.extend(backend.detect(gen))
        done = rch.start + common
        if common < len(rch.frames) or common < len(gch.frames):
            break
    if done < n:  # the container promised more frames than decode; score what is there
        if done < 5:
            raise RuntimeError(f"decoded only {done} of {n} frames")
        log.warning("%s: decoded %d of %d frames; scoring those", task["clip_id"], done, n)
        n, face = done, face[:done]
        seq_crops = seq_crops[:done] if seq_crops is not None else None

    values, errors, states = {}, {}, {}
    for name, metric in m.items():
        v = metric.end_video()
        values[name] = v
        states[name] = metric.metric_state
        if v is None:
            errors[name] = "no scorable frame (no reference face, or no landmarks/embedding)"
    extra = {}
    if want_fid:
        fid_f = np.concatenate(fid_feats) if fid_feats else np.zeros((0, 2048), np.float32)
        if len(fid_f) == 0:
            errors["fid"] = "no frame in the FID image set"
    else:
        fid_f = None
    if want_lse:
        try:
            res = _lse(task, cfg, n, seq_crops, detections)
            values.update(lse_d=res["lse_d"], lse_c=res["lse_c"])
            extra.update(lse_offset=res["offset"], lse_windows=res["num_windows"])
        except Exception as e:  # noqa: BLE001 - per-metric failure, the video's other metrics stand
            errors["lse_d"] = errors["lse_c"] = f"LSE failed: {_reason(e)}"
    if want_sync:
        try:
            if seq_crops is None:
                raise ValueError("no reference face in any frame")
            from prep.audio import melspectrogram

            wav = media.read_audio(task["gen_path"], n)
            res = _sync_expert(task["sync_expert"]).clip_sync(seq_crops, melspectrogram(wav), valid=face)
            if not np.isfinite(res["score"]):
                raise ValueError("no complete 5-frame window with faces")
            values["sync_inhouse"] = float(res["score"])
            extra.update(sync_inhouse_offset=int(res["offset"]), sync_inhouse_confidence=float(res["confidence"]))
        except Exception as e:  # noqa: BLE001
            errors["sync_inhouse"] = f"sync expert failed: {_reason(e)}"
    return {"clip_id": task["clip_id"], "status": "scored", "reason": None, "values": values,
            "states": states, "errors": errors, "fid_features": fid_f, "extra": extra,
            "n_frames": n, "n_face_frames": int(face.sum())}


def _lse(task: dict, cfg: dict, n: int, seq_crops, detections) -> dict:
    from prep import media
    from prep.audio import to_int16

    from . import syncnet_crop
    from .lse import lse

    model = _syncnet(task["syncnet"])
    wav = to_int16(media.read_audio(task["gen_path"], n))
    if cfg["lse_crop"] == "aligned":
        if seq_crops is None:
            raise ValueError("no reference face in any frame")
        return lse(syncnet_crop.aligned_crops(seq_crops), wav, model)
    tracks = syncnet_crop.track_faces(detections)
    if not tracks:
        raise ValueError("syncnet-pipeline: no face track of > 100 frames and > 100 px")
    track = max(tracks, key=lambda t: (len(t.frames), -t.start))
    cx, cy, half = syncnet_crop.smooth_track(track)
    crops = np.empty((len(track.frames), syncnet_crop.CROP_SIZE, syncnet_crop.CROP_SIZE, 3), np.uint8)
    for ch in media.iter_frames(task["gen_path"], chunk_size=int(cfg["chunk_size"]), start=track.start,
                                stop=track.stop):
        for j, frame in enumerate(ch.frames):
            k = ch.start + j - track.start
            crops[k] = syncnet_crop.crop_frame(frame, cx[k], cy[k], half[k])[..., ::-1]
    return lse(crops, wav[track.start * 640:track.stop * 640], model)


__all__ = ["score_video", "reference_fid_features", "fill_affines"]
