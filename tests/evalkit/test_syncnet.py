"""SyncNet layout/loading, LSE scoring vs a straightforward syncnet_python-style loop, offset sign with an
oracle network, and the syncnet-pipeline / aligned crops — on a real clip's crops and audio."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from evalkit import syncnet_crop as sc
from evalkit.metrics.lse import lse
from evalkit.nets import syncnet as sn
from talkbase.fileio import sha256_file as file_sha256
from talkbase.weights import WeightsNotFound

# (conv index, bn index, weight shape) per stream, written from syncnet_python's SyncNetModel.S
AUD_CONVS = [(0, 1, (64, 1, 3, 3)), (4, 5, (192, 64, 3, 3)), (8, 9, (384, 192, 3, 3)),
             (11, 12, (256, 384, 3, 3)), (14, 15, (256, 256, 3, 3)), (18, 19, (512, 256, 5, 4))]
LIP_CONVS = [(0, 1, (96, 3, 5, 7, 7)), (4, 5, (256, 96, 1, 5, 5)), (8, 9, (256, 256, 1, 3, 3)),
             (11, 12, (256, 256, 1, 3, 3)), (14, 15, (256, 256, 1, 3, 3)), (18, 19, (512, 256, 1, 6, 6))]


def official_layout() -> dict[str, tuple]:
    keys = {}
    for stream, convs in (("netcnnaud", AUD_CONVS), ("netcnnlip", LIP_CONVS)):
        for ci, bi, shape in convs:
            keys[f"{stream}.{ci}.weight"] = shape
            keys[f"{stream}.{ci}.bias"] = shape[:1]
            for p in ("weight", "bias", "running_mean", "running_var"):
                keys[f"{stream}.{bi}.{p}"] = shape[:1]
            keys[f"{stream}.{bi}.num_batches_tracked"] = ()
    for head in ("netfcaud", "netfclip"):
        keys.update({f"{head}.0.weight": (512, 512), f"{head}.0.bias": (512,), f"{head}.3.weight": (1024, 512),
                     f"{head}.3.bias": (1024,), f"{head}.1.num_batches_tracked": ()})
        keys.update({f"{head}.1.{p}": (512,) for p in ("weight", "bias", "running_mean", "running_var")})
    return keys


def test_state_dict_matches_official_layout():
    ours = {k: tuple(v.shape) for k, v in sn.SyncNet().state_dict().items()}
    assert ours == official_layout()
    assert set(sn.random_state_dict(3)) == set(ours)


@pytest.fixture
def no_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("TALKBENCH_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("TALKBENCH_SYNCNET", raising=False)
    return tmp_path


def test_load_syncnet_variants(no_cache):
    state = sn.random_state_dict(1)
    plain = no_cache / "syncnet_v2.model"
    torch.save(state, plain)
    net = sn.load_syncnet(plain)
    # no official hash of syncnet_v2.model is pinned: a file that loads is recorded by sha256, unverified
    assert not net.calibrated and net.weights_sha256 == file_sha256(plain)
    assert all(torch.equal(net.state_dict()[k], v) for k, v in state.items())

    # pre-0.4 files lack num_batches_tracked; a SyncNetInstance's state dict has the __S__. prefix
    old = {f"__S__.{k}": v for k, v in state.items() if not k.endswith("num_batches_tracked")}
    torch.save(old, no_cache / "old.model")
    net2 = sn.load_syncnet(no_cache / "old.model")
    x = torch.randn(2, 1, 13, 20)
    assert torch.equal(net.forward_aud(x), net2.forward_aud(x))

    torch.save(sn.SyncNet(), no_cache / "pickled.model")  # a full pickled module: refused, not executed
    with pytest.raises(ValueError, match="weights-only"):
        sn.load_syncnet(no_cache / "pickled.model")
    torch.save({k: v for k, v in state.items() if "netfclip" not in k}, no_cache / "partial.model")
    with pytest.raises(ValueError, match="missing"):
        sn.load_syncnet(no_cache / "partial.model")


def test_absent_weights(no_cache, monkeypatch):
    monkeypatch.setenv("TALKBENCH_SYNCNET", str(no_cache / "nowhere.model"))
    with pytest.raises(WeightsNotFound, match="TALKBENCH_SYNCNET"):
        sn.load_syncnet()
    rnd = sn.load_syncnet(allow_random=True, seed=5)
    assert not rnd.calibrated and rnd.weights_sha256 is None
    assert torch.equal(rnd.netcnnlip[0].weight, sn.random_state_dict(5)["netcnnlip.0.weight"])


# ---------------------------------------------------------------- real clip: crops + audio

@pytest.fixture(scope="module")
def real_clip(videos_dir):
    """w2l_input3: first 125 frames, dlib boxes per frame, syncnet-pipeline crops and int16 audio."""
    from prep.audio import to_int16
    from prep.media import decode_clip

    clip = decode_clip(videos_dir / "w2l_input3.mp4")
    frames = clip.frames[:125]
    boxes = sc.detect_faces(frames, "dlib")
    tracks = sc.pipeline_crops(frames, boxes)
    audio = to_int16(clip.audio)
    return dict(frames=frames, boxes=boxes, tracks=tracks, audio=audio)


def test_pipeline_crops_on_real_clip(real_clip):
    tracks = real_clip["tracks"]
    assert len(tracks) == 1
    t = tracks[0]
    n_detected = sum(len(b) > 0 for b in real_clip["boxes"])
    assert n_detected > 100 and t.stop - t.start >= n_detected
    assert t.crops.shape == (t.stop - t.start, 224, 224, 3) and t.crops.dtype == np.uint8
    assert t.audio_slice() == slice(t.start * 640, t.stop * 640)
    # independent recomputation of one crop the way run_pipeline.py does it (np.pad, then slicing)
    import cv2

    k = 40
    frame_bgr = real_clip["frames"][t.start + k][..., ::-1]
    bs, cs = t.half_size[k], 0.4
    bsi = int(bs * (1 + 2 * cs))
    padded = np.pad(frame_bgr, ((bsi, bsi), (bsi, bsi), (0, 0)), "constant", constant_values=(110, 110))
    my, mx = t.centre_y[k] + bsi, t.centre_x[k] + bsi
    face = padded[int(my - bs):int(my + bs * (1 + 2 * cs)), int(mx - bs * (1 + cs)):int(mx + bs * (1 + cs))]
    np.testing.assert_array_equal(t.crops[k], cv2.resize(face, (224, 224)))
    # the smoothed box follows the detections (the crop tracks the face)
    det = real_clip["boxes"][t.start + k][0]
    assert abs(t.centre_x[k] - (det[0] + det[2]) / 2) < 10 and abs(t.half_size[k] - (det[2] - det[0]) / 2) < 10


def test_track_faces_rules():
    def box(x, size=120.0):
        return np.array([[x, 50.0, x + size, 50.0 + size, 0.9]])

    none = np.zeros((0, 5))
    # 130 frames, a gap of 10 missed frames (interpolated), then a jump (IoU 0) and a 2nd long track
    dets = [box(100 + i) if not 60 <= i < 70 else none for i in range(130)]
    dets += [box(600) for _ in range(110)]
    tracks = sc.track_faces(dets)
    assert [(t.start, t.stop) for t in tracks] == [(0, 130), (130, 240)]
    np.testing.assert_allclose(tracks[0].boxes[65, 0], 165.0)  # linear interpolation across the gap
    # a gap of more than 25 frames splits the track; both parts are then too short (<= 100)
    split = [box(100) if not 60 <= i < 90 else none for i in range(150)]
    assert sc.track_faces(split) == []
    # faces whose mean size is <= 100 px are dropped
    assert sc.track_faces([box(100, size=90.0) for _ in range(150)]) == []
    # two faces per frame: two tracks (the second found on the second pass)
    two = [np.vstack([box(100), box(600)]) for _ in range(120)]
    assert len(sc.track_faces(two)) == 2


def test_aligned_crops_resize_and_bgr():
    rng = np.random.default_rng(0)
    crops = rng.integers(0, 256, (3, 256, 256, 3), dtype=np.uint8)
    out = sc.aligned_crops(crops)
    assert out.shape == (3, 224, 224, 3) and out.dtype == np.uint8
    import cv2

    np.testing.assert_array_equal(out[1], cv2.resize(crops[1], (224, 224))[..., ::-1])
    same = rng.integers(0, 256, (2, 224, 224, 3), dtype=np.uint8)
    np.testing.assert_array_equal(sc.aligned_crops(same), same[..., ::-1])


# ---------------------------------------------------------------- scoring vs the reference loop

def reference_loop_scores(model, crops_bgr, audio, vshift=15, batch_size=20):
    """syncnet_python's evaluate(), written plainly: float video tensor, windows sliced in batches of 20,
    then one loop per offset over frames with zero rows for out-of-range audio (numpy, float64 means)."""
    import python_speech_features

    mfcc = np.stack([np.array(c) for c in zip(*python_speech_features.mfcc(audio, 16000))])  # (13, M)
    cct = torch.from_numpy(mfcc[None, None].astype(float)).float()
    im = np.transpose(crops_bgr[None], (0, 4, 1, 2, 3))  # (1, 3, T, H, W)
    imtv = torch.from_numpy(im.astype(float)).float()
    min_length = min(len(crops_bgr), len(audio) // 640)
    lastframe = min_length - 5
    im_feat, cc_feat = [], []
    with torch.no_grad():
        for i in range(0, lastframe, batch_size):
            rng_ = range(i, min(lastframe, i + batch_size))
            im_feat.append(model.forward_lip(torch.cat([imtv[:, :, v:v + 5] for v in rng_], 0)))
            cc_feat.append(model.forward_aud(torch.cat([cct[:, :, :, v * 4:v * 4 + 20] for v in rng_], 0)))
    v = torch.cat(im_feat).numpy()
    a = torch.cat(cc_feat).numpy()
    n = len(v)
    mdist = np.zeros(2 * vshift + 1)
    for j in range(2 * vshift + 1):
        total = 0.0
        for i in range(n):
            k = i + j - vshift
            other = a[k] if 0 <= k < n else np.zeros_like(a[0])
            total += float(np.linalg.norm(v[i] - other + 1e-6))
        mdist[j] = total / n
    best = int(np.argmin(mdist))
    return dict(offset=vshift - best, lse_d=mdist[best], lse_c=float(np.median(mdist)) - mdist[best], mdist=mdist)


@pytest.fixture(scope="module")
def random_syncnet(tmp_path_factory):
    path = tmp_path_factory.mktemp("syncnet") / "syncnet_v2.model"
    torch.save(sn.random_state_dict(0), path)  # the official key layout, loaded like the real file
    return sn.load_syncnet(path)


def test_lse_equals_reference_loop_on_real_clip(real_clip, random_syncnet):
    t = real_clip["tracks"][0]
    crops = t.crops[:56]
    audio = real_clip["audio"][t.audio_slice()][:56 * 640]
    ours = lse(crops, audio, random_syncnet)
    ref = reference_loop_scores(random_syncnet, crops, audio)
    assert ours["num_windows"] == 51
    gaps = np.sort(ref["mdist"])
    assert gaps[1] - gaps[0] > 1e-3  # a unique argmin, so the offset comparison is meaningful
    assert ours["offset"] == ref["offset"]
    assert abs(ours["lse_d"] - ref["lse_d"]) < 1e-4
    assert abs(ours["lse_c"] - ref["lse_c"]) < 1e-4
    np.testing.assert_allclose(ours["mean_dists"], ref["mdist"], atol=1e-4, rtol=0)
    assert ours["dists"].shape == (51, 31) and ours["framewise_conf"].shape == (51,)


def test_fast_lip_path_equals_forward_lip(random_syncnet):
    g = torch.Generator().manual_seed(0)
    frames = torch.randint(0, 256, (9, 3, 224, 224), generator=g, dtype=torch.uint8)
    fast = random_syncnet.lip_window_embeddings(frames, batch_size=3)
    windows = torch.stack([frames[i:i + 5] for i in range(5)]).permute(0, 2, 1, 3, 4).float()
    with torch.no_grad():
        ref = random_syncnet.forward_lip(windows)
    torch.testing.assert_close(fast, ref, rtol=1e-4, atol=1e-4)


def test_lse_rejects_bad_input(random_syncnet):
    with pytest.raises(ValueError, match="too short"):
        lse(np.zeros((5, 224, 224, 3), np.uint8), np.zeros(5 * 640, np.int16), random_syncnet)
    with pytest.raises(ValueError, match="uint8"):
        lse(np.zeros((8, 224, 224, 3), np.float32), np.zeros(8 * 640, np.int16), random_syncnet)


# ---------------------------------------------------------------- offset sign with an oracle network

class OracleSyncNet(torch.nn.Module):
    """A SyncNet-interface network whose embeddings make sync detectable by construction.

    The video carries the audio: every frame's top-left 8×8 patch holds the clip's MFCC log-energy for
    that frame (MFCC c0, mean of the frame's 4 steps), quantised to 0–255 over [lo, hi]. ``forward_lip``
    returns the 5 patch means of a window, ``forward_aud`` the same quantisation of the 5 per-frame
    energies of its 20 MFCC steps; both as ``1 + value/255`` (so zero-padded audio is far from any
    frame) in the first 5 of 1024 dims. Audio and video windows coincide exactly only when aligned.
    """

    def __init__(self, lo: float, hi: float):
        super().__init__()
        self.lo, self.hi = lo, hi

    def quantise(self, energy: torch.Tensor) -> torch.Tensor:
        return torch.clamp(torch.round(255 * (energy - self.lo) / (self.hi - self.lo)), 0, 255)

    @staticmethod
    def _embed(values: torch.Tensor) -> torch.Tensor:
        return torch.nn.functional.pad(1 + values / 255, (0, 1024 - values.shape[1]))

    def forward_lip(self, x):  # (N, 3, 5, H, W)
        return self._embed(x[:, :, :, :8, :8].mean(dim=(1, 3, 4)))

    def forward_aud(self, x):  # (N, 1, 13, 20)
        energy = x[:, 0, 0, :].reshape(-1, 5, 4).mean(-1)
        return self._embed(self.quantise(energy))


def shift_audio(audio: np.ndarray, k: int) -> np.ndarray:
    """Audio moved ``k`` frames earlier (k > 0: audio ahead of the video), zero-filled, same length."""
    s = abs(k) * 640
    if k > 0:
        return np.concatenate([audio[s:], np.zeros(s, audio.dtype)])
    if k < 0:
        return np.concatenate([np.zeros(s, audio.dtype), audio[:len(audio) - s]])
    return audio


@pytest.mark.parametrize("k", [-7, -1, 0, 4, 12])
def test_offset_equals_planted_audio_shift(real_clip, k):
    from evalkit.metrics.lse import mfcc_matrix

    t = real_clip["tracks"][0]
    crops = t.crops.copy()
    audio = real_clip["audio"][t.audio_slice()]
    n = len(crops)
    c0 = mfcc_matrix(audio)[0]
    energy = np.array([c0[4 * f:4 * f + 4].mean() for f in range(n)], np.float32)  # last frame: 3 steps
    oracle = OracleSyncNet(float(energy.min()), float(energy.max()))
    crops[:, :8, :8, :] = oracle.quantise(torch.from_numpy(energy)).numpy().astype(np.uint8)[:, None, None, None]
    out = lse(crops, shift_audio(audio, k), oracle, batch_size=16)
    assert out["offset"] == k
    best, second = np.sort(out["mean_dists"])[:2]
    assert second - best > 0.15  # the planted sync is unambiguous
    if k == 0:  # identical embeddings everywhere: only pairwise_distance's eps remains, 1e-6 * sqrt(1024)
        assert abs(out["lse_d"] - 32e-6) < 1e-6
    if k in (-7, 4):
        ref = reference_loop_scores(oracle, crops, shift_audio(audio, k))
        assert ref["offset"] == k  # the plain loop agrees on the sign convention
