"""What metrics read from a video, each computed at most once however many metrics read it.

A worker decodes the reference and the generated video side by side in chunks. For every chunk it builds
one :class:`ChunkInputs`; its attributes (aligned crops, landmarks, embeddings, Inception features ...)
are computed the first time a metric asks for them. What only exists for the whole video (the audio, the
224-px crop sequence SyncNet reads, the LSE and sync-expert results) lives in :class:`VideoInputs`; the
worker collects the per-frame parts of it while decoding when an active metric ``needs`` them.

Networks are loaded once per worker process (``lru_cache``).
"""
from __future__ import annotations

from functools import cached_property, lru_cache

import numpy as np

from .geometry import SEQ_SIZE, crop_affines, fill_affines, resize_to, transform_points, warp_many

OWN_DETECT_SIDE = 720  # the generated frames' own face detection runs at most at this size (longest side)

# name -> what it is (``talkbench eval --list-metrics`` shows these)
INPUTS = {
    "region_pairs": "reference / generated frames of the scored region (aligned face crops, or full frames)",
    "landmarks": "dlib 68-point landmarks of both sides in aligned-crop pixels",
    "gen_face_crops": "aligned crops of the generated face frames and their positions in the chunk (any mode; "
                      "reference-free: the video's own tracked face)",
    "gen_landmarks": "68-point landmarks of the generated side in aligned-crop pixels, NaN rows without a face (any "
                     "mode; reference-free: the face tracker's landmarks)",
    "gen_track": "reference-free mode only: the video's own face track (per-frame face flag, boxes, landmarks in "
                 "source pixels, crop affines)",
    "embeddings": "dlib face embeddings of both sides (every csim_stride-th face frame)",
    "arcface_embeddings": "ArcFace embeddings of both sides, faces aligned by 5 points of the landmarks (every "
                          "csim_stride-th face frame)",
    "fid_features": "Inception pool3 features of the generated FID image set",
    "lpips": "LPIPS v0.1 distances of the region pairs (the lpips_net backbone) and their positions",
    "fvd_frames": "reference / generated frames of the scored region (as region_pairs) for FVD clips",
    "i3d_features": "the FVD I3D (TorchScript): 400-d features of (N, 3, 16, 224, 224) clips in [-1, 1]",
    "gen_audio": "the submitted video's audio at 16 kHz",
    "gen_seq_crops": "224-px aligned crops of every generated frame (the reference affine; nearest face frame's "
                     "affine where the reference has none)",
    "gen_detections": "face boxes on every generated frame (the syncnet-pipeline crop's detector)",
    "lse": "SyncNet offset / LSE-D / LSE-C of the generated video (one pass for both LSE metrics)",
    "sync_expert": "the in-domain sync expert's clip-level sync of the generated video",
    "gen_landmarks_px": "dlib 68-point landmarks of the generated frames from their own face detection (no "
                        "reference needed), in generated-frame pixels",
    "gen_head_pose": "head rotation of every generated frame (3DMM fit when the 3DDFA basis is present, else "
                     "solvePnP of landmarks)",
    "gen_mm_exp": "3DMM expression coefficients fitted to the generated frames' landmarks (needs the 3DDFA basis)",
}


def video_level_needs(needs: set[str], config) -> set[str]:
    """The per-frame collections a set of needs implies (collected while decoding)."""
    out = set(needs)
    if "lse" in out and config.lse_preset == "fast":
        out.add("gen_seq_crops" if config.lse_crop == "aligned" else "gen_detections")
    if "sync_expert" in out:
        out |= {"gen_seq_crops", "gen_audio"}
    if out & {"gen_head_pose", "gen_mm_exp"}:
        out.add("gen_landmarks_px")
    return out


# ---------------------------------------------------------------- per-process networks

@lru_cache(maxsize=2)
def inception(path, seed, device="cpu"):
    from .metrics.fid import inference_model
    from .nets.inception import load_inception

    return inference_model(load_inception(path, allow_random=path is None, seed=seed or 0), fuse=True).to(device)


@lru_cache(maxsize=2)
def syncnet(path, device="cpu"):
    from .nets.syncnet import load_syncnet

    return load_syncnet(path).to(device)


@lru_cache(maxsize=2)
def sync_expert(path, device="cpu"):
    from .nets.sync_expert import load_sync_expert

    return load_sync_expert(path, device=device)


@lru_cache(maxsize=2)
def s3fd(path, device="cpu"):
    from .nets.s3fd import S3FDDetector, load_s3fd

    return S3FDDetector(load_s3fd(path), device=device)


