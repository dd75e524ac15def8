"""The networks evalkit scores with, each in its official state-dict layout (loaded by path / env / cache)."""
from __future__ import annotations

from talkbase.weights import WeightsNotFound, check_layout, load_torch_state


def load_network(net, name: str, path, allow_random: bool, seed: int, random_state_dict, check=None):
    """``net`` in eval mode with model ``name``'s weights (``talkbase.weights.load_torch_state``), labelled with
    ``weights_path``, ``weights_sha256`` and ``calibrated`` (the pinned official file only).

    Absent weights raise ``WeightsNotFound`` unless ``allow_random``: then a seeded random network, uncalibrated.
    ``check(net, state, info)`` vets the state (default: the strict key/shape check) and loads it.
    """
    try:
        state, info = load_torch_state(name, path)
    except WeightsNotFound:
        if not allow_random:
            raise
        net.load_state_dict(random_state_dict(seed))
        net.weights_path, net.weights_sha256, net.calibrated = None, None, False
        return net.eval()
    if check is None:
        check_layout(net, state, f"{info.path} ({name})")
    else:
        check(net, state, info)
    net.weights_path, net.weights_sha256, net.calibrated = info.path, info.sha256, info.official
    return net.eval()


__all__ = ["load_network"]
