"""Corpus recipes, lhotse-style: ``prepare_<corpus>(corpus_dir, output_dir=None) -> list[InputItem]``.

Each knows its corpus' standard layout (splits, speakers) and, given ``output_dir``, also writes
``output_dir/<corpus>_inputs.csv`` that ``talkbench prep`` accepts as a list file.
"""
from __future__ import annotations

import importlib
from typing import Callable

RECIPES = ("lrs2", "lrs3", "voxceleb2", "hdtf", "lrw")


def get_recipe(name: str) -> Callable:
    if name not in RECIPES:
        raise ValueError(f"unknown recipe {name!r}; choose from {', '.join(RECIPES)}")
    mod = importlib.import_module(f"{__name__}.{name}")
    return getattr(mod, f"prepare_{name}")


__all__ = ["RECIPES", "get_recipe"]
