"""Putting a rendered face crop back into the photo's frame, with the head moved by the in-plane pose.

The 3DMM camera is scaled orthographic (``prep.threedmm``): a change of pose from the source to frame ``t``
moves the face in the image by ``S_t``, the least-squares similarity between the 3DMM mean shape's keypoints
projected with the source's pose and with frame t's (:func:`head_similarities`; yaw and pitch shift the
projected face too). In reconstruction ``S_t`` comes from the stored crop affines instead
(:func:`relative_similarity`).
The photo is warped by ``S_t`` on the head only, fading to no motion on the background over a smooth
elliptical weight around the face (as the synthetic demo data moves its heads), and the rendered crop is
pasted through ``A_t = A_source ∘ S_t⁻¹`` (the source crop's affine carried along with the head) with a
feathered face-region mask, so nothing but the face and its surroundings is replaced.
"""
from __future__ import annotations

import numpy as np

from prep.faces.align import apply_affine, invert_affine


def _h(a: np.ndarray) -> np.ndarray:
    return np.vstack([np.asarray(a, np.float64).reshape(2, 3), [0.0, 0.0, 1.0]])


def absolute_pose(mm_pose_source, pose_rel, radius: float) -> np.ndarray:
    """(T, 6) mm_pose of frames whose pose features relative to the source are ``pose_rel`` (T, 6)."""
    src = np.asarray(mm_pose_source, np.float64)
    rel = np.atleast_2d(np.asarray(pose_rel, np.float64))
    out = np.empty((len(rel), 6))
    out[:, :3] = src[:3] + rel[:, :3]
    out[:, 3:5] = src[3:5] + rel[:, 3:5] * radius
    out[:, 5] = src[5] * np.exp(rel[:, 5])
    return out


def head_similarities(mm_pose_source, pose_rel, radius: float, bfm=None) -> np.ndarray:
    """(T, 2, 3) similarities moving the source's face to each frame's pose: the 3DMM mean shape's 68
    keypoints projected with the source pose and with the frame's (``prep.threedmm.project_keypoints``),
    related by a least-squares similarity (so yaw and pitch move the face as the camera sees it)."""
    from prep.faces.align import umeyama
    from prep.threedmm import NUM_EXP, NUM_ID, load_bfm

    bfm = bfm if bfm is not None else load_bfm()
    poses = np.vstack([np.asarray(mm_pose_source, np.float64)[None], absolute_pose(mm_pose_source, pose_rel, radius)])
    pts = _project(poses, bfm, NUM_ID, NUM_EXP)
    return np.stack([umeyama(pts[0], p) for p in pts[1:]])


def _project(poses: np.ndarray, bfm, num_id: int, num_exp: int) -> np.ndarray:
    from prep.threedmm import project_keypoints

    return project_keypoints(poses, np.zeros(num_id), np.zeros((len(poses), num_exp)), bfm)


def crop_affine(source_affine: np.ndarray, sim: np.ndarray) -> np.ndarray:
    """The source->crop affine of the moved head: ``A_source ∘ sim⁻¹``."""
    return (_h(source_affine) @ _h(invert_affine(sim)))[:2]


def relative_similarity(affine_t: np.ndarray, affine_source: np.ndarray) -> np.ndarray:
    """The similarity moving the source frame's face onto frame t's, from the two stored crop affines."""
    return (_h(invert_affine(affine_t)) @ _h(affine_source))[:2]


def head_weight(frame_hw: tuple[int, int], landmarks_src: np.ndarray) -> np.ndarray:
    """(H, W) float32: 1 on the head (an ellipse around the face, reaching above it for the hair), falling
    smoothly to 0 at twice that size."""
    h, w = frame_hw
    lm = np.asarray(landmarks_src, np.float64)
    e = float(np.linalg.norm(lm[42:48].mean(0) - lm[36:42].mean(0)))
    centre = lm.mean(0) - np.array([0.0, 0.3 * e])
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
    r = np.sqrt(((xs - centre[0]) / (1.7 * e)) ** 2 + ((ys - centre[1]) / (2.2 * e)) ** 2)
    u = np.clip(r - 1.0, 0.0, 1.0)
    return (1.0 - u * u * (3 - 2 * u)).astype(np.float32)


def move_head(frame: np.ndarray, weight: np.ndarray, sim: np.ndarray) -> np.ndarray:
    """``frame`` with the head (``weight``) moved by ``sim`` (backward warp, blended towards the background)."""
    import cv2

    h, w = frame.shape[:2]
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
    inv = invert_affine(sim).astype(np.float32)
    px = xs + weight * (inv[0, 0] * xs + inv[0, 1] * ys + inv[0, 2] - xs)
    py = ys + weight * (inv[1, 0] * xs + inv[1, 1] * ys + inv[1, 2] - ys)
    return cv2.remap(np.ascontiguousarray(frame), px, py, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT_101)


def face_mask(crop_size: int, landmarks: np.ndarray | None = None) -> np.ndarray:
    """(S, S) float32: the face (jaw line and brows, grown by 4 % of S), feathered by 4 % of S."""
    import cv2

    from prep.faces.align import template

    s = int(crop_size)
    pts = template(s) if landmarks is None else np.asarray(landmarks, np.float64)
    hard = np.zeros((s, s), np.uint8)
    brows = pts[17:27] - np.array([0.0, 0.04 * s])
    hull = cv2.convexHull(np.round(np.concatenate([pts[0:17], brows]) * 16).astype(np.int32))
    cv2.fillConvexPoly(hard, hull, 1, lineType=cv2.LINE_8, shift=4)
    dist = cv2.distanceTransform((hard == 0).astype(np.uint8), cv2.DIST_L2, 5)
    return np.clip(1.0 - (dist - 0.04 * s) / (0.04 * s), 0.0, 1.0).astype(np.float32)


class Compositor:
    """Frames of one video: the source frame with the head moved and the rendered crop pasted."""

    def __init__(self, frame: np.ndarray, affine: np.ndarray, landmarks_src: np.ndarray, crop_size: int):
        self.frame = np.ascontiguousarray(frame)
        self.affine = np.asarray(affine, np.float64).reshape(2, 3)
        self.weight = head_weight(frame.shape[:2], landmarks_src)
        self.mask = face_mask(crop_size)

    def render(self, crop: np.ndarray, sim: np.ndarray) -> np.ndarray:
        from prep.faces.align import paste_back

        moved = move_head(self.frame, self.weight, sim)
        return paste_back(moved, crop, crop_affine(self.affine, sim), mask=self.mask)


def landmarks_moved(landmarks_src: np.ndarray, sim: np.ndarray) -> np.ndarray:
    return apply_affine(sim, landmarks_src)


__all__ = ["head_similarities", "absolute_pose", "crop_affine", "relative_similarity", "head_weight", "move_head",
           "face_mask", "Compositor", "landmarks_moved"]
