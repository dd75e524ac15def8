"""Held-out evaluation of a checkpoint against the baselines (the acceptance check of the reference model).

On the held-out tail of every clip (the last ``holdout_fraction`` of its frames, never trained on), at
the model's resolution:

- masked-region PSNR: PSNR of the lower half of the generated crop vs the real crop
  (``evalkit.metrics.psnr.psnr_frames``), mean over frames;
- mouth LMD: dlib 68-point landmarks on both crops upscaled to 256 px, with the box dlib's detector
  finds on the real crop (template face box when it finds none), scored by
  ``evalkit.metrics.lmd.lmd_frames`` (mouth points, centred, mean distance in 256-px crop pixels);
  lower is better;
- in-domain sync: the sync expert's (``evalkit.nets.sync_expert``) mean similarity of every generated
  5-frame mouth window with the *true* audio window — once for the model driven by the true audio and
  once for the model driven by the held-out audio windows shuffled in time (a good model scores higher
  on the former).

The baselines (``mean-fill``, ``copy-reference``, ``clip-mean``; see ``refmodel.baselines``) are
scored the same way (they ignore audio).
Command: ``python -m refmodel.evaluate RUN_DIR/checkpoint.pt PREP_OUT``.
"""
from __future__ import annotations

import json
import logging
import time
from pathlib import Path

import numpy as np

log = logging.getLogger(__name__)

LMD_SIZE = 256


def _face_box(backend, crop_big: np.ndarray) -> np.ndarray:
    from prep.faces.align import template

    found = backend.detect([crop_big])[0]
    if len(found):
        return found[np.argmax((found[:, 2] - found[:, 0]) * (found[:, 3] - found[:, 1])), :4]
    pts = template(crop_big.shape[0])
    return np.array([pts[:, 0].min(), pts[17:27, 1].min(), pts[:, 0].max(), pts[:, 1].max()])


