"""``talkbench animate IMAGE AUDIO --checkpoint RUN --out video.mp4``: one photo + any audio → a talking video.

The photo is read as an image only (PIL, size-limited), the face found by the prep job's tracker (dlib),
aligned to the template crop and fitted with the 3DMM (its pose and expression: the source's own codes).
The audio is decoded by PyAV to 16 kHz mono; the video has ``len(audio) // 640`` frames at 25 fps (the
audio trimmed to that, < 40 ms) and the audio muxed (H.264 + AAC, ``prep.media.write_video``). Lips come
from the audio, pose and blinks from the motion VAE (``seed``), or the pose from a real clip
(``pose_from``: its faces tracked and fitted like prep does, pose features relative to its mean,
played forwards and backwards to the audio's length). Nothing read from the inputs becomes a path.
"""
from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np

from .generate import SourceFace

log = logging.getLogger(__name__)

MAX_IMAGE_BYTES = 64 << 20
MAX_IMAGE_PIXELS = 40_000_000
MAX_SIDE = 1024  # larger photos are scaled down to this long side before anything else
MAX_AUDIO_SECONDS = 600.0
MAX_POSE_CLIP_SECONDS = 120.0


class AnimateError(ValueError):
    """An input cannot be used (no face, not an image, no audio, too large)."""


def _regular_file(path, what: str) -> Path:
    p = Path(path)
    if not p.is_file():
        raise AnimateError(f"{what} {p}: not a file")
    return p


def read_photo(path) -> np.ndarray:
    """(H, W, 3) uint8 RGB of an image file; refuses non-images and absurd sizes, scales to ``MAX_SIDE``."""
    from PIL import Image, UnidentifiedImageError

    p = _regular_file(path, "image")
    if p.stat().st_size > MAX_IMAGE_BYTES:
        raise AnimateError(f"image {p}: larger than {MAX_IMAGE_BYTES >> 20} MB")
    try:
        with Image.open(p) as im:
            if im.width * im.height > MAX_IMAGE_PIXELS:
                raise AnimateError(f"image {p}: {im.width}x{im.height} is more than {MAX_IMAGE_PIXELS} pixels")
            im.draft("RGB", (MAX_SIDE, MAX_SIDE))
            rgb = im.convert("RGB")
    except (UnidentifiedImageError, OSError, Image.DecompressionBombError) as e:
        raise AnimateError(f"image {p}: not a readable image ({type(e).__name__})") from None
    if max(rgb.size) > MAX_SIDE:
        s = MAX_SIDE / max(rgb.size)
        rgb = rgb.resize((max(1, round(rgb.width * s)), max(1, round(rgb.height * s))), Image.Resampling.LANCZOS)
    return np.asarray(rgb)


def photo_source(image, crop_size: int = 256) -> SourceFace:
    """The face of a photo (path or (H, W, 3) uint8 array) as a :class:`SourceFace`."""
    from prep.faces import FaceConfig, process_frames

    from .features import face_radius

    frame = read_photo(image) if not isinstance(image, np.ndarray) else np.ascontiguousarray(image, np.uint8)
    cfg = FaceConfig(crop_size=crop_size, fit_3dmm=True, detect_every=1, full_detect_every=1,
                     on_no_face="flag", smoothing="none")
    rows, _ = process_frames(frame[None], cfg, clip_id="photo")
    r = rows[0]
    if not r["face_found"] or r.get("mm_exp") is None:
        raise AnimateError("no face found in the photo (dlib HOG detector; a frontal face of at least ~80 px is needed)")
    lms = np.asarray(r["landmarks_src"], np.float64).reshape(68, 2)
    return SourceFace(frame, np.ascontiguousarray(r["crop"], np.uint8), np.asarray(r["affine"], np.float64).reshape(2, 3), lms,
                      np.asarray(r["mm_pose"], np.float64), np.asarray(r["mm_exp"], np.float32),
                      face_radius(lms[None], np.array([True])))


