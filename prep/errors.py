"""Typed errors for bad inputs. Each names the file and the reason, so a failure row is readable."""
from __future__ import annotations


class TalkbenchError(Exception):
    """Base of every error talkbench raises on purpose."""


class MediaError(TalkbenchError):
    """A media file could not be used. ``stage`` says where it failed (goes into failures tables)."""

    stage = "decode"

    def __init__(self, path, reason: str):
        self.path = str(path)
        self.reason = reason
        super().__init__(f"{self.path}: {reason}")


class NotAFile(MediaError):
    """Missing, a directory, empty, or unreadable (permissions)."""

    stage = "open"


class UndecodableMedia(MediaError):
    """The container or codec could not be read (corrupt file, text named .mp4, ...)."""


class NoVideoStream(MediaError):
    pass


class NoAudioStream(MediaError):
    pass


class ZeroFrames(MediaError):
    """A video stream exists but no frame could be decoded from it."""


class TooShort(MediaError):
    """Fewer frames than a stage needs (e.g. 1 frame where a 5-frame window is required)."""


class FaceError(TalkbenchError):
    """No usable face track in a clip."""

    stage = "faces"

    def __init__(self, clip_id: str, reason: str):
        self.clip_id = clip_id
        self.reason = reason
        super().__init__(f"{clip_id}: {reason}")