def _landmarks(backend, crops: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    from .submission import upscale

    big = np.stack([upscale(c, LMD_SIZE) for c in crops])
    return backend.landmarks(big, boxes)


def _window_scores(scorer, crops: np.ndarray, mels: np.ndarray) -> np.ndarray:
    """Similarity of each 5-frame window of consecutive crops with the true mel window of its start."""
    w = scorer.arch.window
    if len(crops) < w:
        return np.zeros(0)
    windows = np.stack([crops[i:i + w] for i in range(len(crops) - w + 1)])
    return scorer.score(windows, mels[:len(windows)])


def evaluate_heldout(checkpoint, prep_out, steps: int | None = None, seed: int = 0, sync_expert=None,
                     device: str = "auto", shuffle_seed: int = 1, batch_size: int = 64,
                     frames: str = "holdout") -> dict:
    """Score the model, the model on shuffled audio, ``mean-fill`` and ``copy-reference`` on held-out
    frames. Returns ``{"methods": {name: {psnr, lmd, sync}}, "clips": ..., "frames": N, ...}``."""
    import torch

    from evalkit.metrics.lmd import lmd_frames
    from evalkit.metrics.psnr import psnr_frames
    from evalkit.nets.sync_expert import load_sync_expert
    from prep.faces import get_backend

    from .baselines import baseline_crops, dataset_mean_crop
    from .data import frame_range, load_crop, open_prep
    from .diffusion import MaskedDiffusion
    from .sample import clip_noise, generate_crops
    from .submission import clip_frame_rows, list_clips, padded_mel_windows, reference_frames, upscale
    from .train import SYNC_EXPERT, load_model, pick_device

    t0 = time.time()
    prep = open_prep(prep_out)
    dev = pick_device(device)
    model, cfg, ckpt = load_model(checkpoint, dev)
    ckpt_path = Path(checkpoint)
    run_dir = ckpt_path if ckpt_path.is_dir() else ckpt_path.parent
    scorer = load_sync_expert(sync_expert or run_dir / (ckpt.get("sync_expert") or SYNC_EXPERT))
    diffusion = MaskedDiffusion(cfg.diffusion)
    steps = steps or cfg.diffusion.sample_steps
    size = cfg.model.image_size
    half = size // 2
    backend = get_backend("dlib")
    names = ("model", "model-shuffled-audio", "mean-fill", "copy-reference", "clip-mean")
    mean_crop = np.clip(np.rint(dataset_mean_crop(prep, size)), 0, 255).astype(np.uint8)
    acc = {n: {"psnr": [], "lmd": [], "sync": []} for n in names + ("real",)}
    per_clip = {}
    for clip in list_clips(prep, sources=False):  # scored on the stored crops: no source video needed
        rows = clip_frame_rows(prep, clip.clip_id)
        lo, hi = frame_range(clip.num_frames, frames, cfg.holdout_fraction)
        faces_all = sorted(rows)
        # a contiguous run of held-out face frames (sync windows need consecutive frames)
        held = [f for f in faces_all if lo <= f < hi]
        if len(held) < scorer.arch.window:
            continue
        small = {f: load_crop(rows[f]["crop"], size, clip.crop_size) for f in faces_all}
        refs = reference_frames(faces_all, cfg.min_ref_gap)
        real = np.stack([small[f] for f in held])
        mels = padded_mel_windows(clip.mel, held)
        shuffled = mels[np.random.default_rng([shuffle_seed, len(per_clip)]).permutation(len(held))]
        references = np.stack([small[refs[f]] for f in held])
        noise = clip_noise(seed, size)
        with torch.no_grad():
            out = {"model": generate_crops(model, diffusion, real, references, mels, noise, steps, batch_size, dev),
                   "model-shuffled-audio": generate_crops(model, diffusion, real, references, shuffled, noise,
                                                          steps, batch_size, dev)}
        for name in ("mean-fill", "copy-reference", "clip-mean"):
            filled = baseline_crops(name, small, cfg.min_ref_gap, mean_crop)
            out[name] = np.stack([filled[f] for f in held])
        out["real"] = real
        boxes = np.stack([_face_box(backend, upscale(c, LMD_SIZE)) for c in real])
        lm_real = _landmarks(backend, real, boxes)
        per_clip[clip.clip_id] = {"frames": len(held)}
        for name, crops in out.items():
            psnr = psnr_frames(real[:, half:], crops[:, half:])
            lmd = lmd_frames(lm_real, _landmarks(backend, crops, boxes), "mouth") if name != "real" else np.zeros(len(held))
            sync = _window_scores(scorer, crops, mels)
            acc[name]["psnr"].append(psnr)
            acc[name]["lmd"].append(lmd)
            acc[name]["sync"].append(sync)
            per_clip[clip.clip_id][name] = {"psnr": float(np.mean(psnr[np.isfinite(psnr)])) if name != "real" else None,
                                            "lmd": float(np.nanmean(lmd)), "sync": float(np.mean(sync))}
    if not per_clip:
        raise ValueError(f"{prep.path}: no clip has {scorer.arch.window}+ {frames} face frames")
    methods = {}
    for name, d in acc.items():
        psnr = np.concatenate(d["psnr"])
        methods[name] = {"psnr": float(np.mean(psnr[np.isfinite(psnr)])) if name != "real" else None,
                         "lmd": float(np.nanmean(np.concatenate(d["lmd"]))) if name != "real" else 0.0,
                         "sync": float(np.mean(np.concatenate(d["sync"])))}
    return {"checkpoint": str(checkpoint), "step": int(ckpt["step"]), "ddim_steps": steps, "seed": seed,
            "frames": int(sum(c["frames"] for c in per_clip.values())), "subset": frames,
            "holdout_fraction": cfg.holdout_fraction, "methods": methods, "clips": per_clip,
            "sync_expert": scorer.metrics.get("holdout"), "seconds": round(time.time() - t0, 1),
            "psnr": "lower-half PSNR at the model resolution (dB)", "lmd": "mouth LMD, 256-px crop pixels"}


def main(argv=None) -> int:
    import argparse

    p = argparse.ArgumentParser(prog="python -m refmodel.evaluate", description=__doc__.splitlines()[0])
    p.add_argument("checkpoint")
    p.add_argument("prep_out")
    p.add_argument("--steps", type=int, default=None, help="DDIM steps (default: the config's)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--sync-expert", default=None)
    p.add_argument("--out", default=None, help="write the result JSON here")
    a = p.parse_args(argv)
    res = evaluate_heldout(a.checkpoint, a.prep_out, a.steps, a.seed, a.sync_expert)
    text = json.dumps(res, indent=2)
    if a.out:
        from talkbase.fileio import atomic_write_text

        atomic_write_text(a.out, text + "\n")
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())


__all__ = ["evaluate_heldout"]
