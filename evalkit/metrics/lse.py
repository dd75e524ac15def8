"""LSE-D / LSE-C: syncnet_python's ``SyncNetInstance.evaluate`` scoring on in-memory crops, vectorised.

Inputs are what ``evaluate`` reads back from its temporary files: (T, 224, 224, 3) uint8 BGR crops at
25 fps and int16 mono 16 kHz audio. The math, step for step:

1. MFCC = ``python_speech_features.mfcc(int16 audio, 16000)`` → (13, M), 100 steps/s.
2. ``min_length = min(T, len(audio) // 640)``; windows ``i = 0 … min_length − 6`` (upstream's
   ``lastframe = min_length − 5`` is exclusive, so one window fewer than would fit).
3. Video window ``i`` = frames ``i … i+4``; audio window ``i`` = MFCC steps ``4i … 4i+19``; each through
   SyncNet → 1024-d embeddings ``v_i`` and ``a_i``.
4. ``a`` is zero-padded by ``vshift`` rows at both ends; ``d[i, j] = ‖v_i − a_pad[i + j] + 1e−6‖₂`` for
   ``j = 0 … 2·vshift`` (``torch.pairwise_distance``'s eps), i.e. audio shifted by ``j − vshift`` windows.
5. ``mdist[j] = mean_i d[i, j]``; LSE-D = ``min_j mdist``; LSE-C = ``median(mdist) − min`` (torch's
   median: the lower middle value for an even count); offset = ``vshift − argmin``.

Offset sign: video frame ``i`` best matches audio window ``i − offset``, so a positive offset means the
audio is *ahead* of the video by that many frames (sound heard before the mouth moves).

Upstream loops over batches of 20 windows, slicing a float64 copy of the whole clip, and over frames
for the distances; here the windows are built once, the lip CNN runs as its exact 2-D equivalent
(``SyncNet.lip_window_embeddings``) and all distances are one tensor op — same numbers to float32
rounding.
"""
from __future__ import annotations

import logging

import numpy as np
import torch

log = logging.getLogger(__name__)

VERSION = "lse-1"
from talkbase.timebase import FPS, MFCC_PER_FRAME, SAMPLE_RATE, SAMPLES_PER_FRAME, SYNC_WINDOW

from .base import base_protocol, video_value_spec

WINDOW = SYNC_WINDOW
MFCC_STEPS = WINDOW * MFCC_PER_FRAME  # 20
PAIRWISE_EPS = 1e-6  # torch.nn.functional.pairwise_distance default, added to the difference
DEFAULT_VSHIFT = 15

LSE_PROTOCOL = dict(
    impl="syncnet_python SyncNetInstance.evaluate", fps=FPS, sample_rate=SAMPLE_RATE, crop_size=224,
    color="BGR", value_range="0-255", window_frames=WINDOW, mfcc="python_speech_features.mfcc(int16, 16000)",
    mfcc_steps_per_window=MFCC_STEPS, vshift=DEFAULT_VSHIFT, padding="zeros", distance="L2 (eps 1e-6)",
    lse_d="min over offsets of the mean distance", lse_c="median - min of the per-offset mean distance",
    offset="vshift - argmin (positive: audio ahead of video)")


def mfcc_matrix(audio: np.ndarray) -> np.ndarray:
    """(13, M) float32 MFCC of int16 16 kHz audio, as ``evaluate`` builds ``cct``."""
    import python_speech_features

    return np.ascontiguousarray(python_speech_features.mfcc(audio, SAMPLE_RATE).T).astype(np.float32)


