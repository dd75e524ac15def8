"""Generating one video from one face: the source, the per-frame attributes, the frames.

- :class:`SourceFace`: the identity frame (full image), its aligned crop and affine, its landmarks, its
  3DMM pose and expression (so its own lip / blink codes are known), from a photo
  (:func:`refmodel.oneshot.animate.photo_source`) or from a frame of a prep output
  (:func:`refmodel.oneshot.sample.clip_source`).
- :class:`Attributes`: per frame, the lip code (from the audio), the blink code, the pose features
  relative to the source and the similarity that moves the head (from the VAE, a real clip, or — in
  reconstruction — the clip's own frames).
- :func:`render_frames`: renderer → full-resolution crops → composited frames (a generator).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .composite import Compositor, head_similarities


@dataclass
class SourceFace:
    frame: np.ndarray  # (H, W, 3) uint8: the photo / reference frame
    crop: np.ndarray  # (C, C, 3) uint8 aligned crop at the stored crop size
    affine: np.ndarray  # (2, 3) source px -> crop px
    landmarks_src: np.ndarray  # (68, 2) source px
    mm_pose: np.ndarray  # (6,)
    mm_exp: np.ndarray  # (10,)
    radius: float  # RMS landmark radius, source px

    @property
    def crop_size(self) -> int:
        return int(self.crop.shape[0])


@dataclass
class Attributes:
    lip: np.ndarray  # (T, lip_dim)
    blink: np.ndarray  # (T,)
    pose_rel: np.ndarray  # (T, 6) pose features of each frame relative to the source
    sims: np.ndarray  # (T, 2, 3) similarity moving the source's face to each frame's place

    def __len__(self) -> int:
        return len(self.blink)


def lip_codes_from_audio(model, mel: np.ndarray, num_frames: int) -> np.ndarray:
    from .lipsync import predict_codes

    return predict_codes(model.audio_to_lip, mel, num_frames)


def sampled_attributes(model, source: SourceFace, lip: np.ndarray, seed: int, pose_rel: np.ndarray | None = None
                       ) -> Attributes:
    """Pose and blinks sampled from the motion VAE (``seed``); ``pose_rel`` (T, 6) replaces the sampled pose
    (e.g. from a real clip, :func:`refmodel.oneshot.animate.clip_pose`)."""
    from .motion import sample_sequence

    n = len(lip)
    seq = sample_sequence(model.motion, n, seed)
    pose = seq[:, :6] if pose_rel is None else np.asarray(pose_rel, np.float32)[:n]
    sims = head_similarities(source.mm_pose, pose, source.radius)
    return Attributes(lip, seq[:, 6].astype(np.float32), pose.astype(np.float32), sims)


def source_codes(model, source: SourceFace) -> tuple[np.ndarray, float]:
    lip, blink = model.ae.codes(np.asarray(source.mm_exp, np.float32)[None])
    return lip[0], float(blink[0])


def render_frames(model, source: SourceFace, attrs: Attributes, seed: int = 0, steps: int | None = None,
                  device="cpu", progress=None, batch: int = 32):
    """Yield the (H, W, 3) uint8 frames of the video, in order (rendered ``batch`` frames at a time)."""
    from .render_train import full_resolution, render_residuals
    from .renderer import make_condition

    lip_s, blink_s = source_codes(model, source)
    size = model.cfg.render.image_size
    src_small = load_crop_array(source.crop, size) if source.crop.shape[0] != size else source.crop
    comp = Compositor(source.frame, source.affine, source.landmarks_src, source.crop_size)
    cond = make_condition(attrs.lip, attrs.blink, lip_s, blink_s, attrs.pose_rel)
    for i in range(0, len(attrs), batch):
        res = render_residuals(model.renderer, src_small, cond[i:i + batch], seed, steps, batch, device, progress)
        for j, r in enumerate(res):
            yield comp.render(full_resolution(source.crop, r), attrs.sims[i + j])


def load_crop_array(crop: np.ndarray, size: int) -> np.ndarray:
    """An (C, C, 3) uint8 crop resized to the renderer's size (area filter, as the training crops)."""
    import cv2

    return np.ascontiguousarray(cv2.resize(crop, (size, size), interpolation=cv2.INTER_AREA))


__all__ = ["SourceFace", "Attributes", "sampled_attributes", "render_frames", "lip_codes_from_audio", "source_codes"]
