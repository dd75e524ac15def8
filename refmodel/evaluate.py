"""Held-out evaluation of a checkpoint against the baselines: image quality *and* whether the mouth follows
the audio (the acceptance check of the reference models).

On held-out frames (``frames="holdout"``: the last ``holdout_fraction`` of every clip, never trained on;
``frames="all"`` with ``split="test"``: whole clips of a split the model was not trained on), at the
model's resolution, for the model driven by the true audio, by the same audio windows shuffled in time,
by **another clip's audio** (cross: the next clip in id order, same frame indices), and for the baselines
(``mean-fill``, ``copy-reference``, ``clip-mean``; ``refmodel.baselines``; they ignore audio):

- masked-region PSNR (``evalkit.metrics.psnr.psnr_frames`` on the lower half), mean over frames;
- mouth LMD (dlib 68 landmarks on crops upscaled to 256 px in the box dlib finds on the real crop,
  ``evalkit.metrics.lmd.lmd_frames``; 256-px crop pixels; lower is better);
- in-domain sync: the sync expert's (``evalkit.nets.sync_expert``) mean similarity of every generated
  5-frame window with the *true* audio window;
- **mouth opening** (``refmodel.lipsync``: inner-lip gap / interocular from the same landmarks) and its
  Pearson r with the true opening of the driving audio (the real crops' opening for the own audio; the
  shuffled real opening for shuffled audio; the driving clip's real opening in cross), mean over clips,
  with the amplitude ratio; LMD and sync true − shuffled as paired differences. Every interval is a
  95 % moving-block bootstrap (``refmodel.lipsync.block_bootstrap``).

Command: ``python -m refmodel.evaluate RUN_DIR/checkpoint.pt PREP_OUT [--split test --frames all]``.
"""
from __future__ import annotations

import json
import logging
import time
from pathlib import Path

import numpy as np

log = logging.getLogger(__name__)

LMD_SIZE = 256
BASELINE_NAMES = ("mean-fill", "copy-reference", "clip-mean")


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
    if scorer is None or len(crops) < scorer.arch.window:
        return np.zeros(0)
    w = scorer.arch.window
    windows = np.stack([crops[i:i + w] for i in range(len(crops) - w + 1)])
    return scorer.score(windows, mels[:len(windows)])


def _load_scorer(generator, sync_expert):
    from evalkit.nets.sync_expert import load_sync_expert

    path = Path(sync_expert) if sync_expert else generator.sync_expert
    if path is None or not Path(path).exists():
        log.warning("no sync expert (%s): in-domain sync not scored", path)
        return None
    return load_sync_expert(path)


def _mean(x) -> float | None:
    x = np.asarray(np.concatenate(x) if isinstance(x, list) and x else x, np.float64)
    x = x[np.isfinite(x)]
    return float(x.mean()) if x.size else None