def num_windows(num_frames: int, num_samples: int) -> int:
    """How many 5-frame windows ``evaluate`` scores for a clip (``min_length − 5``)."""
    return min(num_frames, num_samples // SAMPLES_PER_FRAME) - WINDOW


def _check_inputs(frames: np.ndarray, audio: np.ndarray) -> np.ndarray:
    frames = np.asarray(frames)
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8:
        raise ValueError(f"frames must be (T, H, W, 3) uint8 BGR, got {frames.shape} {frames.dtype}")
    audio = np.asarray(audio)
    if audio.ndim != 1:
        raise ValueError(f"audio must be mono 1-D, got shape {audio.shape}")
    if audio.dtype != np.int16:
        if not np.issubdtype(audio.dtype, np.floating):
            raise ValueError(f"audio must be int16 (or float in [-1, 1]), got {audio.dtype}")
        from prep.audio import to_int16

        audio = to_int16(audio)  # the WAV syncnet_python would have read
    return audio


def _lip_embeddings(model, frames_t: torch.Tensor, n: int, batch_size: int) -> torch.Tensor:
    fast = getattr(model, "lip_window_embeddings", None)
    if fast is not None:
        return fast(frames_t, n, batch_size=batch_size)
    out = []  # any SyncNet-interface module: explicit (N, 3, 5, H, W) windows
    device = _device(model)
    with torch.inference_mode():
        for i0 in range(0, n, batch_size):
            idx = torch.arange(i0, min(n, i0 + batch_size))[:, None] + torch.arange(WINDOW)[None, :]
            out.append(model.forward_lip(frames_t[idx].permute(0, 2, 1, 3, 4).to(device).float()))
    return torch.cat(out)


def _device(model) -> torch.device:
    p = next(iter(model.parameters()), None) if hasattr(model, "parameters") else None
    return p.device if p is not None else torch.device("cpu")


def _aud_embeddings(model, mfcc_t: torch.Tensor, n: int, batch_size: int) -> torch.Tensor:
    fast = getattr(model, "aud_window_embeddings", None)
    if fast is not None:
        return fast(mfcc_t, n)
    windows = mfcc_t.unfold(1, MFCC_STEPS, MFCC_PER_FRAME)[:, :n].permute(1, 0, 2).unsqueeze(1)
    device = _device(model)
    with torch.inference_mode():
        return torch.cat([model.forward_aud(windows[i:i + batch_size].contiguous().to(device))
                          for i in range(0, n, batch_size)])


def offset_distances(video_emb: torch.Tensor, audio_emb: torch.Tensor, vshift: int = DEFAULT_VSHIFT,
                     chunk: int = 256, windows=None) -> torch.Tensor:
    """(n, 2·vshift + 1) distances ``‖v_k − a_pad[i_k + j] + eps‖`` with zero-padded audio (calc_pdist).

    ``video_emb[k]`` is the embedding of window ``i_k = windows[k]`` (default: ``i_k = k``, every window);
    ``audio_emb`` holds every audio window of the clip. A subset of windows gives the rows of the full
    table for those windows (prep's sync QA scores at most ``max_windows`` of a long clip)."""
    n = video_emb.shape[0]
    padded = torch.nn.functional.pad(audio_emb, (0, 0, vshift, vshift))
    shifts = torch.arange(2 * vshift + 1)
    index = torch.arange(n) if windows is None else torch.as_tensor(windows, dtype=torch.long)
    out = []
    for i0 in range(0, n, chunk):
        rows = torch.arange(i0, min(n, i0 + chunk))
        diff = video_emb[rows, None, :] - padded[index[rows][:, None] + shifts[None, :]]
        out.append(torch.linalg.vector_norm(diff + PAIRWISE_EPS, dim=-1))
    return torch.cat(out) if out else video_emb.new_zeros((0, 2 * vshift + 1))


def scores_from_distances(dists: torch.Tensor, vshift: int = DEFAULT_VSHIFT) -> dict:
    """Offset, LSE-D, LSE-C and framewise confidence from the (n, 2·vshift + 1) distance table."""
    from scipy.signal import medfilt

    mdist = dists.mean(dim=0)
    minval, minidx = torch.min(mdist, 0)
    median = torch.median(mdist)
    framewise = (median - dists[:, int(minidx)]).numpy().astype(np.float64)
    return dict(offset=int(vshift - int(minidx)), lse_d=float(minval), lse_c=float(median - minval),
                mean_dists=mdist.numpy(), framewise_conf=medfilt(framewise, kernel_size=9))


def lse(frames: np.ndarray, audio: np.ndarray, model, vshift: int = DEFAULT_VSHIFT,
        batch_size: int = 32) -> dict:
    """syncnet_python's offset / LSE-D / LSE-C for (T, 224, 224, 3) uint8 BGR 25 fps crops and int16
    mono 16 kHz audio, with ``model`` a SyncNet-interface module (``forward_lip`` / ``forward_aud``).

    Returns ``offset`` (int, positive = audio ahead), ``lse_d``, ``lse_c``, ``dists`` (n, 2·vshift+1),
    ``mean_dists`` (2·vshift+1,), ``framewise_conf`` (n,, median-filtered as upstream logs it),
    ``num_windows``. Raises ValueError for clips shorter than 6 frames of both video and audio.
    """
    audio = _check_inputs(frames, audio)
    n = num_windows(len(frames), len(audio))
    if n < 1:
        raise ValueError(f"clip too short for SyncNet: {len(frames)} frames, {len(audio)} samples "
                         f"(needs at least {WINDOW + 1} frames of both)")
    if len(frames) * SAMPLES_PER_FRAME != len(audio):
        log.debug("audio (%d samples) and video (%d frames) lengths differ", len(audio), len(frames))
    model.eval()
    with torch.inference_mode():
        frames_t = torch.from_numpy(np.ascontiguousarray(frames[:n + WINDOW - 1])).permute(0, 3, 1, 2)
        mfcc_t = torch.from_numpy(mfcc_matrix(audio))
        video_emb = _lip_embeddings(model, frames_t, n, batch_size).float().cpu()
        audio_emb = _aud_embeddings(model, mfcc_t, n, max(batch_size, 256)).float().cpu()
        dists = offset_distances(video_emb, audio_emb, vshift)
        out = scores_from_distances(dists, vshift)
    out.update(dists=dists.numpy(), num_windows=n, vshift=vshift)
    return out


# ---------------------------------------------------------------- the metric specs (LSE-D and LSE-C)

def _crop_protocol(config) -> dict:
    from .. import syncnet_crop

    if config.lse_crop == "aligned":
        whose = "the video's own tracked face" if config.mode == "reference-free" else "the reference"
        return {"crop": "aligned", "crop_how": f"{whose}'s affine warped straight to 224x224 (nearest face frame's "
                                              f"affine where {whose} has no face), RGB->BGR"}
    detector = ("prep.faces dlib HOG boxes, detection on every frame at full resolution" if config.lse_detector == "dlib"
                else "S3FD sfd_face.pth boxes at scale 0.25, confidence > 0.9, detection on every frame")
    return {"crop": "syncnet-pipeline", "detector": config.lse_detector, "detector_how": detector,
            "pipeline": {**syncnet_crop.PIPELINE_PROTOCOL, "detector": config.lse_detector},
            "track": "the longest track"}


def _protocol(config) -> dict:
    from ..lse_presets import get_preset

    preset = get_preset(config.lse_preset)
    if preset.pipeline == "fast":
        frames = ("every frame and its audio" if config.mode == "reference-free" else
                  "the first min(generated, reference) frames and their audio")
        return {**base_protocol(VERSION, config), **LSE_PROTOCOL, **_crop_protocol(config),
                "frames": f"{frames} from the submitted video", "aggregation": "mean over videos",
                "preset": preset.protocol()}
    tracks = ("one per video (the whole frame)" if preset.pipeline == "whole-frame" else
              f"{config.lse_track_aggregation} over the video's face tracks"
              + (" (int(mean) offset)" if config.lse_track_aggregation == "mean" else " (the highest LSE-C)"))
    return {**base_protocol(VERSION, config), **LSE_PROTOCOL, "crop": preset.pipeline, "preset": preset.protocol(),
            "frames": "the whole submitted video, read as the preset's upstream script reads it",
            "track_aggregation": config.lse_track_aggregation if preset.pipeline == "tracked" else "none",
            "per_video": tracks, "aggregation": "mean over videos of the per-video value"}


def _weights(config) -> tuple[str, ...]:
    from ..lse_presets import get_preset

    preset = get_preset(config.lse_preset)
    s3fd = preset.detector == "s3fd" or (preset.pipeline == "fast" and config.lse_crop == "syncnet-pipeline"
                                         and config.lse_detector == "s3fd")
    return ("syncnet", "s3fd") if s3fd else ("syncnet",)


def _value(key: str):
    def value(video, config):
        r = video.lse
        cols = {"lse_offset": int(r["offset"]), "lse_windows": int(r["num_windows"]), "_frames": int(r["num_windows"])}
        if "tracks" in r:
            cols["lse_tracks"] = r["tracks"]
            cols["lse_n_tracks"] = len(r["tracks"])
        return r[key], None, cols
    return value


def _track_type():
    import pyarrow as pa

    return pa.list_(pa.struct([("track", pa.int32()), ("start", pa.int32()), ("stop", pa.int32()),
                               ("offset", pa.int32()), ("lse_d", pa.float64()), ("lse_c", pa.float64()),
                               ("windows", pa.int32())]))


_COLUMNS = (("lse_offset", "int32"), ("lse_windows", "int32"), ("lse_n_tracks", "int32"), ("lse_tracks", _track_type()))
SPECS = (
    video_value_spec(name="lse_d", label="LSE-D", version=VERSION, unit="", higher_is_better=False,
                     modes=("reconstruction", "cross", "reference-free"), needs=("gen_audio", "lse"),
                     description="SyncNet lip-sync error distance: min over offsets of the mean embedding distance",
                     protocol=_protocol, value=_value("lse_d"), weights=_weights, columns=_COLUMNS,
                     valid_range=(0.0, None), order=50),
    video_value_spec(name="lse_c", label="LSE-C", version=VERSION, unit="", higher_is_better=True,
                     modes=("reconstruction", "cross", "reference-free"), needs=("gen_audio", "lse"),
                     description="SyncNet lip-sync confidence: median minus min of the per-offset mean distance",
                     protocol=_protocol, value=_value("lse_c"), weights=_weights, columns=_COLUMNS,
                     valid_range=(0.0, None), order=51),
)

__all__ = ["lse", "offset_distances", "scores_from_distances", "mfcc_matrix", "num_windows", "LSE_PROTOCOL",
           "DEFAULT_VSHIFT", "SPECS"]
