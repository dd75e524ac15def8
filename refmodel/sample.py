"""Generate submission videos with a trained checkpoint of any inpainting reference model.

A *crop generator* (:class:`Diff2LipGenerator`, ``refmodel.attnwav2lip.train.AttnWav2LipGenerator``; loaded
from a checkpoint by :func:`load_generator`, which dispatches on the checkpoint's ``kind`` through
``refmodel.models``) fills the lower half of aligned face crops from the masked crop, a fixed reference
frame (``submission.reference_frames``) and the driving audio's mel window of each frame;
:func:`sample_videos` pastes the result back into the source video with the driving audio.

Diff2Lip's temporal consistency: every frame of a clip starts from the **same** initial noise x_T (drawn
once per clip from ``seed``) and DDIM with η = 0 is deterministic, so neighbouring frames with similar
inputs get similar mouths. ``sample_report.json`` in the output directory records, per clip, the driving
audio, and the frame-to-frame flicker of the generated mouth region (mean |Δ| between consecutive frames,
0–255) next to the same measure on the source crops.
"""
from __future__ import annotations

import json
import logging
import time
from pathlib import Path

import numpy as np

log = logging.getLogger(__name__)


def generate_crops(model, diffusion, masked_src: np.ndarray, references: np.ndarray, mels: np.ndarray,
                   noise, steps: int, batch_size: int = 64, device="cpu", progress=None,
                   blank_reference_mouth: bool = False, guidance: float | None = None) -> np.ndarray:
    """Inpaint the lower half of N crops. Inputs (N, S, S, 3) uint8 crops (the lower half is ignored),
    (N, S, S, 3) uint8 references, (N, 80, 16) mel windows, and x_T of shape (3, S, S) shared by all
    frames (or (N, 3, S, S)). Returns (N, S, S, 3) uint8 crops (upper half = input).
    ``blank_reference_mouth``: the network sees the reference with its lower half blanked (the residual
    anchor still measures from the whole reference); ``guidance``: audio classifier-free guidance."""
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
        if blank_reference_mouth:
            img = _sample_blank_reference(diffusion, model, src * (1 - mask), ref, mel, x_t, steps, guidance)
        else:
            img = diffusion.sample(model, src * (1 - mask), ref, mel, x_t, steps, guidance)
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


def _sample_blank_reference(diffusion, model, masked, ref, mel, x_t, steps, guidance):
    """DDIM with the network seeing the reference's lower half blanked; under the ``reference`` anchor the
    residual is still measured from the whole reference (as in training, ``loss_terms``)."""
    from .diffusion import mouth_mask

    blank = ref * (1 - mouth_mask(masked.shape[-1], masked.device))
    return diffusion.sample(model, masked, blank, mel, x_t, steps, guidance, origin_reference=ref)


class Diff2LipGenerator:
    """A trained Diff2Lip-style checkpoint as a crop generator (see the module docstring)."""

    name = "diff2lip"

    def __init__(self, checkpoint, device: str = "auto", steps: int | None = None, guidance: float | None = None):
        from .diffusion import MaskedDiffusion
        from .train import load_model, pick_device
        from .training import bind_checkpoint

        self.device = pick_device(device)
        self.model, self.cfg, ckpt = load_model(checkpoint, self.device)
        self.diffusion = MaskedDiffusion(self.cfg.diffusion)
        self.steps = steps or self.cfg.diffusion.sample_steps
        self.guidance = self.cfg.diffusion.guidance if guidance is None else float(guidance)
        bind_checkpoint(self, checkpoint, self.cfg, ckpt)
        self.settings = {"ddim_steps": self.steps, "guidance": self.guidance}

    def generate(self, crops: np.ndarray, references: np.ndarray, mels: np.ndarray, seed: int = 0,
                 batch_size: int = 64, progress=None) -> np.ndarray:
        """(N, S, S, 3) uint8 crops with the lower half generated (upper half = ``crops``')."""
        import torch

        with torch.no_grad():
            return generate_crops(self.model, self.diffusion, crops, references, mels,
                                  clip_noise(seed, self.image_size), self.steps, batch_size, self.device, progress,
                                  blank_reference_mouth=self.cfg.ref_mouth_drop >= 1.0, guidance=self.guidance)


