"""talkbench: the top layer (the ``talkbench`` console script, the offline demo and its synthetic data).

Nothing else of the project imports this package; the shared ground floor is :mod:`talkbase`.
"""
from talkbase import __version__

__all__ = ["__version__"]
