"""Audio features: Wav2Lip mel (vs an independent reference), SyncNet MFCC, and the frame→feature rules."""
from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from prep import audio, media


# ---- an independent reference, written the slow obvious way (loops, scipy window, explicit triangles)

def _ref_mel_basis(sr=16000, n_fft=800, n_mels=80, fmin=55.0, fmax=7600.0):
    def hz_to_mel(f):  # Slaney: linear to 1 kHz (200/3 Hz per mel), then log with step ln(6.4)/27
        return f * 3 / 200 if f < 1000 else 15 + np.log(f / 1000) * 27 / np.log(6.4)

    def mel_to_hz(m):
        return m * 200 / 3 if m < 15 else 1000 * np.exp((m - 15) * np.log(6.4) / 27)

    lo, hi = hz_to_mel(fmin), hz_to_mel(fmax)
    edges = [mel_to_hz(lo + (hi - lo) * k / (n_mels + 1)) for k in range(n_mels + 2)]
    freqs = [sr / 2 * j / (n_fft // 2) for j in range(n_fft // 2 + 1)]
    basis = np.zeros((n_mels, len(freqs)))
    for m in range(n_mels):
        left, centre, right = edges[m], edges[m + 1], edges[m + 2]
        for j, f in enumerate(freqs):
            if left < f < right:
                w = (f - left) / (centre - left) if f <= centre else (right - f) / (right - centre)
                basis[m, j] = w * 2.0 / (right - left)
    return basis


def _ref_melspectrogram(wav):
    from scipy.signal import get_window

    y = np.append(wav[0], wav[1:] - 0.97 * wav[:-1])  # pre-emphasis
    y = np.pad(y, 400, mode="reflect")
    win = get_window("hann", 800, fftbins=True)
    cols = []
    for start in range(0, len(y) - 800 + 1, 200):
        cols.append(np.abs(np.fft.fft(y[start:start + 800] * win))[:401])
    S = _ref_mel_basis() @ np.array(cols).T
    S = 20 * np.log10(np.maximum(1e-5, S)) - 20
    return np.clip(8 * ((S + 100) / 100) - 4, -4, 4)


def test_mel_filterbank_matches_reference():
    np.testing.assert_allclose(audio.mel_filterbank(), _ref_mel_basis(), atol=1e-9)


def test_mel_matches_independent_reference_on_real_audio(videos_dir):
    wav = media.read_audio(videos_dir / "w2l_input3.mp4", 60)
    ours = audio.melspectrogram(wav)
    ref = _ref_melspectrogram(wav.astype(np.float64))
    assert ours.shape == ref.shape == (80, audio.num_mel_frames(60))
    np.testing.assert_allclose(ours, ref, atol=1e-4)
    assert ours.std() > 0.5  # speech, not a flat floor


def test_mel_matches_librosa_when_available(videos_dir):
    librosa = pytest.importorskip("librosa")  # optional second opinion (librosa is not a dependency)
    wav = media.read_audio(videos_dir / "w2l_input3.mp4", 40)
    y = np.append(wav[0], wav[1:] - 0.97 * wav[:-1])
    D = librosa.stft(y=y, n_fft=800, hop_length=200, win_length=800, pad_mode="reflect")
    S = librosa.filters.mel(sr=16000, n_fft=800, n_mels=80, fmin=55, fmax=7600) @ np.abs(D)
    S = np.clip(8 * ((20 * np.log10(np.maximum(1e-5, S)) - 20 + 100) / 100) - 4, -4, 4)
    np.testing.assert_allclose(audio.melspectrogram(wav), S, atol=1e-4)


def test_mfcc_is_python_speech_features_on_int16(videos_dir):
    import python_speech_features

    wav = media.read_audio(videos_dir / "w2l_input4.mp4", 50)
    ref = python_speech_features.mfcc(audio.to_int16(wav), 16000)
    ours = audio.mfcc(wav)
    assert ours.shape == (audio.num_mfcc_frames(50), 13) == (199, 13)
    np.testing.assert_array_equal(ours, ref.astype(np.float32))


def test_features_computed_in_blocks_equal_the_whole_signal_bit_for_bit(videos_dir, monkeypatch):
    """Mel and MFCC are computed a block of frames at a time (bounded memory on long clips); any block size
    gives the values of one pass over the whole signal (python_speech_features' own call for the MFCC)."""
    import python_speech_features

    wav = media.read_audio(videos_dir / "latentsync_demo2.mp4", 502)  # 20 s: 1,607 mel and 2,007 MFCC frames
    whole_mfcc = python_speech_features.mfcc(audio.to_int16(wav), 16000).astype(np.float32)
    monkeypatch.setattr(audio, "MEL_CHUNK", 10 ** 9)
    whole_mel = audio.melspectrogram(wav)
    for mel_chunk, mfcc_chunk in ((7, 13), (1000, 1999), (1, 2006)):
        monkeypatch.setattr(audio, "MEL_CHUNK", mel_chunk)
        monkeypatch.setattr(audio, "MFCC_CHUNK", mfcc_chunk)
        np.testing.assert_array_equal(audio.melspectrogram(wav), whole_mel)
        np.testing.assert_array_equal(audio.mfcc(wav), whole_mfcc)


@settings(max_examples=60, deadline=None)
@given(num_frames=st.integers(min_value=1, max_value=2000))
def test_feature_lengths_follow_the_rules(num_frames):
    n = audio.num_samples(num_frames)
    assert n == num_frames * 640
    wav = np.random.default_rng(num_frames).standard_normal(n).astype(np.float32) * 0.1
    mel = audio.melspectrogram(wav)
    assert mel.shape == (80, audio.num_mel_frames(num_frames))
    assert audio.num_mel_frames(num_frames) == 1 + int(3.2 * num_frames + 1e-9)
    assert audio.num_mfcc_frames(num_frames) == (4 * num_frames - 1 if num_frames > 0 else 1)
    if num_frames <= 300:  # python_speech_features is slow; the closed form is checked for all
        assert audio.mfcc(wav).shape == (audio.num_mfcc_frames(num_frames), 13)
    # every frame whose 16-step window fits gets exactly that window; the rule is Wav2Lip's
    for f in {0, num_frames // 2, num_frames - 1}:
        w = audio.mel_window(mel, f)
        start = int(80 * f / 25)
        if start + 16 <= mel.shape[1]:
            np.testing.assert_array_equal(w, mel[:, start:start + 16])
        else:
            assert w is None


@settings(max_examples=6, deadline=None)
@given(fps=st.sampled_from([Fraction(24), Fraction(30000, 1001), Fraction(30), Fraction(50), Fraction(60)]),
       sr=st.sampled_from([16000, 22050, 44100, 48000]),
       seconds=st.floats(min_value=0.5, max_value=2.0))
def test_any_source_rate_gives_rule_lengths(tmp_path_factory, fps, sr, seconds):
    n_src = max(2, int(seconds * float(fps)))
    frames = np.zeros((n_src, 16, 16, 3), np.uint8)
    t = np.arange(int(sr * seconds)) / sr
    p = tmp_path_factory.mktemp("rates") / "v.mp4"
    media.write_video(p, frames, (0.3 * np.sin(2 * np.pi * 300 * t)).astype(np.float32), fps=float(fps),
                      sample_rate=sr)
    clip = media.decode_clip(p)
    assert clip.num_frames == media.num_output_frames(n_src / float(fps))
    assert len(clip.audio) == clip.num_frames * 640
    assert audio.melspectrogram(clip.audio).shape[1] == audio.num_mel_frames(clip.num_frames)
    assert audio.mfcc(clip.audio).shape[0] == audio.num_mfcc_frames(clip.num_frames)


def test_numpy_resampler_and_preemphasis_match_scipy():
    """prep avoids importing scipy.signal (start-up); its replacements agree with it."""
    from scipy.signal import lfilter, resample_poly

    from prep.resample import resample_poly as ours

    rng = np.random.default_rng(0)
    for up, down in ((1, 3), (160, 441), (1, 2), (2, 3)):  # 48k, 44.1k, 32k, 24k -> 16 kHz
        for n in (1, 5, 4801, 3 * 44100 + 7):
            x = rng.normal(size=n)
            ref = resample_poly(x, up, down)
            got = ours(x, up, down)
            assert got.shape == ref.shape
            np.testing.assert_allclose(got, ref, rtol=0, atol=1e-13)
    wav = rng.normal(size=16000)
    emph = wav.copy()
    emph[1:] -= 0.97 * wav[:-1]
    np.testing.assert_array_equal(emph, lfilter([1.0, -0.97], [1.0], wav))


def test_resampling_in_blocks_equals_one_pass_bit_for_bit():
    """A long clip's audio is resampled a block of output samples at a time, from float64 copies of only
    the input each block reads: bit for bit one pass over the whole float64 signal, for any block size,
    from the float32 samples prep passes (and to float32 as prep stores them)."""
    from prep.resample import resample_poly

    x = (np.random.default_rng(3).normal(size=2 * 48000 + 11) * 0.1).astype(np.float32)
    for up, down in ((1, 3), (160, 441), (2, 3)):
        whole = resample_poly(x.astype(np.float64), up, down, block_rows=10 ** 9)
        for block in (4, 37, 1000, 4096):
            assert np.array_equal(resample_poly(x, up, down, block_rows=block), whole), (up, down, block)
        assert np.array_equal(resample_poly(x, up, down, dtype=np.float32), whole.astype(np.float32))