def load_generator(checkpoint, device: str = "auto", **options):
    """The crop generator of a checkpoint (file or run dir) of any registered inpainting model.
    ``options``: model-specific sampling settings (Diff2Lip: ``steps``, ``guidance``); None values are
    dropped, unknown ones ignored by models without them."""
    from . import models

    model = models.model_of_checkpoint(checkpoint)
    if not model.generator:
        raise ValueError(f"{checkpoint}: {model.name} has no crop generator")
    factory = models.function(model.generator)
    import inspect

    accepted = inspect.signature(factory).parameters
    kw = {k: v for k, v in options.items() if v is not None and k in accepted}
    return factory(checkpoint, device=device, **kw)


def sample_videos(checkpoint, prep_out, out_dir, clip_ids=None, audio_from=None, steps: int | None = None,
                  seed: int = 0, batch_size: int = 64, device: str = "auto", progress: bool = True,
                  generator=None) -> list[Path]:
    """Write ``<clip_id>.mp4`` for each clip (all clips of ``prep_out`` by default).

    ``audio_from``: None drives each clip with its own audio (reconstruction); a clip id of
    ``prep_out`` or an audio/video file drives every clip with that audio (cross). ``steps``: DDIM
    steps of a diffusion checkpoint (default: its config's). ``generator``: an already loaded crop
    generator (then ``checkpoint`` only names it in the report). Returns the written paths.
    """
    from talkbase.fileio import atomic_write_text

    from .data import load_crop, open_prep
    from .submission import (clip_frame_rows, driving_audio, list_clips, output_path, padded_mel_windows,
                             reference_frames, render_clip, upscale)

    prep = open_prep(prep_out)
    gen_ = generator or load_generator(checkpoint, device, steps=steps)
    size = gen_.image_size
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    report = {"checkpoint": str(checkpoint), "model": gen_.name, "step": gen_.step, **gen_.settings, "seed": seed,
              "audio_from": audio_from, "noise": "same x_T for every frame of a clip", "clips": {}}
    written = []
    empty = np.zeros((0, size, size, 3), np.uint8)
    for clip in list_clips(prep, clip_ids):
        t0 = time.time()
        audio = driving_audio(prep, clip, audio_from)
        n = min(clip.num_frames, audio.num_frames)
        rows = clip_frame_rows(prep, clip.clip_id)
        faces = [f for f in sorted(rows) if f < n]
        refs = reference_frames(faces, gen_.min_ref_gap)
        small = {f: load_crop(rows[f]["crop"], size, clip.crop_size) for f in faces}
        bar = None
        if progress:
            from tqdm import tqdm

            bar = tqdm(total=len(faces), desc=f"sample {clip.clip_id}", dynamic_ncols=True)
        src = np.stack([small[f] for f in faces]) if faces else empty
        gen = gen_.generate(src, np.stack([small[refs[f]] for f in faces]) if faces else empty,
                            padded_mel_windows(audio.mel, faces) if faces else np.zeros((0, 80, 16), np.float32),
                            seed, batch_size, bar)
        if bar is not None:
            bar.close()
        generated = {f: gen[i] for i, f in enumerate(faces)}
        path = render_clip(clip, rows, n, audio.wav, output_path(out_dir, clip.clip_id),
                           lambda f: upscale(generated[f], clip.crop_size) if f in generated else None)
        written.append(path)
        report["clips"][clip.clip_id] = {
            "frames": n, "generated_frames": len(faces), "driving_audio": audio.name,
            "flicker": mouth_flicker(gen), "source_flicker": mouth_flicker(src),
            "seconds": round(time.time() - t0, 2)}
        log.info("sampled %s (%d frames, flicker %.2f vs source %.2f)", path, n,
                 report["clips"][clip.clip_id]["flicker"], report["clips"][clip.clip_id]["source_flicker"])
    path = out_dir / "sample_report.json"
    if path.exists():  # clips sampled into this folder before (e.g. one call per cross-driven clip) stay listed
        try:
            before = json.loads(path.read_text())
            report["clips"] = {**before.get("clips", {}), **report["clips"]}
            if before.get("audio_from") != audio_from:
                report["audio_from"] = "per clip (see clips.*.driving_audio)"
        except (json.JSONDecodeError, AttributeError):
            pass
    atomic_write_text(path, json.dumps(report, indent=2) + "\n")
    return written


__all__ = ["sample_videos", "generate_crops", "mouth_flicker", "clip_noise", "Diff2LipGenerator", "load_generator"]
