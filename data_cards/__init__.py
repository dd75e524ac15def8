"""data_cards: Hugging Face dataset cards for talkbench prep outputs (write and check).

A layer-3 package: it reads prep outputs only through :class:`prep.output.PrepOutput` and uses
:mod:`talkbase` for escaping and atomic writes. ``write_card`` and ``check_card`` are imported on first use,
so ``import data_cards`` (and the ``talkbench card`` command) stays cheap.
"""
from __future__ import annotations

__all__ = ["write_card", "check_card"]


def __getattr__(name: str):
    if name == "write_card":
        from .card import write_card

        return write_card
    if name == "check_card":
        from .check import check_card

        return check_card
    raise AttributeError(f"module 'data_cards' has no attribute {name!r}")