def read_driving_audio(path) -> tuple[np.ndarray, np.ndarray, int]:
    """(16 kHz mono float32 trimmed to whole frames, its Wav2Lip mel, number of 25 fps frames)."""
    from prep import audio as A
    from prep import media

    from talkbase.timebase import SAMPLES_PER_FRAME

    p = _regular_file(path, "audio")
    try:
        wav = media.read_audio(p)
    except media.MediaError as e:
        raise AnimateError(f"audio {p}: {e}") from None
    if len(wav) > MAX_AUDIO_SECONDS * 16000:
        raise AnimateError(f"audio {p}: longer than {MAX_AUDIO_SECONDS:.0f} s")
    n = len(wav) // SAMPLES_PER_FRAME
    if n < 1:
        raise AnimateError(f"audio {p}: shorter than one video frame (40 ms)")
    wav = wav[:A.num_samples(n)]
    return wav, A.melspectrogram(wav), n


def clip_pose(path, num_frames: int) -> np.ndarray:
    """Pose features (num_frames, 6) of a real clip's face, relative to its mean, looped forwards and
    backwards to ``num_frames``."""
    from prep import media
    from prep.faces import FaceConfig, process_frames

    from .features import face_radius, pose_centre, pose_features

    p = _regular_file(path, "pose clip")
    frames = []
    for chunk in media.iter_frames(p, stop=int(MAX_POSE_CLIP_SECONDS * 25)):
        frames.extend(chunk.frames)
    if not frames:
        raise AnimateError(f"pose clip {p}: no video frames")
    rows, _ = process_frames(np.stack(frames), FaceConfig(fit_3dmm=True, on_no_face="flag"), clip_id="pose")
    ok = np.array([bool(r["face_found"]) and r.get("mm_pose") is not None for r in rows])
    if ok.sum() < 2:
        raise AnimateError(f"pose clip {p}: a face on fewer than 2 frames")
    pose = np.stack([np.asarray(r["mm_pose"], np.float64) for r, k in zip(rows, ok) if k])
    lms = np.stack([np.asarray(r["landmarks_src"], np.float64).reshape(68, 2) for r, k in zip(rows, ok) if k])
    radius = face_radius(lms, np.ones(len(lms), bool))
    feats = pose_features(pose, radius, pose_centre(pose, radius))
    loop = np.concatenate([feats, feats[::-1][1:-1]]) if len(feats) > 2 else feats
    return loop[np.arange(num_frames) % len(loop)].astype(np.float32)


def animate(image, audio, checkpoint, out, seed: int = 0, pose_from=None, steps: int | None = None,
            device: str = "auto", progress: bool = True) -> Path:
    """Write the talking video of ``image`` driven by ``audio`` to ``out`` (see the module docstring);
    ``out.json`` beside it records the inputs, the seed and the sampled attributes."""
    from prep import media
    from refmodel.train import pick_device
    from talkbase.fileio import atomic_write_text

    from .generate import lip_codes_from_audio, render_frames, sampled_attributes
    from .train import load_model

    model = load_model(checkpoint)
    dev = pick_device(device)
    model.to(dev)
    source = photo_source(image, int(model.checkpoint.get("crop_size", 256)))
    wav, mel, n = read_driving_audio(audio)
    lip = lip_codes_from_audio(model, mel, n)
    attrs = sampled_attributes(model, source, lip, seed, clip_pose(pose_from, n) if pose_from else None)
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=n, desc="animate", unit="frame", dynamic_ncols=True)
    out = Path(out)
    media.write_video(out, render_frames(model, source, attrs, seed, steps, dev, bar), wav)
    if bar is not None:
        bar.close()
    info = {"image": str(image), "audio": str(audio), "checkpoint": str(checkpoint), "seed": int(seed),
            "pose_from": str(pose_from) if pose_from else None, "frames": int(n), "fps": 25.0,
            "blink_code": np.round(attrs.blink, 4).tolist(), "pose_rel": np.round(attrs.pose_rel, 5).tolist()}
    atomic_write_text(out.with_suffix(out.suffix + ".json"), json.dumps(info) + "\n")
    log.info("animate: wrote %s (%d frames)", out, n)
    return out


__all__ = ["animate", "photo_source", "read_photo", "read_driving_audio", "clip_pose", "AnimateError"]
