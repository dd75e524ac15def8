"""Writing videos: the deterministic H.264 + AAC writer the demo, the baselines, the reference models and the
tests use (``prep.media.write_video`` re-exports it)."""
from __future__ import annotations

import os
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from talkbase.timebase import FPS, SAMPLE_RATE


def write_video(path, frames, audio: np.ndarray | None = None, fps: float = FPS,
                sample_rate: int = SAMPLE_RATE, codec: str = "libx264", crf: int = 18,
                audio_codec: str = "aac") -> Path:
    """Write RGB uint8 frames (iterable of H×W×3, or a (T,H,W,3) array) and optional mono float audio.

    Deterministic for the same inputs (single-threaded, CPU-independent encoder, fixed options), written
    atomically.
    Width/height are made even (yuv420p needs it) by edge padding.
    """
    import tempfile

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=path.suffix or ".mp4", dir=path.parent)
    os.fchmod(fd, 0o644)
    os.close(fd)
    rate = Fraction(fps).limit_denominator(1001)
    try:
        with av.open(tmp, mode="w", format="mp4" if path.suffix in ("", ".mp4") else None,
                     options={"fflags": "+bitexact"}) as out:
            vs = out.add_stream(codec, rate=rate)
            vs.pix_fmt = "yuv420p"
            vs.codec_context.thread_count = 1
            vs.codec_context.flags |= getattr(av.codec.context.Flags, "bitexact", 0)
            if codec == "libx264":
                # cpu-independent: x264's AVX-512 paths read uninitialised memory, so without it the same
                # frames encode to different bytes depending on the heap (measured: 12 of 12 runs differed)
                vs.options = {"crf": str(crf), "preset": "medium",
                              "x264-params": "threads=1:lookahead-threads=1:sliced-threads=0:cpu-independent=1"}
            as_ = None
            if audio is not None:
                as_ = out.add_stream(audio_codec, rate=sample_rate)
                as_.layout = "mono"
            first = True
            for index, img in enumerate(frames):
                img = np.ascontiguousarray(img, dtype=np.uint8)
                h, w = img.shape[:2]
                if h % 2 or w % 2:
                    img = np.pad(img, ((0, h % 2), (0, w % 2), (0, 0)), mode="edge")
                if first:
                    vs.height, vs.width = img.shape[:2]
                    first = False
                vf = av.VideoFrame.from_ndarray(img, format="rgb24")
                vf.pts, vf.time_base = index, Fraction(1, 1) / rate  # explicit timestamps: nothing implicit
                for pkt in vs.encode(vf):
                    out.mux(pkt)
            if first:
                raise ValueError(f"{path}: no frames to write")
            for pkt in vs.encode():
                out.mux(pkt)
            if as_ is not None:
                pcm = (np.clip(np.asarray(audio, np.float32), -1, 1) * 32767).astype(np.int16)
                step = 1024
                for s in range(0, len(pcm), step):
                    fr = av.AudioFrame.from_ndarray(pcm[None, s:s + step], format="s16", layout="mono")
                    fr.sample_rate = sample_rate
                    fr.pts = s
                    for pkt in as_.encode(fr):
                        out.mux(pkt)
                for pkt in as_.encode():
                    out.mux(pkt)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


__all__ = ["write_video"]
