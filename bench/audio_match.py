"""Where the submission audio check's threshold comes from (``evalkit.audio_check``).

Windows of ``--seconds`` (default 2 s, hop 1 s) of the shared real clips' audio and their driving .wav
files, decoded to 16 kHz as the evaluation does. *Same*: each window re-encoded as AAC (16 kHz mono
128 kbit/s, 16 kHz mono 24 kbit/s, 44.1 kHz stereo 64 kbit/s, muxed under a video like a submission), decoded
again and compared with the original window. *Other*: each window against every other window that does not
overlap it (other speakers, and other moments of the same speaker, the hardest case). Prints both
distributions and the margin around ``THRESHOLD``.

    python bench/audio_match.py [--videos ../shared/data/videos]
"""
from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from evalkit.audio_check import THRESHOLD, similarity  # noqa: E402
from prep import media  # noqa: E402

SR = 16000
ENCODINGS = (("aac 16k mono 128k", 16000, 1, 128_000), ("aac 16k mono 24k", 16000, 1, 24_000),
             ("aac 44.1k stereo 64k", 44100, 2, 64_000))


def reencode(wav: np.ndarray, rate: int, channels: int, bit_rate: int, tmp: Path) -> np.ndarray:
    """``wav`` (16 kHz) muxed as AAC under a 25 fps video and decoded back to 16 kHz mono."""
    import av
    from scipy.signal import resample_poly

    n_frames = int(len(wav) / SR * 25)
    x = wav if rate == SR else resample_poly(wav, rate // 100, SR // 100).astype(np.float32)
    path = tmp / "sub.mp4"
    with av.open(str(path), "w") as out:
        vs = out.add_stream("libx264", rate=25)
        vs.width, vs.height, vs.pix_fmt = 64, 64, "yuv420p"
        a = out.add_stream("aac", rate=rate)
        a.layout = "stereo" if channels == 2 else "mono"
        a.bit_rate = bit_rate
        for i in range(n_frames):
            f = av.VideoFrame.from_ndarray(np.full((64, 64, 3), 128, np.uint8), format="rgb24")
            f.pts = i
            for p in vs.encode(f):
                out.mux(p)
        for p in vs.encode():
            out.mux(p)
        pcm = (np.clip(x, -1, 1) * 32767).astype(np.int16)
        pcm = np.repeat(pcm[None], channels, 0).T.reshape(1, -1) if channels == 2 else pcm[None]
        step = 1024
        for s in range(0, pcm.shape[1] // channels, step):
            fr = av.AudioFrame.from_ndarray(np.ascontiguousarray(pcm[:, s * channels:(s + step) * channels]),
                                            format="s16", layout=a.layout.name)
            fr.sample_rate, fr.pts = rate, s
            for p in a.encode(fr):
                out.mux(p)
        for p in a.encode():
            out.mux(p)
    return media.read_audio(path, n_frames)


def windows(videos: Path, seconds: float, hop: float) -> list[tuple[str, float, np.ndarray]]:
    out = []
    for p in sorted(videos.glob("*.mp4")) + sorted(videos.glob("*.wav")):
        wav = media.read_audio(p) if p.suffix == ".mp4" else _read_wav(p)
        n, h = int(seconds * SR), int(hop * SR)
        for s in range(0, len(wav) - n + 1, h):
            out.append((p.name, s / SR, wav[s:s + n]))
    return out


def _read_wav(path: Path) -> np.ndarray:
    import av

    with av.open(str(path)) as c:
        parts = [f.to_ndarray().astype(np.float32).reshape(-1) / 32768.0 for f in c.decode(c.streams.audio[0])]
    return np.concatenate(parts)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--videos", default=str(Path(__file__).resolve().parents[2] / "shared" / "data" / "videos"))
    ap.add_argument("--seconds", type=float, default=2.0)
    ap.add_argument("--hop", type=float, default=1.0)
    args = ap.parse_args()
    win = windows(Path(args.videos), args.seconds, args.hop)
    print(f"{len(win)} windows of {args.seconds:g} s (hop {args.hop:g} s) from {args.videos}")
    same: dict[str, list[float]] = {name: [] for name, *_ in ENCODINGS}
    with tempfile.TemporaryDirectory() as tmp:
        for _, _, w in win:
            for name, rate, ch, br in ENCODINGS:
                same[name].append(similarity(w, reencode(w, rate, ch, br, Path(tmp))))
    other = []
    for i, (fi, ti, wi) in enumerate(win):
        for j, (fj, tj, wj) in enumerate(win):
            if i != j and not (fi == fj and abs(ti - tj) < args.seconds):
                other.append(similarity(wi, wj))
    other = np.array(other)
    q = (0, 1, 5, 50, 95, 99, 100)
    print(f"{'pair':<24} {'n':>6}  " + "  ".join(f"p{x:<4}" for x in q))
    for name, vals in same.items():
        v = np.array(vals)
        print(f"same, {name:<18} {len(v):>6}  " + "  ".join(f"{np.percentile(v, x):.3f}" for x in q))
    print(f"{'other clip':<24} {len(other):>6}  " + "  ".join(f"{np.percentile(other, x):.3f}" for x in q))
    lo = min(min(v) for v in same.values())
    print(f"threshold {THRESHOLD}: same min {lo:.3f} (margin {lo - THRESHOLD:+.3f}), other max {other.max():.3f} "
          f"(margin {THRESHOLD - other.max():+.3f}); false rejects {sum((np.array(v) < THRESHOLD).sum() for v in same.values())}, "
          f"false accepts {(other >= THRESHOLD).sum()}")


if __name__ == "__main__":
    main()
