"""Generate submission videos with a trained checkpoint.

For each clip, every face frame's lower half is inpainted by DDIM from the masked crop, a fixed
reference frame (``submission.reference_frames``) and the driving audio's mel window of that frame.
Temporal consistency: every frame of a clip starts from the **same** initial noise x_T (drawn once per
clip from ``seed``) and DDIM with η = 0 is deterministic, so neighbouring frames with similar inputs
get similar mouths. ``sample_report.json`` in the output directory records, per clip, the
frame-to-frame flicker of the generated mouth region (mean |Δ| between consecutive frames, 0–255) next
to the same measure on the source crops.
"""
from __future__ import annotations

import json
import logging
import time
from pathlib import Path

import numpy as np

log = logging.getLogger(__name__)


def generate_crops(model, diffusion, masked_src: np.ndarray, references: np.ndarray, mels: np.ndarray,
                   noise, steps: int, batch_size: int = 64, device="cpu", progress=None) -> np.ndarray:
    """Inpaint the lower half of N crops. Inputs (N, S, S, 3) uint8 crops (the lower half is ignored),
    (N, S, S, 3) uint8 references, (N, 80, 16) mel windows, and x_T of shape (3, S, S) shared by all
    frames (or (N, 3, S, S)). Returns (N, S, S, 3) uint8 crops (upper half = input)."""
    import torch

    from .diffusion import mouth_mask, to_model_range, to_uint8

    out = []
    for i in range(0, len(masked_src), batch_size):
        src = to_model_range(torch.from_numpy(masked_src[i:i + batch_size]).permute(0, 3, 1, 2).to(device))
        mask = mouth_mask(src.shape[-1], device)
        ref = to_model_range(torch.from_numpy(references[i:i + batch_size]).permute(0, 3, 1, 2).to(device))
        mel = torch.from_numpy(mels[i:i + batch_size]).to(device)
        x_t = noise.to(device)
        x_t = x_t.expand(len(src), -1, -1, -1) if x_t.dim() == 3 else x_t[i:i + batch_size]
        img = diffusion.sample(model, src * (1 - mask), ref, mel, x_t, steps)
        out.append(to_uint8(img).permute(0, 2, 3, 1).cpu().numpy())
        if progress is not None:
            progress.update(len(src))
    return np.concatenate(out) if out else np.zeros((0,) + masked_src.shape[1:], np.uint8)


def mouth_flicker(crops: np.ndarray) -> float:
    """Mean absolute difference (0–255) of the lower half between consecutive frames."""
    if len(crops) < 2:
        return 0.0
    lower = crops[:, crops.shape[1] // 2:].astype(np.float32)
    return float(np.abs(np.diff(lower, axis=0)).mean())


def clip_noise(seed: int, size: int):
    """x_T shared by all frames of a clip: (3, size, size) from ``seed``."""
    import torch

    return torch.randn((3, size, size), generator=torch.Generator().manual_seed(int(seed)))


def sample_videos(checkpoint, prep_out, out_dir, clip_ids=None, audio_from=None, steps: int | None = None,
                  seed: int = 0, batch_size: int = 64, device: str = "auto", progress: bool = True) -> list[Path]:
    """Write ``<clip_id>.mp4`` for each clip (all clips of ``prep_out`` by default).

    ``audio_from``: None drives each clip with its own audio (reconstruction); a clip id of
    ``prep_out`` or an audio/video file drives every clip with that audio (cross). ``steps``: DDIM
    steps (default: the checkpoint config's). Returns the written paths.
    """
    import torch

    from talkbase.fileio import atomic_write_text

    from .data import load_crop, open_prep
    from .diffusion import MaskedDiffusion
    from .submission import (clip_frame_rows, driving_audio, list_clips, output_path, padded_mel_windows,
                             reference_frames, render_clip, upscale)
    from .train import load_model, pick_device

    prep = open_prep(prep_out)
    dev = pick_device(device)
    model, cfg, ckpt = load_model(checkpoint, dev)
    diffusion = MaskedDiffusion(cfg.diffusion)
    steps = steps or cfg.diffusion.sample_steps
    size = cfg.model.image_size
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    report = {"checkpoint": str(checkpoint), "step": ckpt["step"], "steps": steps, "seed": seed,
              "audio_from": audio_from, "noise": "same x_T for every frame of a clip", "clips": {}}
    written = []
    for clip in list_clips(prep, clip_ids):
        t0 = time.time()
        audio = driving_audio(prep, clip, audio_from)
        n = min(clip.num_frames, audio.num_frames)
        rows = clip_frame_rows(prep, clip.clip_id)
        faces = [f for f in sorted(rows) if f < n]
        refs = reference_frames(faces, cfg.min_ref_gap)
        small = {f: load_crop(rows[f]["crop"], size, clip.crop_size) for f in faces}
        bar = None
        if progress:
            from tqdm import tqdm

            bar = tqdm(total=len(faces), desc=f"sample {clip.clip_id}", dynamic_ncols=True)
        with torch.no_grad():
            gen = generate_crops(model, diffusion,
                                 np.stack([small[f] for f in faces]) if faces else np.zeros((0, size, size, 3), np.uint8),
                                 np.stack([small[refs[f]] for f in faces]) if faces else np.zeros((0, size, size, 3), np.uint8),
                                 padded_mel_windows(audio.mel, faces) if faces else np.zeros((0, 80, 16), np.float32),
                                 clip_noise(seed, size), steps, batch_size, dev, bar)
        if bar is not None:
            bar.close()
        generated = {f: gen[i] for i, f in enumerate(faces)}
        path = render_clip(clip, rows, n, audio.wav, output_path(out_dir, clip.clip_id),
                           lambda f: upscale(generated[f], clip.crop_size) if f in generated else None)
        written.append(path)
        src = np.stack([small[f] for f in faces]) if faces else np.zeros((0, size, size, 3), np.uint8)
        report["clips"][clip.clip_id] = {
            "frames": n, "generated_frames": len(faces), "driving_audio": audio.name,
            "flicker": mouth_flicker(gen), "source_flicker": mouth_flicker(src),
            "seconds": round(time.time() - t0, 2)}
        log.info("sampled %s (%d frames, flicker %.2f vs source %.2f)", path, n,
                 report["clips"][clip.clip_id]["flicker"], report["clips"][clip.clip_id]["source_flicker"])
    atomic_write_text(out_dir / "sample_report.json", json.dumps(report, indent=2) + "\n")
    return written


__all__ = ["sample_videos", "generate_crops", "mouth_flicker", "clip_noise"]