def evaluate_heldout(checkpoint, prep_out, steps: int | None = None, seed: int = 0, sync_expert=None,
                     device: str = "auto", shuffle_seed: int = 1, batch_size: int = 64, frames: str = "holdout",
                     split: str | None = None, n_boot: int = 1000, generator=None) -> dict:
    """Score the model (true / shuffled / cross audio) and the baselines on held-out frames. Returns
    ``{"methods": {name: {psnr, lmd, sync}}, "lipsync": {...}, "clips": ..., "frames": N, ...}``."""
    from evalkit.metrics.lmd import lmd_frames
    from evalkit.metrics.psnr import psnr_frames
    from prep.faces import get_backend

    from . import lipsync as L
    from .baselines import baseline_crops, dataset_mean_crop
    from .data import frame_range, load_crop, open_prep
    from .sample import load_generator
    from .submission import clip_frame_rows, list_clips, padded_mel_windows, reference_frames, upscale

    t0 = time.time()
    prep = open_prep(prep_out)
    gen = generator or load_generator(checkpoint, device, steps=steps)
    scorer = _load_scorer(gen, sync_expert)
    size, half = gen.image_size, gen.image_size // 2
    backend = get_backend("dlib")
    mean_crop = np.clip(np.rint(dataset_mean_crop(prep, size)), 0, 255).astype(np.uint8)
    every = {c.clip_id: c for c in list_clips(prep, sources=False)}  # scored on the stored crops
    clips = [c for c in every.values() if split is None or c.split == split]
    ids = sorted(every)
    names = ("model", "model-shuffled-audio", "model-cross-audio") + BASELINE_NAMES + ("real",)
    acc = {n: {"psnr": [], "lmd": [], "sync": []} for n in names}
    openings: dict[str, dict] = {}
    per_clip = {}
    crops_cache: dict[str, dict] = {}

    def crops_of(clip_id):
        if clip_id not in crops_cache:
            rows = clip_frame_rows(prep, clip_id)
            cs = every[clip_id].crop_size
            crops_cache[clip_id] = {f: load_crop(r["crop"], size, cs) for f, r in rows.items()}
        return crops_cache[clip_id]

    for clip in clips:
        small = crops_of(clip.clip_id)
        lo, hi = frame_range(clip.num_frames, frames, gen.holdout_fraction)
        faces_all = sorted(small)
        held = [f for f in faces_all if lo <= f < hi]
        if scorer is not None and len(held) < scorer.arch.window or len(held) < 5:
            continue
        refs = reference_frames(faces_all, gen.min_ref_gap)
        real = np.stack([small[f] for f in held])
        references = np.stack([small[refs[f]] for f in held])
        mels = padded_mel_windows(clip.mel, held)
        perm = np.random.default_rng([shuffle_seed, len(per_clip)]).permutation(len(held))
        # cross: the next clip (id order) whose audio covers these frames drives this one
        driver = next((every[ids[(ids.index(clip.clip_id) + k) % len(ids)]] for k in range(1, len(ids))
                       if every[ids[(ids.index(clip.clip_id) + k) % len(ids)]].num_frames > held[-1]), None)
        out = {"model": gen.generate(real, references, mels, seed, batch_size),
               "model-shuffled-audio": gen.generate(real, references, mels[perm], seed, batch_size)}
        if driver is not None:
            out["model-cross-audio"] = gen.generate(real, references, padded_mel_windows(driver.mel, held), seed,
                                                    batch_size)
        for name in BASELINE_NAMES:
            filled = baseline_crops(name, small, gen.min_ref_gap, mean_crop)
            out[name] = np.stack([filled[f] for f in held])
        out["real"] = real
        boxes = np.stack([_face_box(backend, upscale(c, LMD_SIZE)) for c in real])
        lms = {name: _landmarks(backend, crops, boxes) for name, crops in out.items()}
        open_ = {name: L.opening_from_landmarks(lm) for name, lm in lms.items()}
        if driver is not None:
            dcrops = crops_of(driver.clip_id)
            have = [f for f in held if f in dcrops]
            dopen = np.full(len(held), np.nan)
            if have:
                dopen[[held.index(f) for f in have]] = L.crop_mouth_opening(np.stack([dcrops[f] for f in have]),
                                                                            backend)
            open_["driver-real"] = dopen
        open_["real-shuffled"] = open_["real"][perm]
        openings[clip.clip_id] = open_
        per_clip[clip.clip_id] = {"frames": len(held), "split": clip.split,
                                  "cross_driver": driver.clip_id if driver is not None else None}
        for name, crops in out.items():
            psnr = psnr_frames(real[:, half:], crops[:, half:])
            lmd = lmd_frames(lms["real"], lms[name], "mouth") if name != "real" else np.zeros(len(held))
            sync = _window_scores(scorer, crops, mels) if scorer is not None else np.zeros(0)
            acc[name]["psnr"].append(psnr)
            acc[name]["lmd"].append(lmd)
            acc[name]["sync"].append(sync)
            per_clip[clip.clip_id][name] = {"psnr": _mean(psnr) if name != "real" else None,
                                            "lmd": _mean(lmd), "sync": _mean(sync) if scorer else None,
                                            "opening_r": L.pearson(open_[name], open_["real"])}
    if not per_clip:
        raise ValueError(f"{prep.path}: no clip has 5+ {frames} face frames" + (f" in split {split}" if split else ""))
    methods = {}
    for name, d in acc.items():
        if not d["psnr"]:
            continue
        methods[name] = {"psnr": _mean(d["psnr"]) if name != "real" else None,
                         "lmd": _mean(d["lmd"]) if name != "real" else 0.0,
                         "sync": _mean(d["sync"]) if scorer is not None else None}
    res = {"checkpoint": str(checkpoint), "model": gen.name, "step": gen.step, **gen.settings, "seed": seed,
           "frames": int(sum(c["frames"] for c in per_clip.values())), "subset": frames, "split": split,
           "holdout_fraction": gen.holdout_fraction, "methods": methods, "clips": per_clip,
           "lipsync": lipsync_summary(openings, acc, n_boot, seed),
           "sync_expert": scorer.metrics.get("holdout") if scorer is not None else None,
           "psnr": "lower-half PSNR at the model resolution (dB)", "lmd": "mouth LMD, 256-px crop pixels",
           "opening": "dlib inner-lip gap / interocular (refmodel.lipsync)"}
    res["seconds"] = round(time.time() - t0, 1)
    return res