@lru_cache(maxsize=2)
def lpips_model(net: str, backbone_path, heads_path):
    from .nets.lpips import load_lpips

    return load_lpips(net, backbone_path, heads_path)


@lru_cache(maxsize=2)
def arcface(path):
    from .nets.arcface import load_arcface

    return load_arcface(path)


@lru_cache(maxsize=2)
def i3d(path):
    from .nets.i3d import load_i3d

    return load_i3d(path)


@lru_cache(maxsize=1)
def face_backend():
    from prep.faces import get_backend

    return get_backend("dlib")


@lru_cache(maxsize=2)
def embedder(chip_size: int, padding: float):
    from .metrics.csim import DlibFaceEmbedder

    return DlibFaceEmbedder(chip_size, padding)


def features(path, seed, images: np.ndarray, device: str = "cpu") -> np.ndarray:
    from .metrics.fid import FEATURE_DIM, extract_features

    if not len(images):
        return np.zeros((0, FEATURE_DIM), np.float32)
    return extract_features(inception(path, seed, device), [images], batch_size=max(1, len(images)), fuse=False)


def fid_frame_mask(face: np.ndarray, stride: int, region: str) -> np.ndarray:
    """Frames in the FID image set: every ``stride``-th frame (with a reference face, for aligned crops)."""
    face = np.asarray(face, bool)
    take = (np.arange(len(face)) % int(stride)) == 0
    return take & face if region == "aligned" else take


# ---------------------------------------------------------------- geometry of one task

def boxes_through(boxes: np.ndarray, affines: np.ndarray) -> np.ndarray:
    """(n, 4) x0, y0, x1, y1 boxes: the bounding box of each box's corners through its (2, 3) affine."""
    b = np.asarray(boxes, np.float64)
    corners = np.stack([b[:, [0, 1]], b[:, [2, 1]], b[:, [0, 3]], b[:, [2, 3]]], axis=1)  # (n, 4, 2)
    if not len(b):
        return b.reshape(0, 4)
    moved = np.einsum("nij,nkj->nki", affines[:, :, :2], corners) + affines[:, None, :, 2]
    return np.concatenate([moved.min(axis=1), moved.max(axis=1)], axis=1)


class TaskGeometry:
    """The reference clip's affines mapped to this evaluation's crops and the generated video's size."""

    def __init__(self, task):
        clip, cfg, n = task.clip, task.config, task.n_frames
        self.n = n
        self.face = np.asarray(clip.face, bool)[:n]
        self.boxes = np.asarray(clip.boxes, np.float64)[:n]
        self.size = int(cfg.crop_size)
        out_scale = self.size / float(clip.crop_size)
        self.ref_hw = (int(clip.height), int(clip.width))
        self.src_scale = (clip.width / task.video.width, clip.height / task.video.height)
        affines = np.asarray(clip.affines)[:n]
        self.a_ref = crop_affines(affines, out_scale, (1.0, 1.0))
        self.a_gen = crop_affines(affines, out_scale, self.src_scale)
        self.a_seq = crop_affines(fill_affines(affines, self.face), SEQ_SIZE / float(clip.crop_size), self.src_scale)
        sx, sy = self.src_scale
        self.box_scale = np.array([sx, sy, sx, sy])
        self.gen_boxes = self.boxes / self.box_scale  # reference face boxes in generated-frame pixels
        if getattr(cfg, "submission_kind", "frames") == "crops":  # the generated video is the aligned crop itself
            gw = float(task.video.width)
            self.a_gen = np.tile(np.array([[self.size / gw, 0, 0], [0, self.size / gw, 0]]), (len(affines), 1, 1))
            self.a_seq = np.tile(np.array([[SEQ_SIZE / gw, 0, 0], [0, SEQ_SIZE / gw, 0]]), (len(affines), 1, 1))
            self.gen_boxes = boxes_through(self.boxes, crop_affines(affines, gw / float(clip.crop_size), (1.0, 1.0)))
        self.fid_use = fid_frame_mask(self.face, cfg.fid_stride, cfg.region)


