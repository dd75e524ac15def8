"""talkbench: shared utilities (version, model registry) and the `talkbench` CLI."""
from importlib.metadata import PackageNotFoundError, version as _version

try:
    __version__ = _version("talkbench")
except PackageNotFoundError:  # running from a source tree without install
    __version__ = "0.1.0"
