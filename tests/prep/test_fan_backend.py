"""The batched ``fan`` backend against face-alignment's own per-frame API, on CPU, with random weights.

No network and no hub download: seeded random S3FD / 2DFAN4 weights are written in face-alignment 1.5's
layout (state dicts under its file names) into a temporary torch hub dir. Random weights still give a
deterministic function of the frame, so "batched == per frame" is a real check of the cropping, the
batching and the decoding; boxes for the landmark test come from dlib, so the crops hold real faces.
"""
from __future__ import annotations

import numpy as np
import pytest

from prep.faces import FaceConfig, FaceTracker, get_backend
from prep.faces.backends import fan_weight_files
from prep.media import read_frames
from talkbase.weights import WeightsNotFound

try:
    import face_alignment
    from face_alignment.detection.sfd.net_s3fd import s3fd
    from face_alignment.models import FAN
except ImportError as e:  # the [fan] extra is optional
    pytest.skip(f"face_alignment cannot be imported ({e}); pip install 'talkbench[fan]'", allow_module_level=True)

import torch

# Random S3FD scores sit around 0.25-0.65 on real frames: 0.6 keeps about a dozen boxes per frame (enough to
# compare, few enough for S3FD's per-prior Python decoding to stay fast).
THRESHOLD = 0.6
DETECT_SCALE = 0.25  # small images keep S3FD light on CPU


def _write_weights(hub) -> None:
    ckpt = hub / "checkpoints"
    ckpt.mkdir(parents=True)
    torch.manual_seed(0)
    files = {p.name: p for p in fan_weight_files()}
    # what face-alignment 1.5 loads: torch.load(..., weights_only=True) + load_state_dict for both nets
    torch.save(s3fd().state_dict(), ckpt / "s3fd-619a316812.pth")
    torch.save(FAN(4).state_dict(), ckpt / "2DFAN4-11f355bf06.pth.tar")
    assert set(files) == {"s3fd-619a316812.pth", "2DFAN4-11f355bf06.pth.tar"}


@pytest.fixture(scope="module")
def hub(tmp_path_factory):
    """TORCH_HOME holding random weights for the whole module (the backend caches its model per path)."""
    home = tmp_path_factory.mktemp("torch_home")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("TORCH_HOME", str(home))
        _write_weights(home / "hub")
        yield home


@pytest.fixture(scope="module")
def reference(hub):
    """face-alignment's own API on the same weights: the per-frame results to match."""
    return face_alignment.FaceAlignment(face_alignment.LandmarksType.TWO_D, device="cpu", flip_input=False,
                                        compile=False, face_detector_kwargs={"filter_threshold": THRESHOLD})


@pytest.fixture(scope="module")
def frames(videos_dir):
    """Frames of two sizes: 850x480 (w2l_input4) and 600x480 (w2l_input3)."""
    a = read_frames(videos_dir / "w2l_input4.mp4", stop=40)[::13]  # 4 frames, some motion between them
    b = read_frames(videos_dir / "w2l_input3.mp4", stop=20)[::10]  # 2 frames
    return [*a, *b]


def test_device_auto_resolves_to_cpu_here(hub):
    assert not torch.cuda.is_available()
    fan = get_backend("fan")
    assert fan.device == "cpu" and fan.batch_size == 1  # one crop per forward is fastest on a CPU thread
    assert get_backend("fan", device="cpu", batch_size=4).batch_size == 4
    assert FaceTracker(FaceConfig(backend="fan"), device="auto").backend.device == "cpu"
    with pytest.raises(RuntimeError, match="CUDA"):
        get_backend("fan", device="cuda")
    with pytest.raises(ValueError):
        get_backend("fan", batch_size=0)


def test_batched_detection_equals_per_frame(hub, reference, frames):
    import cv2

    fan = get_backend("fan", device="cpu", score_threshold=THRESHOLD, batch_size=3)
    got = fan.detect(frames, scale=DETECT_SCALE)  # 4 + 2 frames: chunks of 3 + 1 and 2, by size
    assert len(got) == len(frames)
    for frame, boxes in zip(frames, got):
        h, w = frame.shape[:2]
        small = cv2.resize(frame, (round(w * DETECT_SCALE), round(h * DETECT_SCALE)), interpolation=cv2.INTER_AREA)
        want = np.array(reference.face_detector.detect_from_image(small.copy()), np.float64).reshape(-1, 5)
        want[:, :4] /= DETECT_SCALE
        assert len(want) > 0 and boxes.shape == want.shape
        # batched vs single convolutions differ by float32 round-off: ~1e-7 relative on scores, ~1e-5 px on
        # boxes here; far below a pixel, and no score is that close to the threshold
        np.testing.assert_allclose(boxes[:, 4], want[:, 4], rtol=0, atol=1e-5)
        np.testing.assert_allclose(boxes[:, :4], want[:, :4], rtol=0, atol=1e-2)


def test_batched_landmarks_equal_per_frame(hub, reference, frames):
    from face_alignment.utils import crop

    dlib = get_backend("dlib")
    boxes = [d[0, :4] for d in dlib.detect(frames)]
    boxes[1] = boxes[1] + [-boxes[1][0] - 20, 0, -boxes[1][0] - 20, 0]  # off the left edge: crop padding
    boxes = np.array(boxes[:5])
    fan = get_backend("fan", device="cpu", score_threshold=THRESHOLD, batch_size=3)
    got = fan.landmarks(frames[:5], boxes)  # chunks of 3 + 2 crops
    want = np.stack([reference.get_landmarks_from_image(f, detected_faces=[np.r_[b, 1.0]])[0]
                     for f, b in zip(frames[:5], boxes)]).astype(np.float64)
    assert got.shape == (5, 68, 2)
    assert np.ptp(got[:, :, 0]) > 0  # not degenerate
    # face-alignment returns integer px (heatmap argmax, a quarter-px nudge by the sign of the neighbours'
    # difference, an int cast), so the float32 round-off of a batched forward (~1e-6 on heatmaps of ~1)
    # changes a point only where two heatmap values tie to ~1e-6 (random weights: 1 point in ~2000, and
    # their multi-peaked heatmaps make that flip land anywhere). Every differing point must be such a tie:
    # its batched heatmap equals the per-frame network's to round-off.
    differ = np.argwhere((got != want).any(axis=2))
    assert len(differ) <= 0.02 * got.shape[0] * 68
    heat, centers, scales = fan._heatmaps(frames[:5], boxes)
    for i, j in differ:
        one = crop(frames[i], centers[i], scales[i]).transpose(2, 0, 1).astype(np.float32)[None] / 255.0
        with torch.no_grad():
            single = reference.face_alignment_net(torch.from_numpy(one))[-1][0, j].numpy()
        np.testing.assert_allclose(heat[i, j], single, rtol=0, atol=1e-5)
    assert fan.landmarks([], np.zeros((0, 4))).shape == (0, 68, 2)


def test_missing_weight_file_raises(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    (tmp_path / "hub" / "checkpoints").mkdir(parents=True)
    detector, landmarks = fan_weight_files()
    torch.save({}, detector)  # only S3FD there
    with pytest.raises(WeightsNotFound) as e:
        get_backend("fan")
    assert landmarks.name in str(e.value) and detector.name not in str(e.value)
