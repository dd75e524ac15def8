"""``talkbench animate IMAGE AUDIO --checkpoint RUN --out video.mp4``: a thin wrapper over
``refmodel.oneshot.animate.animate`` (one face photo + any audio file → a 25 fps talking video). Cheap to import."""
from __future__ import annotations

import sys


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "animate", help="one face photo + any audio -> a talking video (oneshot3dmm model)",
        description="Animate the face of IMAGE with AUDIO: lips from the audio, head pose and blinks sampled from "
                    "the model (or the pose of a real clip), written as a 25 fps H.264 video with the audio muxed.")
    p.add_argument("image", metavar="IMAGE", help="a photo with one frontal face (JPEG, PNG, ...)")
    p.add_argument("audio", metavar="AUDIO", help="any audio (or video) file PyAV decodes")
    p.add_argument("--checkpoint", required=True, metavar="RUN",
                   help="a oneshot3dmm run directory or its checkpoint.pt (`talkbench train --model oneshot3dmm`)")
    p.add_argument("--out", required=True, metavar="VIDEO", help="output video (.mp4); VIDEO.json records the inputs")
    p.add_argument("--seed", type=int, default=0, help="seed of the sampled pose / blink sequence (and the noise)")
    p.add_argument("--pose-from", default=None, metavar="CLIP", help="drive the head pose from this video's face")
    p.add_argument("--steps", type=int, default=None, help="DDIM steps of the renderer (default: the checkpoint's)")
    p.add_argument("--device", default="auto", help="where the models run: auto (cuda when present), cpu, cuda")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=_animate)


def _animate(args) -> int:
    from refmodel import models
    from refmodel.oneshot.animate import AnimateError, animate
    from talkbase.weights import WeightsUnreadable

    try:
        model = models.model_of_checkpoint(args.checkpoint)
    except (FileNotFoundError, WeightsUnreadable) as e:
        print(f"talkbench animate: {e}", file=sys.stderr)
        return 2
    if model.name != "oneshot3dmm":
        print(f"talkbench animate: {args.checkpoint} is a {model.name} checkpoint; animate needs a oneshot3dmm one "
              "(`talkbench train PREP_OUT --out RUN --model oneshot3dmm`)", file=sys.stderr)
        return 2
    try:
        out = animate(args.image, args.audio, args.checkpoint, args.out, seed=args.seed, pose_from=args.pose_from,
                      steps=args.steps, device=args.device, progress=not args.no_progress)
    except AnimateError as e:
        print(f"talkbench animate: {e}", file=sys.stderr)
        return 2
    print(out)
    return 0


__all__ = ["register"]