class ChunkInputs:
    """Frames ``start … start+size`` of both videos and what metrics derive from them (lazily, once)."""

    def __init__(self, task, geo: TaskGeometry, start: int, ref: np.ndarray, gen: np.ndarray):
        self.task, self.geo, self.config = task, geo, task.config
        self.start, self.ref_frames, self.gen_frames = start, ref, gen
        self.size = len(gen)
        self.index = np.arange(start, start + self.size)
        self.face_pos = np.flatnonzero(geo.face[self.index])  # positions (in the chunk) with a reference face

    @cached_property
    def face_index(self) -> np.ndarray:
        return self.index[self.face_pos]

    @cached_property
    def ref_crops(self) -> np.ndarray:
        return warp_many(self.ref_frames[self.face_pos], self.geo.a_ref[self.face_index], self.geo.size)

    @cached_property
    def gen_crops(self) -> np.ndarray:
        return warp_many(self.gen_frames[self.face_pos], self.geo.a_gen[self.face_index], self.geo.size)

    @cached_property
    def gen_face_crops(self) -> tuple[np.ndarray, np.ndarray]:
        """``(crops, positions)``: aligned crops of the generated face frames (what no-reference metrics read)."""
        return self.gen_crops, self.face_pos

    @cached_property
    def region_pairs(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(ref, gen, positions)``: aligned crops of the face frames, or every full frame (generated
        frames resized to the reference size)."""
        if self.config.region == "aligned":
            return self.ref_crops, self.gen_crops, self.face_pos
        return self.ref_frames, resize_to(self.gen_frames, self.geo.ref_hw), np.arange(self.size)

    @cached_property
    def gen_landmarks_px(self) -> np.ndarray:
        """(size, 68, 2) landmarks of the generated frames from the generated frames alone: dlib's detector on
        each frame (downscaled to at most ``OWN_DETECT_SIDE`` px), the largest face, its 68 points in
        generated-frame pixels (NaN rows: no face found)."""
        backend = face_backend()
        out = np.full((self.size, 68, 2), np.nan)
        if not self.size:
            return out
        scale = min(1.0, OWN_DETECT_SIDE / float(max(self.gen_frames.shape[1:3])))
        for j, (frame, boxes) in enumerate(zip(self.gen_frames, backend.detect(self.gen_frames, scale=scale))):
            if len(boxes):
                b = boxes[np.argmax((boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1]))]
                out[j] = backend.landmarks(frame[None], b[None, :4])[0]
        return out

    @cached_property
    def landmarks(self) -> tuple[np.ndarray, np.ndarray]:
        """(size, 68, 2) reference and generated landmarks in aligned-crop pixels (NaN rows: no face)."""
        lm_r = np.full((self.size, 68, 2), np.nan)
        lm_g = np.full((self.size, 68, 2), np.nan)
        if len(self.face_pos):
            backend, fi = face_backend(), self.face_index
            b_ref = self.geo.boxes[fi]
            pr = backend.landmarks(self.ref_frames[self.face_pos], b_ref)
            pg = backend.landmarks(self.gen_frames[self.face_pos], self.geo.gen_boxes[fi])
            for j, (p, i) in enumerate(zip(self.face_pos, fi)):
                lm_r[p] = transform_points(pr[j], self.geo.a_ref[i])
                lm_g[p] = transform_points(pg[j], self.geo.a_gen[i])
        return lm_r, lm_g

    @cached_property
    def gen_landmarks(self) -> np.ndarray:
        """(size, 68, 2) generated-side landmarks in aligned-crop pixels (NaN rows: no face)."""
        return self.landmarks[1]

    @cached_property
    def embeddings(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(positions, ref_emb, gen_emb)`` for every ``csim_stride``-th face frame."""
        keep = (self.face_index % int(self.config.csim_stride)) == 0
        pos, fi = self.face_pos[keep], self.face_index[keep]
        if not len(pos):
            return pos, np.zeros((0, 128)), np.zeros((0, 128))
        emb = embedder(self.config.csim_chip_size, self.config.csim_chip_padding)
        b_ref = self.geo.boxes[fi]
        return pos, emb.embed(self.ref_frames[pos], b_ref), emb.embed(self.gen_frames[pos], self.geo.gen_boxes[fi])

    @cached_property
    def arcface_embeddings(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(positions, ref_emb, gen_emb)`` of every ``csim_stride``-th face frame, each side's face aligned by
        the five ArcFace points of its own landmarks (mapped back to that side's frame pixels)."""
        from prep.faces.align import invert_affine

        from .nets.arcface import aligned_faces, five_points

        keep = (self.face_index % int(self.config.csim_stride)) == 0
        pos, fi = self.face_pos[keep], self.face_index[keep]
        lm_r, lm_g = self.landmarks
        ok = np.isfinite(lm_r[pos]).all(axis=(1, 2)) & np.isfinite(lm_g[pos]).all(axis=(1, 2))
        pos, fi = pos[ok], fi[ok]
        if not len(pos):
            return pos, np.zeros((0, 512)), np.zeros((0, 512))
        model = arcface(self.task.weights.path("arcface"))
        sides = []
        for frames, lm, aff in ((self.ref_frames, lm_r, self.geo.a_ref), (self.gen_frames, lm_g, self.geo.a_gen)):
            pts = [transform_points(five_points(lm[p]), invert_affine(aff[i])) for p, i in zip(pos, fi)]
            sides.append(model.embed(aligned_faces(frames[pos], pts)))
        return pos, sides[0], sides[1]

    @cached_property
    def fid_features(self) -> np.ndarray:
        """Inception features of this chunk's generated frames in the FID image set."""
        w = self.task.weights.get("inception")
        sel = np.flatnonzero(self.geo.fid_use[self.index])
        if self.config.region == "aligned":
            images = self.gen_crops[np.searchsorted(self.face_pos, sel)] if len(sel) else self.gen_crops[:0]
        else:
            images = self.gen_frames[sel]
        return features(w.path, w.seed, images, self.config.device)

    @cached_property
    def lpips(self) -> tuple[np.ndarray, np.ndarray]:
        """``(distances, positions)``: LPIPS of each region pair (float64)."""
        from .nets.lpips import NETS

        ref, gen, pos = self.region_pairs
        w = self.task.weights
        if not len(pos):
            return np.zeros(0), pos
        model = lpips_model(self.config.lpips_net, w.path(NETS[self.config.lpips_net]), w.path("lpips"))
        return model.distances(ref, gen).numpy(), pos

    @property
    def fvd_frames(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(ref, gen, positions)`` of the scored region, the frames FVD clips are cut from."""
        return self.region_pairs

    def i3d_features(self, clips) -> np.ndarray:
        """(N, 400) I3D features of (N, 3, T, 224, 224) clips in [-1, 1]."""
        return i3d(self.task.weights.path("i3d")).features(clips)

    @cached_property
    def gen_seq_crops(self) -> np.ndarray:
        return warp_many(self.gen_frames, self.geo.a_seq[self.index], SEQ_SIZE)

    @cached_property
    def gen_detections(self) -> list:
        if self.config.lse_detector == "s3fd":
            return s3fd(self.task.weights.path("s3fd"), self.config.device).detect(self.gen_frames, scale=0.25)  # upstream's facedet_scale
        return face_backend().detect(self.gen_frames)


class VideoInputs:
    """Whole-video inputs: collected per chunk by the worker, or read once when first asked for."""

    def __init__(self, task, geo: TaskGeometry, collect: set[str]):
        self.task, self.geo, self.config = task, geo, task.config
        self.n_frames = geo.n
        self.face = geo.face
        self._collect = collect
        self._seq = np.zeros((geo.n, SEQ_SIZE, SEQ_SIZE, 3), np.uint8) if "gen_seq_crops" in collect else None
        self._detections = [] if "gen_detections" in collect else None
        self._lm = np.full((geo.n, 68, 2), np.nan) if "gen_landmarks_px" in collect else None

    def add_chunk(self, chunk: ChunkInputs) -> None:
        if self._lm is not None:
            self._lm[chunk.index] = chunk.gen_landmarks_px
        if self._seq is not None:
            self._seq[chunk.index] = chunk.gen_seq_crops
        if self._detections is not None:
            self._detections.extend(chunk.gen_detections)

    def truncate(self, n: int) -> None:
        """The container promised more frames than decode gave: keep the first ``n``."""
        self.n_frames, self.face = n, self.face[:n]
        if self._seq is not None:
            self._seq = self._seq[:n]
        if self._lm is not None:
            self._lm = self._lm[:n]

    @property
    def gen_landmarks_px(self) -> np.ndarray:
        if self._lm is None:
            raise RuntimeError("gen_landmarks_px was not collected (no active metric needs it)")
        return self._lm

    @cached_property
    def gen_3dmm(self) -> dict | None:
        """``prep.threedmm.fit_clip`` on the generated landmarks; None without the 3DDFA basis."""
        from .metrics.head_motion import basis_available
        from prep.threedmm import fit_clip

        if not basis_available():
            return None
        lm = self.gen_landmarks_px
        return fit_clip(lm, np.isfinite(lm).all(axis=(1, 2)), (self.task.video.width, self.task.video.height))

    @cached_property
    def gen_head_pose(self) -> tuple[np.ndarray, str]:
        """((n, 3, 3) head rotations, "3dmm" | "landmarks")."""
        from .metrics._motion import euler_rotation, landmark_head_rotation

        fit = self.gen_3dmm
        if fit is not None:
            rot = euler_rotation(np.asarray(fit["mm_pose"], np.float64)[:, :3])
            rot[~np.asarray(fit["valid"], bool)] = np.nan
            return rot, "3dmm"
        return landmark_head_rotation(self.gen_landmarks_px, (self.task.video.width, self.task.video.height)), \
            "landmarks"

    @cached_property
    def gen_mm_exp(self) -> tuple[np.ndarray, np.ndarray]:
        """(generated, reference) (k, 10) expression coefficients of the frames where both exist."""
        fit = self.gen_3dmm
        if fit is None:
            raise ValueError("the 3DDFA basis is absent: no 3DMM fit of the generated frames")
        ref = self.task.clip.mm_exp
        if ref is None:
            raise ValueError("the reference shards have no mm_exp (prep without the 3DMM fit)")
        ref = np.asarray(ref, np.float64)[:self.n_frames]
        gen = np.asarray(fit["mm_exp"], np.float64)[:len(ref)]
        ok = np.asarray(fit["valid"], bool)[:len(ref)] & np.isfinite(ref).all(axis=1) & self.face[:len(ref)]
        if not ok.any():
            raise ValueError("no frame with both a reference and a generated 3DMM fit")
        return gen[ok], ref[ok]

    @property
    def gen_seq_crops(self) -> np.ndarray:
        if self._seq is None:
            raise RuntimeError("gen_seq_crops was not collected (no active metric needs it)")
        if not self.face.any():
            raise ValueError("no face in any frame" if self.config.mode == "reference-free" else "no reference face in any frame")
        return self._seq

    @property
    def gen_detections(self) -> list:
        if self._detections is None:
            raise RuntimeError("gen_detections was not collected (no active metric needs it)")
        return self._detections

    @cached_property
    def gen_audio(self) -> np.ndarray:
        from prep import media

        return media.read_audio(self.task.video.path, self.n_frames)

    @cached_property
    def lse(self) -> dict:
        """syncnet_python's scoring of the generated video (aligned or syncnet-pipeline crops)."""
        from prep import media
        from prep.audio import to_int16

        from . import syncnet_crop
        from .metrics.lse import lse

        model = syncnet(self.task.weights.path("syncnet"), self.config.device)
        if self.config.lse_preset != "fast":
            return self._lse_preset(model)
        wav = to_int16(self.gen_audio)
        if self.config.lse_crop == "aligned":
            return lse(syncnet_crop.aligned_crops(self.gen_seq_crops), wav, model)
        tracks = syncnet_crop.track_faces(self.gen_detections)
        if not tracks:
            raise ValueError("syncnet-pipeline: no face track of > 100 frames and > 100 px")
        track = max(tracks, key=lambda t: (len(t.frames), -t.start))
        cx, cy, half = syncnet_crop.smooth_track(track)
        crops = np.empty((len(track.frames), syncnet_crop.CROP_SIZE, syncnet_crop.CROP_SIZE, 3), np.uint8)
        for ch in media.iter_frames(self.task.video.path, chunk_size=int(self.config.chunk_size), start=track.start,
                                    stop=track.stop, max_pixels=self.config.limits.max_pixels):
            for j, frame in enumerate(ch.frames):
                k = ch.start + j - track.start
                crops[k] = syncnet_crop.crop_frame(frame, cx[k], cy[k], half[k])[..., ::-1]
        return lse(crops, wav[track.start * 640:track.stop * 640], model)

    def _lse_preset(self, model) -> dict:
        """The preset's upstream script on the submitted file; every track's scores and their aggregate."""
        from . import lse_upstream
        from .lse_presets import get_preset

        preset = get_preset(self.config.lse_preset)
        detector = None
        if preset.detector == "s3fd":
            detector = lse_upstream.s3fd_detector(self.task.weights.path("s3fd"), preset.facedet_scale, preset.det_conf)
        tracks = lse_upstream.run_preset(self.task.video.path, preset, model, detector)
        out = lse_upstream.aggregate(tracks, self.config.lse_track_aggregation)
        out["tracks"] = [t.to_dict() for t in tracks]
        return out

    @cached_property
    def sync_expert(self) -> dict:
        from prep.audio import melspectrogram

        scorer = sync_expert(self.task.weights.path("sync_expert"), self.config.device)
        return scorer.clip_sync(self.gen_seq_crops, melspectrogram(self.gen_audio), valid=self.face)


__all__ = ["INPUTS", "ChunkInputs", "VideoInputs", "TaskGeometry", "video_level_needs", "fid_frame_mask", "features"]
