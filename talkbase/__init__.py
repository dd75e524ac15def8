"""talkbase: the ground floor of talkbench. Imports nothing else of the project.

What every other package shares: the version, the time base, the weight registry and its checked loader,
atomic / sha256 file I/O, text escaping, the results-file format, the executor and the thread limiter.
"""
from importlib.metadata import PackageNotFoundError, version as _version

try:
    __version__ = _version("talkbench")
except PackageNotFoundError:  # running from a source tree without install
    __version__ = "0.1.0"

__all__ = ["__version__"]
