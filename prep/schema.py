"""The shard format: one typed schema per table, used by every reader and writer.

Layout of a prep output directory ``OUT``::

    OUT/clips/clips-00000-of-00001.parquet     one row per clip (audio features, QA)
    OUT/frames/frames-00000-of-00003.parquet   one row per 25 fps frame (crop, landmarks, 3DMM)
    OUT/failures.parquet                       one row per input that failed
    OUT/manifest.json                          config, versions, counts, every shard with rows + sha256

Arrays are stored as flat lists with their shape beside them (``mel`` + ``mel_shape``) or as
fixed-size lists (landmarks: 136 floats = 68 (x, y) pairs, row-major), so pandas, duckdb and
``datasets.load_dataset("parquet", ...)`` read them without talkbench installed.
"""
from __future__ import annotations

import pyarrow as pa

SCHEMA_VERSION = "1.1"  # 1.1: shots (shot_*, source_cuts) and sync QA (sync_*) columns

NUM_LANDMARKS = 68
NUM_MM_ID = 40
NUM_MM_EXP = 10
MM_POSE_FIELDS = ("yaw", "pitch", "roll", "tx", "ty", "scale")  # radians; source px; px per model unit


def _fsl(n: int, t=pa.float32()):
    return pa.list_(t, n)


CLIPS_SCHEMA = pa.schema([
    pa.field("clip_id", pa.string(), nullable=False),  # path relative to input root, no extension, '/'-sep
    pa.field("source_path", pa.string(), nullable=False),
    pa.field("source_sha256", pa.string(), nullable=False),
    pa.field("split", pa.string()),
    pa.field("speaker", pa.string()),
    pa.field("fps", pa.float32(), nullable=False),  # always 25.0 (output rate)
    pa.field("num_frames", pa.int32(), nullable=False),
    pa.field("sample_rate", pa.int32(), nullable=False),  # always 16000
    pa.field("duration_s", pa.float64(), nullable=False),  # num_frames / fps
    pa.field("src_width", pa.int32()),
    pa.field("src_height", pa.int32()),
    pa.field("src_fps", pa.float64()),
    pa.field("src_video_codec", pa.string()),
    pa.field("mel", pa.list_(pa.float32())),  # Wav2Lip mel, (80, T_mel) row-major
    pa.field("mel_shape", _fsl(2, pa.int32())),
    pa.field("mfcc", pa.list_(pa.float32())),  # SyncNet MFCC, (T_mfcc, 13) row-major
    pa.field("mfcc_shape", _fsl(2, pa.int32())),
    pa.field("crop_size", pa.int32()),
    pa.field("main_track", pa.string()),  # how the main face track was chosen
    # shots (prep.shots): a multi-shot source becomes one clip per shot, "<source_clip_id>/shot-<start:06d>"
    pa.field("source_clip_id", pa.string()),  # the input's clip id (== clip_id for a single-shot source)
    pa.field("shot_index", pa.int32()),  # 0-based shot of the source
    pa.field("num_shots", pa.int32()),  # shots in the source (short ones are failure rows)
    pa.field("shot_start", pa.int32()),  # first source frame of this clip (25 fps); frame_index 0 is this
    pa.field("shot_stop", pa.int32()),  # one past the last source frame
    pa.field("source_cuts", pa.list_(pa.int32())),  # every cut of the source: first frame of each new shot
    # QA (prep job); NaN where not measurable
    pa.field("qa_face_fraction", pa.float32()),
    pa.field("qa_face_size", pa.float32()),  # median face box side, source px
    pa.field("qa_num_faces", pa.int32()),  # max faces seen in one frame
    pa.field("qa_jitter", pa.float32()),  # mean frame-to-frame landmark motion, crop px
    pa.field("qa_blur", pa.float32()),  # variance of Laplacian on the mouth region of crops
    pa.field("qa_loudness_db", pa.float32()),  # RMS dBFS of the 16 kHz audio
    pa.field("qa_fit_residual", pa.float32()),  # mean 3DMM keypoint residual, source px
    # sync QA (prep.syncqa; null with sync_note / the manifest's sync_qa.reason when not measured)
    pa.field("sync_offset", pa.int32()),  # frames, > 0: audio ahead of video (SyncNet's convention)
    pa.field("sync_conf", pa.float32()),  # SyncNet confidence (LSE-C) at that offset
    pa.field("sync_dist", pa.float32()),  # SyncNet distance (LSE-D)
    pa.field("sync_windows", pa.int32()),  # 5-frame windows scored
    pa.field("sync_shift", pa.int32()),  # frames the stored mel / mfcc were shifted by (--sync-shift)
    pa.field("sync_note", pa.string()),  # why a sync measure is missing
    pa.field("sync_tracks", pa.list_(pa.struct([  # per face track when the shot has several faces
        ("track", pa.int32()), ("face_size", pa.float32()), ("sync_offset", pa.int32()),
        ("sync_conf", pa.float32()), ("main", pa.bool_())]))),
    pa.field("qa_audio_coverage", pa.float32()),  # fraction of the clip's audio read from the file (not padding)
    pa.field("qa_flags", pa.list_(pa.string())),  # reasons a --filter marked this clip
    pa.field("qa_pass", pa.bool_()),
])

FRAMES_SCHEMA = pa.schema([
    pa.field("clip_id", pa.string(), nullable=False),
    pa.field("frame_index", pa.int32(), nullable=False),  # 0-based at 25 fps
    pa.field("crop", pa.binary()),  # encoded aligned face crop (codec in manifest: config.crop_codec)
    pa.field("face_found", pa.bool_(), nullable=False),
    pa.field("num_faces", pa.int16()),
    pa.field("box", _fsl(4)),  # main face box x0, y0, x1, y1 in source px
    pa.field("landmarks", _fsl(2 * NUM_LANDMARKS)),  # 68 (x, y), crop coords
    pa.field("landmarks_src", _fsl(2 * NUM_LANDMARKS)),  # 68 (x, y), source px
    pa.field("affine", _fsl(6)),  # 2x3 row-major, source px -> crop px
    pa.field("mm_pose", _fsl(len(MM_POSE_FIELDS))),
    pa.field("mm_id", _fsl(NUM_MM_ID)),
    pa.field("mm_exp", _fsl(NUM_MM_EXP)),
    pa.field("mm_residual", pa.float32()),  # mean keypoint reprojection error, source px
])

FAILURES_SCHEMA = pa.schema([
    pa.field("source_path", pa.string(), nullable=False),
    pa.field("clip_id", pa.string()),
    pa.field("stage", pa.string(), nullable=False),  # open / decode / audio / shots / faces / 3dmm / qa / internal
    pa.field("error_type", pa.string(), nullable=False),
    pa.field("message", pa.string(), nullable=False),
    pa.field("transient", pa.bool_()),  # an environment failure (disk full, memory, killed worker): retried
])

SCHEMAS = {"clips": CLIPS_SCHEMA, "frames": FRAMES_SCHEMA, "failures": FAILURES_SCHEMA}

__all__ = ["SCHEMA_VERSION", "CLIPS_SCHEMA", "FRAMES_SCHEMA", "FAILURES_SCHEMA", "SCHEMAS",
           "NUM_LANDMARKS", "NUM_MM_ID", "NUM_MM_EXP", "MM_POSE_FIELDS"]
