"""evalkit: score talking-face submissions under a recorded protocol.

Metrics live one per module in :mod:`evalkit.metrics` (``talkbench eval --list-metrics``), networks in
:mod:`evalkit.nets`, the per-video work in :mod:`evalkit.worker` and the driver in :mod:`evalkit.runner`
(``evalkit.runner.evaluate``). Importing ``evalkit`` itself loads nothing heavy.
"""