def lipsync_summary(openings: dict, acc: dict, n_boot: int = 1000, seed: int = 0) -> dict:
    """Correlations of generated with true mouth opening (and the paired true − shuffled differences of
    LMD and sync), each with a 95 % block-bootstrap interval (``refmodel.lipsync``)."""
    from . import lipsync as L

    def pairs(gen_key, true_key):
        return {c: (o[gen_key], o[true_key]) for c, o in openings.items() if gen_key in o and true_key in o}

    out = {}
    for key, (g, t) in {"true_audio": ("model", "real"),
                        "shuffled_vs_true_opening": ("model-shuffled-audio", "real"),
                        "shuffled_vs_shuffled_opening": ("model-shuffled-audio", "real-shuffled"),
                        "cross_vs_driver": ("model-cross-audio", "driver-real"),
                        "cross_vs_own": ("model-cross-audio", "real"),
                        "copy_reference_vs_true": ("copy-reference", "real"),
                        "copy_reference_vs_driver": ("copy-reference", "driver-real")}.items():
        p = pairs(g, t)
        if p:
            s = L.lipsync_stats(p, seed, n_boot)
            out[key] = {"r": s["r"], "amplitude": s["amplitude"], "clips": {c: v["r"] for c, v in s["clips"].items()}}
    diffs = {}
    for metric in ("lmd", "sync"):
        a, b = acc["model"][metric], acc["model-shuffled-audio"][metric]
        if a and all(len(x) for x in a):
            diffs[f"{metric}_true_minus_shuffled"] = L.block_bootstrap(list(zip(a, b)), L.mean_diff, n_boot, seed)
    out.update(diffs)
    return out


def summary_lines(res: dict) -> list[str]:
    """A few human-readable lines of :func:`evaluate_heldout`'s result."""
    from .lipsync import fmt_ci

    ls = res["lipsync"]
    lines = [f"{res['model']} step {res['step']} on {res['frames']} {res['subset']} frames"
             + (f" of split {res['split']}" if res.get("split") else "")]
    for name, m in res["methods"].items():
        lines.append(f"  {name:22s} psnr {m['psnr'] if m['psnr'] is None else round(m['psnr'], 2)!s:>6}  "
                     f"lmd {m['lmd']:.2f}  sync {m['sync'] if m['sync'] is None else round(m['sync'], 3)}")
    for key, v in ls.items():
        if "r" in v:
            lines.append(f"  opening r {key:30s} {fmt_ci(v['r'])}   amplitude {fmt_ci(v['amplitude'])}")
        else:
            lines.append(f"  {key:40s} {fmt_ci(v, 3)}")
    return lines


def main(argv=None) -> int:
    import argparse

    p = argparse.ArgumentParser(prog="python -m refmodel.evaluate", description=__doc__.splitlines()[0])
    p.add_argument("checkpoint")
    p.add_argument("prep_out")
    p.add_argument("--steps", type=int, default=None, help="DDIM steps (default: the config's)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--sync-expert", default=None)
    p.add_argument("--frames", choices=("holdout", "all", "train"), default="holdout")
    p.add_argument("--split", default=None, help="only clips of this split (e.g. test)")
    p.add_argument("--out", default=None, help="write the result JSON here")
    a = p.parse_args(argv)
    res = evaluate_heldout(a.checkpoint, a.prep_out, a.steps, a.seed, a.sync_expert, frames=a.frames, split=a.split)
    if a.out:
        from talkbase.fileio import atomic_write_text

        atomic_write_text(a.out, json.dumps(res, indent=2) + "\n")
    print("\n".join(summary_lines(res)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())


__all__ = ["evaluate_heldout", "lipsync_summary", "summary_lines"]
