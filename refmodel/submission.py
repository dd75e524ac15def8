"""Shared plumbing of every generator that writes a submission (the model and the baselines).

A submission is ``OUT/<clip_id>.mp4``: the source video at 25 fps with the lower face of every frame
that has a face replaced, pasted back through the frame's stored affine with the feathered mouth mask
of ``prep.faces.align`` (frames without a face are copied), and the *driving* audio muxed in. Its
length is the shorter of the video and the driving audio.

Clips are :class:`prep.output.Clip` rows read through :class:`prep.output.PrepOutput`; the source video a
submission is pasted into is the one the prep output names, resolved against it and sha256-checked.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Callable

import numpy as np

from talkbase.timebase import MEL_WINDOW, SAMPLES_PER_FRAME

if TYPE_CHECKING:
    from prep.output import Clip

log = logging.getLogger(__name__)


@dataclass
class DrivingAudio:
    """Audio that drives a clip: its mel (Wav2Lip), the 16 kHz waveform and its length in frames."""

    name: str
    mel: np.ndarray
    wav: np.ndarray
    num_frames: int


def list_clips(prep_out, clip_ids=None, sources: bool = True) -> list["Clip"]:
    """Clips of a prep output with their mel (all, sorted by id, or ``clip_ids`` in that order); unknown
    ids raise ``KeyError``.

    With ``sources`` each clip's ``source_path`` is replaced by its source video's absolute path, resolved
    against the prep output and checked against the sha256 recorded at prep time
    (``PrepOutput.verified_source``; raises ``prep.output.SourceChanged``): what a submission is pasted into.
    """
    from .data import open_prep

    prep = open_prep(prep_out)
    found = {c.clip_id: c for c in prep.clips(audio=True, clip_ids=clip_ids)}
    wanted = list(found) if clip_ids is None else list(clip_ids)
    missing = [c for c in wanted if c not in found]
    if missing:
        raise KeyError(f"clips not in {prep.path}: {missing}")
    out = [found[c] for c in wanted]
    if sources:
        out = [replace(c, source_path=str(prep.verified_source(c))) for c in out]
    return out


def driving_audio(prep_out, clip: "Clip", audio_from=None) -> DrivingAudio:
    """The clip's own audio (``audio_from=None``), another clip's (a clip id of ``prep_out``) or an
    audio/video file's. ``clip`` comes from :func:`list_clips` (its source resolved)."""
    from prep import audio as A
    from prep import media

    from .data import open_prep

    prep = open_prep(prep_out)
    if audio_from is None or audio_from == clip.clip_id:
        return DrivingAudio(clip.clip_id, clip.mel, media.read_audio(clip.source_path, clip.num_frames),
                            clip.num_frames)
    try:
        other = list_clips(prep, [audio_from])[0]
    except KeyError:
        path = Path(audio_from)
        if not path.is_file():
            raise FileNotFoundError(f"--audio-from {audio_from!r} is neither a clip id of {prep.path} nor a file")
        wav = media.read_audio(path)
        n = len(wav) // SAMPLES_PER_FRAME
        wav = wav[:A.num_samples(n)]
        return DrivingAudio(path.stem, A.melspectrogram(wav), wav, n)
    return DrivingAudio(other.clip_id, other.mel, media.read_audio(other.source_path, other.num_frames),
                        other.num_frames)


def padded_mel_windows(mel: np.ndarray, frames) -> np.ndarray:
    """(len(frames), 80, 16) Wav2Lip windows; windows running past the end repeat the last mel step."""
    from prep.audio import mel_start

    frames = list(frames)
    need = max((mel_start(f) + MEL_WINDOW for f in frames), default=0)
    if need > mel.shape[1]:
        mel = np.pad(mel, ((0, 0), (0, need - mel.shape[1])), mode="edge")
    return np.stack([mel[:, mel_start(f):mel_start(f) + MEL_WINDOW] for f in frames]).astype(np.float32)


def reference_frames(face_frames, min_gap: int = 5) -> dict[int, int]:
    """Reference frame of every face frame: fixed per clip for temporal stability.

    Two anchors, the face frames nearest 25 % and 75 % through the clip; each frame uses the first
    anchor at least ``min_gap`` frames away (the second when the first is too close).
    """
    face_frames = sorted(int(f) for f in face_frames)
    if not face_frames:
        return {}
    n = face_frames[-1] + 1
    anchors = []
    for q in (0.25, 0.75):
        target = q * (n - 1)
        anchors.append(min(face_frames, key=lambda f: (abs(f - target), f)))
    out = {}
    for f in face_frames:
        far = [a for a in anchors if abs(a - f) >= min_gap]
        if far:
            out[f] = far[0]
        else:  # short clip: the face frame farthest away
            out[f] = max(face_frames, key=lambda g: (abs(g - f), -g))
    return out


def clip_frame_rows(prep_out, clip_id: str) -> dict[int, dict]:
    """frame_index → {crop bytes, affine (2, 3)} for the clip's face frames."""
    from .data import open_prep

    t = open_prep(prep_out).clip_frames(clip_id, ["frame_index", "crop", "face_found", "affine"])
    out = {}
    for r in t.to_pylist():
        if r["face_found"] and r["crop"] is not None and r["affine"] is not None:
            out[int(r["frame_index"])] = {"crop": r["crop"],
                                          "affine": np.asarray(r["affine"], np.float64).reshape(2, 3)}
    return out


def output_path(out_dir, clip_id: str) -> Path:
    """``OUT/<clip_id>.mp4``, refusing ids that would leave ``OUT``."""
    parts = clip_id.split("/")
    if clip_id.startswith("/") or "\\" in clip_id or any(p in ("", ".", "..") for p in parts):
        raise ValueError(f"unsafe clip id {clip_id!r}")
    return Path(out_dir).joinpath(*parts[:-1], parts[-1] + ".mp4")


def paste_mask(crop_size: int) -> np.ndarray:
    """Feathered template mouth mask of ``prep.faces.align`` (the region a submission replaces)."""
    from prep.faces.align import mouth_mask

    return mouth_mask(crop_size)


def render_clip(clip: "Clip", rows: dict[int, dict], num_frames: int, wav: np.ndarray, out_path,
                crop_for_frame: Callable[[int], np.ndarray | None]) -> Path:
    """Decode the source (``clip.source_path``, as :func:`list_clips` resolves it), paste ``crop_for_frame(f)`` ((S, S, 3) uint8 at the stored crop size, or None to
    keep the frame) into each face frame, and write ``out_path`` with ``wav`` muxed."""
    from prep import audio as A
    from prep import media
    from prep.faces.align import paste_back

    mask = paste_mask(clip.crop_size)

    def frames():
        for chunk in media.iter_frames(clip.source_path, stop=num_frames):
            for j, frame in enumerate(chunk.frames):
                f = chunk.start + j
                crop = crop_for_frame(f) if f in rows else None
                yield frame if crop is None else paste_back(frame, crop, rows[f]["affine"], mask=mask)

    return media.write_video(out_path, frames(), wav[:A.num_samples(num_frames)])


def upscale(crop: np.ndarray, size: int) -> np.ndarray:
    """A model-resolution crop (s, s, 3) uint8 → (size, size, 3) (bicubic)."""
    import cv2

    if crop.shape[0] == size:
        return crop
    return np.clip(cv2.resize(crop, (size, size), interpolation=cv2.INTER_CUBIC), 0, 255).astype(np.uint8)


__all__ = ["DrivingAudio", "list_clips", "driving_audio", "padded_mel_windows", "reference_frames",
           "clip_frame_rows", "output_path", "paste_mask", "render_clip", "upscale"]
