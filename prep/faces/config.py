"""Settings of the face stage. One frozen dataclass; stored in the prep manifest via ``to_dict``."""
from __future__ import annotations

from dataclasses import asdict, dataclass, fields

OUTCOMES = ("fail", "flag")  # what a clip-level problem becomes: a failure row, or a QA flag


@dataclass(frozen=True)
class FaceConfig:
    """How faces are found, tracked, smoothed, cropped and fitted.

    Detection resolution: a detector finds faces down to about ``backend.min_face_px`` (HOG and MMOD:
    80 px boxes). The smallest face expected in a clip is ``face_size_px`` if given, else
    ``min_face_frac`` x the frame's short side; full frames are resized by
    ``clip(1.1 * min_face_px / expected, ., max_upscale)`` before detection, so a 150 px face in a
    1080x1920 frame is searched at ~0.8x (not a fixed downscale that would lose it) and a 480p clip at
    ~1.8x. Re-detections of a tracked face search only a window around it, at the scale that brings
    ``roi_shrink`` x the tracked face size to the detector's minimum.
    """

    backend: str = "dlib"  # "dlib" (embedded) or "fan" (face-alignment, extra [fan])
    detector: str = "hog"  # dlib detector: "hog" or "mmod" (CNN; slower, more pose-robust)
    # tracking
    detect_every: int = 25  # re-detect the tracked face at least every k frames (window around the track)
    full_detect_every: int = 100  # full-frame scan every n frames (new faces, face count); 1 = every frame
    roi_margin: float = 0.5  # re-detection window: track box grown by this x its side on every side
    rescale_detect: float = 0.2  # |log| change of the face scale since the box was anchored that calls for a
    #                               window re-detection before the schedule (the box size comes from the detector)
    anchor_ncc: float = 0.7  # aligned-face correlation with the last detection-anchored frame below which
    #                          a window re-detection is due (slow landmark drift off the face)
    roi_shrink: float = 0.7  # smallest size (x current) the tracked face may have at re-detection
    iou_threshold: float = 0.3  # a detection continues the track when IoU with the predicted box >= this
    reanchor_iou: float = 0.5  # matched with IoU below this: landmarks restart from the detector box
    anchor_rate: float = 0.5  # weight of a matched detection in the track's box (size, offset)
    verify_ncc: float = 0.4  # aligned-face correlation with the previous frame below which a
    #                          detection must confirm the face (scene cut, occlusion, face gone)
    max_missed_detections: int = 2  # consecutive failed re-detections before the track is dropped
    max_scale_change: float = 0.3  # |log| face-scale change in one frame above which the track is lost
    main_track: str = "largest"  # "largest" box or most "central" face when (re)acquiring a track
    # detection resolution
    min_face_frac: float = 0.1  # smallest expected face box side / frame short side
    face_size_px: float | None = None  # overrides min_face_frac when the face size is known
    max_upscale: float = 2.0
    score_threshold: float = 0.0  # detector score (HOG: SVM margin) a detection needs
    # smoothing (one-euro filters, causal; see prep.faces.smoothing)
    smoothing: str = "one_euro"  # or "none"
    pose_min_cutoff: float = 1.0  # Hz: crop placement (centre, size, angle) at rest
    pose_beta: float = 20.0  # cutoff gain per crop-side/s of motion
    landmark_min_cutoff: float = 2.0  # Hz: landmark denoising at rest
    landmark_beta: float = 100.0  # high: moving points (speech, head turns) pass with < 1 crop px lag
    d_cutoff: float = 1.0  # Hz: smoothing of the speed estimate
    # crops
    crop_size: int = 256
    border: str = "replicate"  # crop pixels outside the frame: "replicate", "reflect" or "constant"
    # clip-level QA: thresholds and whether each problem fails the clip or only flags it
    on_no_face: str = "fail"  # no face in any frame
    face_lost_fraction: float = 0.5  # "face lost for most frames": a face on fewer than this fraction
    on_face_lost: str = "flag"
    fit_diverged_ratio: float = 0.05  # "fit diverged": mean 3DMM residual / face size above this
    on_fit_diverged: str = "flag"
    fit_3dmm: bool = True

    def __post_init__(self):
        for f in fields(self):  # a value must have its default's type (an int where a float goes is fine)
            v, d = getattr(self, f.name), f.default
            if v is None and f.name == "face_size_px":
                continue
            want = float if isinstance(d, float) or f.name == "face_size_px" else type(d)
            if isinstance(v, bool) != (want is bool) or not isinstance(v, (int, float) if want is float else want):
                raise ValueError(f"faces.{f.name}: expected {want.__name__}, got {v!r}")
        if self.backend not in ("dlib", "fan"):
            raise ValueError(f"backend {self.backend!r} not one of dlib, fan")
        if self.detector not in ("hog", "mmod"):
            raise ValueError(f"detector {self.detector!r} not one of hog, mmod")
        if self.detect_every < 1 or self.full_detect_every < 1:
            raise ValueError("detect_every and full_detect_every must be >= 1")
        if self.crop_size < 16:
            raise ValueError(f"crop_size {self.crop_size} too small (>= 16)")
        if self.main_track not in ("largest", "central"):
            raise ValueError(f"main_track {self.main_track!r} not one of largest, central")
        if self.smoothing not in ("one_euro", "none"):
            raise ValueError(f"smoothing {self.smoothing!r} not one of one_euro, none")
        if self.border not in ("replicate", "reflect", "constant"):
            raise ValueError(f"border {self.border!r} not one of replicate, reflect, constant")
        for name in ("on_no_face", "on_face_lost", "on_fit_diverged"):
            if getattr(self, name) not in OUTCOMES:
                raise ValueError(f"{name}={getattr(self, name)!r} not one of {OUTCOMES}")
        if not 0 < self.min_face_frac <= 1:
            raise ValueError("min_face_frac must be in (0, 1]")

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "FaceConfig":
        """Inverse of ``to_dict``; unknown keys are an error (a typo must not silently be ignored)."""
        known = {f.name for f in fields(cls)}
        unknown = set(d) - known
        if unknown:
            raise ValueError(f"unknown FaceConfig keys: {sorted(unknown)}")
        return cls(**d)

    def main_track_rule(self) -> str:
        """Human-readable rule used to choose the main face track (stored per clip)."""
        pick = "largest face box" if self.main_track == "largest" else "face closest to the frame centre"
        return (f"{pick} at (re)acquisition, then followed by IoU association (>= {self.iou_threshold:g}) "
                f"until lost")

    def detection_scale(self, frame_hw: tuple[int, int], min_face_px: float) -> float:
        """Resize factor for a full-frame detection (see the class docstring)."""
        expected = self.face_size_px or self.min_face_frac * min(frame_hw)
        return float(min(max(1.1 * min_face_px / expected, 0.05), self.max_upscale))


__all__ = ["FaceConfig", "OUTCOMES"]
