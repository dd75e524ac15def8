"""prep: turn talking-head videos into Parquet training shards (decode, audio features, faces, QA)."""
from .errors import MediaError, NoAudioStream, NoVideoStream, NotAFile, TalkbenchError, UndecodableMedia, ZeroFrames
from .media import FPS, SAMPLE_RATE, decode_clip, iter_frames, probe, read_audio, read_frames

__all__ = ["FPS", "SAMPLE_RATE", "decode_clip", "iter_frames", "probe", "read_audio", "read_frames",
           "MediaError", "NoAudioStream", "NoVideoStream", "NotAFile", "TalkbenchError",
           "UndecodableMedia", "ZeroFrames"]
