"""Speech-like audio for the synthetic demo set, and the mouth opening that is a pure function of it.

:func:`synthesize_speech`: syllables at ~4.5 Hz grouped into words and phrases with pauses, a voiced harmonic
source with a moving pitch contour, shaped by vowel formants (additive synthesis with a cascade-resonator
spectral envelope), plus consonant noise bursts. :func:`mouth_openness`: band-limited loudness per video
frame, so the audio → mouth relation a lip-sync model learns is real and measurable.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from talkbase.timebase import FPS, SAMPLE_RATE


# --------------------------------------------------------------------------------------------- speech

# (F1, F2, F3) Hz of an adult male voice (Peterson & Barney-like averages) and how far the jaw opens for
# the vowel; open vowels are also intrinsically louder, which is what ties loudness to mouth opening.
_VOWELS = {
    "a": ((730, 1090, 2440), 1.00),
    "o": ((570, 840, 2410), 0.80),
    "e": ((530, 1840, 2480), 0.80),
    "@": ((500, 1500, 2500), 0.70),
    "u": ((300, 870, 2240), 0.55),
    "i": ((270, 2290, 3010), 0.55),
}
_FORMANT_BW = (80.0, 100.0, 150.0, 220.0)  # Hz, F1..F4
_TARGET_LOUD_DBFS = -16.0  # 95th percentile of 40 ms RMS after normalisation
OPEN_FLOOR_DB = -42.0  # band loudness at which the mouth is closed
OPEN_TOP_DB = -17.0  # band loudness at which the mouth is fully open


@dataclass(frozen=True)
class _Syllable:
    onset: float  # s
    duration: float  # s
    vowel: str
    gain: float  # linear peak amplitude of the nucleus
    stressed: bool
    consonant: str  # "" (none), "s" (fricative) or "p" (plosive burst)


def _plan_syllables(seconds: float, rng: np.random.Generator) -> list[_Syllable]:
    """Words of 1–4 syllables (~4–5 syllables/s), phrases of 2–4 words, pauses between them."""
    out: list[_Syllable] = []
    pos = float(rng.uniform(0.15, 0.4))  # leading silence
    names = list(_VOWELS)
    while pos < seconds - 0.2:
        for _word in range(int(rng.integers(2, 5))):
            n_syl = int(rng.integers(1, 5))
            stressed = int(rng.integers(0, n_syl))
            for k in range(n_syl):
                dur = float(rng.uniform(0.17, 0.27))
                vowel = names[int(rng.integers(len(names)))]
                gain = _VOWELS[vowel][1] * (1.0 if k == stressed else float(rng.uniform(0.55, 0.8)))
                cons = ["", "s", "p"][int(rng.choice(3, p=[0.45, 0.3, 0.25]))]
                out.append(_Syllable(pos, dur, vowel, gain, k == stressed, cons))
                pos += dur
            pos += float(rng.uniform(0.03, 0.09))  # word boundary: short closure
            if pos >= seconds - 0.2:
                break
        pos += float(rng.uniform(0.25, 0.6))  # phrase pause
    return [s for s in out if s.onset + s.duration <= seconds]


def _resonator_gain(f: np.ndarray, formant: np.ndarray, bandwidth: float) -> np.ndarray:
    """|H(f)| of a second-order resonator with unit gain at DC (the Klatt cascade element)."""
    r = f / formant
    return 1.0 / np.sqrt((1.0 - r * r) ** 2 + (f * bandwidth / (formant * formant)) ** 2)


def _smooth(x: np.ndarray, width: int) -> np.ndarray:
    """Zero-phase moving average (edge-padded) of odd ``width``."""
    if width <= 1:
        return x
    width |= 1
    pad = width // 2
    kernel = np.ones(width) / width
    return np.convolve(np.pad(x, pad, mode="edge"), kernel, mode="valid")


def synthesize_speech(seconds: float, seed: int, sample_rate: int = SAMPLE_RATE) -> np.ndarray:
    """Speech-like mono audio, float32 in [-1, 1], exactly ``round(seconds * sample_rate)`` samples.

    Syllables (~4.5/s) with a raised-sine loudness envelope, grouped into words and phrases separated
    by pauses; a voiced source (harmonics with −6 dB/octave net tilt) whose pitch follows a declining
    phrase contour with stress accents and slight vibrato; vowel formants F1–F3 moving between syllable
    targets (F4 fixed), scaled by a per-seed vocal-tract length; some syllables start with a fricative
    or plosive noise burst; a −65 dBFS noise floor. Loud frames are normalised to −16 dBFS RMS.
    Deterministic for a given ``seed``.
    """
    from scipy.signal import butter, sosfilt

    rng = np.random.default_rng(np.random.SeedSequence([int(seed), 0x5EEC]))
    sr = int(sample_rate)
    n = int(round(seconds * sr))
    if n <= 0:
        return np.zeros(0, np.float32)
    t = np.arange(n) / sr
    f0_base = float(rng.uniform(95.0, 220.0))
    tract = 1.0 + 0.17 * (f0_base - 95.0) / 125.0  # shorter vocal tract for higher voices
    syllables = _plan_syllables(seconds, rng)

    env = np.zeros(n)
    centers, f0_pts, formant_pts = [0.0], [f0_base], [np.array(_VOWELS["@"][0], float) * tract]
    noise = np.zeros(n)
    for s in syllables:
        u = (t - s.onset) / s.duration
        inside = (u > 0) & (u < 1)
        # fast rise, slower decay: the nucleus peaks at 40 % of the syllable
        shape = np.sin(np.pi * np.clip(u, 0, 1) ** 0.75) ** 2
        env[inside] += s.gain * shape[inside]
        c = s.onset + 0.4 * s.duration
        centers.append(c)
        accent = 1.12 if s.stressed else 1.0
        f0_pts.append(f0_base * accent * float(rng.uniform(0.95, 1.05)))
        formant_pts.append(np.array(_VOWELS[s.vowel][0], float) * tract * float(rng.uniform(0.96, 1.04)))
        if s.consonant:
            length = 0.07 if s.consonant == "s" else 0.025
            b0 = int(max(0.0, s.onset - 0.3 * length) * sr)
            b1 = min(n, b0 + int(length * sr))
            if b1 > b0:
                win = np.hanning(b1 - b0)
                level = 0.25 if s.consonant == "s" else 0.45
                noise[b0:b1] += level * s.gain * win * rng.standard_normal(b1 - b0)
    centers.append(seconds)
    f0_pts.append(f0_base * 0.9)
    formant_pts.append(formant_pts[0])
    centers = np.asarray(centers)

    # pitch: syllable targets, phrase declination, 5 Hz vibrato, smoothed (50 ms)
    f0 = np.interp(t, centers, f0_pts) * (1.08 - 0.16 * (t % 2.0) / 2.0)
    f0 *= 1.0 + 0.01 * np.sin(2 * np.pi * 5.2 * t + rng.uniform(0, 2 * np.pi))
    f0 = _smooth(f0, int(0.05 * sr))
    formants = np.stack([_smooth(np.interp(t, centers, [p[k] for p in formant_pts]), int(0.04 * sr))
                         for k in range(3)])
    f4 = 3500.0 * tract

    phase = 2 * np.pi * np.cumsum(f0) / sr
    voiced = np.zeros(n)
    f_max = min(5000.0, 0.45 * sr)
    # harmonic amplitudes vary slowly: evaluate the formant envelope every 2 ms and interpolate
    step = max(1, int(0.002 * sr))
    samples = np.arange(n)
    coarse = np.arange(0, n + step, step)
    f0_c = np.interp(coarse, samples, f0)
    formants_c = [np.interp(coarse, samples, formants[j]) for j in range(3)]
    for k in range(1, int(f_max / f0.min()) + 1):
        fk = k * f0_c
        amp = np.clip((f_max - fk) / 200.0, 0.0, 1.0) / k  # fade out near f_max, no clicks
        for j in range(3):
            amp = amp * _resonator_gain(fk, formants_c[j], _FORMANT_BW[j])
        amp = amp * _resonator_gain(fk, f4, _FORMANT_BW[3])
        voiced += np.interp(samples, coarse, amp) * np.sin(k * phase)
    voiced /= np.max(np.abs(voiced)) + 1e-12

    breath = 0.03 * rng.standard_normal(n)
    hi = butter(4, [2500.0, min(7000.0, 0.45 * sr)], btype="band", fs=sr, output="sos")
    lo = butter(2, [300.0, min(3000.0, 0.45 * sr)], btype="band", fs=sr, output="sos")
    x = (voiced + sosfilt(lo, breath)) * env + sosfilt(hi, noise) * 0.6

    # normalise the loud 40 ms frames to a fixed level, so mouth_openness has an absolute scale
    hop = int(0.04 * sr)
    frames = x[: len(x) // hop * hop].reshape(-1, hop) if len(x) >= hop else x[None]
    rms = np.sqrt(np.mean(frames ** 2, axis=1))
    loud = float(np.percentile(rms, 95)) if rms.size else 0.0
    if loud > 0:
        x *= 10 ** (_TARGET_LOUD_DBFS / 20.0) / loud
    x += 10 ** (-65.0 / 20.0) * rng.standard_normal(n)
    return np.clip(x, -1.0, 1.0).astype(np.float32)


def mouth_openness(audio: np.ndarray, fps: float = FPS, sample_rate: int = SAMPLE_RATE) -> np.ndarray:
    """Per-video-frame mouth opening in [0, 1] driven by the audio's voiced-band loudness.

    Frame ``i`` (shown during ``[i/fps, (i+1)/fps)``) gets the RMS of the 150–3500 Hz band (zero-phase
    filtered, so no lag) under a Hann window of two frame periods centred on the frame, mapped linearly
    from −42 dBFS (closed) to −17 dBFS (fully open) and clipped. The scale is absolute, which matches
    :func:`synthesize_speech`'s fixed loudness; louder or quieter audio saturates or stays closed.
    Returns ``ceil(duration * fps)`` values (the number of 25 fps frames ``prep.media`` gives).
    """
    from scipy.signal import butter, sosfiltfilt

    x = np.asarray(audio, np.float64).reshape(-1)
    sr = int(sample_rate)
    num = max(0, math.ceil(len(x) / sr * fps - 1e-4))
    if num == 0:
        return np.zeros(0, np.float32)
    sos = butter(4, [150.0, min(3500.0, 0.45 * sr)], btype="band", fs=sr, output="sos")
    if len(x) > 3 * (2 * len(sos) + 1):  # sosfiltfilt's edge padding needs this many samples
        x = sosfiltfilt(sos, x)
    win = int(round(2 * sr / fps)) | 1
    w = np.hanning(win + 2)[1:-1]
    w /= w.sum()
    power = np.convolve(x * x, w, mode="same")
    centers = np.minimum(((np.arange(num) + 0.5) / fps * sr).astype(int), len(x) - 1)
    db = 10.0 * np.log10(power[centers] + 1e-12)
    return np.clip((db - OPEN_FLOOR_DB) / (OPEN_TOP_DB - OPEN_FLOOR_DB), 0.0, 1.0).astype(np.float32)


# ---------------------------------------------------------------------------------------------- faces

# 68-point indices (0-based, iBUG layout)
