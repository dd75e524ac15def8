"""Validate a dataset card against its shards: ``check_card(prep_out) -> list of problems`` (empty = OK)."""
from __future__ import annotations

import math
from pathlib import Path, PurePosixPath

from talkbase.fileio import sha256_file
from talkbase.paths import join_inside

from .card import CARD_FILE, CARD_FORMAT, PLOT_FILE, data_files_pattern, hf_features, size_category

REQUIRED_KEYS = ("license", "tags", "task_categories", "size_categories", "source_datasets", "annotations_creators",
                 "configs", "dataset_info", "talkbench")


def read_front_matter(text: str) -> dict:
    """The YAML between the leading '---' lines of a card (raises ValueError)."""
    import yaml

    if not text.startswith("---\n"):
        raise ValueError("no YAML front matter (the card must start with '---')")
    end = text.find("\n---\n", 4)
    if end < 0:
        raise ValueError("YAML front matter is not closed with '---'")
    meta = yaml.safe_load(text[4:end + 1])
    if not isinstance(meta, dict):
        raise ValueError("YAML front matter is not a mapping")
    return meta


def _safe_path(prep_out: Path, rel) -> Path | None:
    return join_inside(prep_out, rel) if isinstance(rel, str) else None


def _check_shards(prep_out: Path, manifest: dict, problems: list[str]) -> dict[str, list[dict]]:
    """Every manifest shard exists inside PREP_OUT with its sha256, row count and the expected schema.

    Returns, per kind, the entries whose file exists and has the expected schema (safe to read for stats).
    """
    import pyarrow.parquet as pq

    from prep.schema import SCHEMAS

    shards = manifest.get("shards")
    if not isinstance(shards, dict):
        problems.append("manifest.json: no 'shards' mapping")
        return {}
    out = {}
    for kind in sorted(shards):
        entries = shards[kind] or []
        good = []
        for e in entries:
            path = _safe_path(prep_out, e.get("path"))
            if path is None:
                problems.append(f"manifest shard path {e.get('path')!r} leaves PREP_OUT")
                continue
            if not path.is_file():
                problems.append(f"{e['path']}: shard listed in manifest.json is missing")
                continue
            digest = sha256_file(path)
            if digest != e.get("sha256"):
                problems.append(f"{e['path']}: sha256 {digest[:12]}… does not match manifest.json "
                                f"({str(e.get('sha256'))[:12]}…)")
            try:
                pf = pq.ParquetFile(path)
            except Exception as err:  # a corrupt file is a problem to report, not a crash
                problems.append(f"{e['path']}: unreadable Parquet ({err})")
                continue
            if pf.metadata.num_rows != e.get("rows"):
                problems.append(f"{e['path']}: {pf.metadata.num_rows} rows, manifest.json says {e.get('rows')}")
            want = SCHEMAS.get(kind)
            real = pf.schema_arrow.remove_metadata()
            if want is not None and not real.equals(want.remove_metadata()):
                diff = sorted(set(map(str, real)) ^ set(map(str, want)))
                problems.append(f"{e['path']}: schema differs from prep.schema {kind.upper()}_SCHEMA: {diff[:6]}")
                continue
            good.append(e)
        out[kind] = good
        listed = {e.get("path") for e in entries}
        folders = {str(PurePosixPath(p).parent) for p in listed if isinstance(p, str) and "/" in p}
        for folder in sorted(folders):
            for f in sorted((prep_out / folder).glob("*.parquet")):
                rel = f.relative_to(prep_out).as_posix()
                if rel not in listed:
                    problems.append(f"{rel}: shard on disk is not listed in manifest.json")
    return out


def check_card(prep_out) -> list[str]:
    """Problems with ``PREP_OUT/README.md`` versus the manifest and the shards (empty list: the card is OK).

    Checks: card and manifest exist; required Hub metadata; config hash; every shard exists with the
    manifest's sha256, rows and the expected schema, and no unlisted shard; the card's shard list, counts,
    hours, size category, ``configs`` data files and ``dataset_info`` features match the shards; the QA plot
    exists.
    """
    from prep.output import MANIFEST, NotAPrepOutput, PrepOutput

    from .stats import ListedShards, compute_stats

    if isinstance(prep_out, PrepOutput):
        po = prep_out
    else:
        man_path = Path(prep_out) / MANIFEST
        if not man_path.is_file():
            return [f"{man_path}: missing (not a finished prep output)"]
        try:
            po = PrepOutput.open(prep_out)
        except (OSError, NotAPrepOutput) as e:
            return [f"{MANIFEST}: unreadable ({e})"]
    prep_out, manifest = po.path, po.manifest
    problems: list[str] = []
    card = prep_out / CARD_FILE
    if not card.is_file():
        return [f"{CARD_FILE}: missing (run `talkbench card {prep_out}`)"]
    try:
        meta = read_front_matter(card.read_text(encoding="utf-8"))
    except (OSError, ValueError, UnicodeDecodeError) as e:
        return [f"{CARD_FILE}: {e}"]
    except Exception as e:  # yaml.YAMLError
        return [f"{CARD_FILE}: YAML front matter does not parse ({e})"]

    for key in REQUIRED_KEYS:
        if key not in meta:
            problems.append(f"{CARD_FILE}: metadata key '{key}' missing")
    if meta.get("license") == "other" and not meta.get("license_name"):
        problems.append(f"{CARD_FILE}: license 'other' needs license_name")
    if meta.get("annotations_creators") != ["machine-generated"]:
        problems.append(f"{CARD_FILE}: annotations_creators should be [machine-generated]")
    tb = meta.get("talkbench") or {}
    if tb.get("card_format") != CARD_FORMAT:
        problems.append(f"{CARD_FILE}: talkbench.card_format {tb.get('card_format')!r} is not {CARD_FORMAT!r}")
    if tb.get("config_hash") != manifest.get("config_hash"):
        problems.append(f"{CARD_FILE}: config_hash {tb.get('config_hash')!r} does not match manifest.json "
                        f"({manifest.get('config_hash')!r})")

    shards = _check_shards(prep_out, manifest, problems)
    man_entries = {k: [{"path": e.get("path"), "rows": e.get("rows"), "sha256": e.get("sha256")}
                       for e in (manifest.get("shards") or {}).get(k) or []]
                   for k in sorted(manifest.get("shards") or {})}
    card_entries = tb.get("shards") or {}
    for kind in sorted(set(man_entries) | set(card_entries)):
        if kind == "failures" and kind not in card_entries and not any(e.get("rows") for e in man_entries[kind]):
            continue  # no failures: no failures config (an empty split cannot be loaded)
        if (card_entries.get(kind) or []) != (man_entries.get(kind) or []):
            problems.append(f"{CARD_FILE}: the {kind} shard list (paths, rows, sha256) differs from manifest.json")

    # counts: manifest, card and shards must agree
    rows = {k: sum(e.get("rows") or 0 for e in es) for k, es in man_entries.items()}
    counts = manifest.get("counts") or {}
    for key, kind in (("clips", "clips"), ("frames", "frames"), ("failed", "failures")):
        if key in counts and kind in rows and counts[key] != rows[kind]:
            problems.append(f"manifest.json: counts.{key} = {counts[key]} but its {kind} shards hold {rows[kind]} rows")
    readable = ListedShards(po, {k: [prep_out / e["path"] for e in es] for k, es in shards.items()})
    stats = compute_stats(readable) if "clips" in shards else None
    card_counts = tb.get("counts") or {}
    if stats is not None:
        actual = {"clips": stats["clips"], "frames": stats["frames"], "failed": stats["failures"]}
        for key, value in actual.items():
            if card_counts.get(key) != value:
                problems.append(f"{CARD_FILE}: says {card_counts.get(key)} {key}, the shards hold {value}")
        hours = card_counts.get("hours")
        if not isinstance(hours, (int, float)) or not math.isclose(hours, stats["hours"], abs_tol=1e-5):
            problems.append(f"{CARD_FILE}: says {hours} hours, the shards hold {stats['hours']:.6f}")
        if stats["frames_declared"] != stats["frames"]:
            problems.append(f"clips declare {stats['frames_declared']} frames (sum of num_frames), "
                            f"the frame shards hold {stats['frames']}")
        if meta.get("size_categories") != [size_category(stats["clips"])]:
            problems.append(f"{CARD_FILE}: size_categories {meta.get('size_categories')} should be "
                            f"[{size_category(stats['clips'])}] for {stats['clips']} clips")
        ids = readable.clips_table(["clip_id"]).column("clip_id").to_pylist()
        if len(set(ids)) != len(ids):
            problems.append("clips: duplicate clip_id values")

    listed = {k: [e for e in es if _safe_path(prep_out, e.get("path")) is not None] for k, es in man_entries.items()}
    _check_configs(prep_out, meta, listed, problems)
    if not (prep_out / (tb.get("qa_plot") or PLOT_FILE)).is_file():
        problems.append(f"{tb.get('qa_plot') or PLOT_FILE}: QA plot referenced by the card is missing")
    return problems


def _check_configs(prep_out: Path, meta: dict, shards: dict[str, list[dict]], problems: list[str]) -> None:
    """``configs`` data files resolve to exactly the manifest's shards (all present); features equal the
    real schema; ``num_examples`` equal the manifest's rows."""
    import pyarrow.parquet as pq

    configs = {c.get("config_name"): c for c in meta.get("configs") or [] if isinstance(c, dict)}
    infos = {c.get("config_name"): c for c in meta.get("dataset_info") or [] if isinstance(c, dict)}
    for kind, entries in shards.items():
        if not entries or kind == "failures" and not any(e.get("rows") for e in entries):
            continue
        cfg = configs.get(kind)
        if cfg is None:
            problems.append(f"{CARD_FILE}: no config '{kind}' in configs")
            continue
        patterns = [df.get("path") for df in cfg.get("data_files") or [] if isinstance(df, dict)]
        matched = sorted({p.relative_to(prep_out).as_posix() for pat in patterns
                          if _safe_path(prep_out, pat) is not None for p in prep_out.glob(pat) if p.is_file()})
        if matched != sorted(e["path"] for e in entries):
            problems.append(f"{CARD_FILE}: config '{kind}' data files {patterns} match {len(matched)} files, "
                            f"manifest.json lists {len(entries)}")
        try:
            expected_pattern = data_files_pattern(kind, entries)
        except ValueError as e:
            problems.append(str(e))
            expected_pattern = None
        if expected_pattern is not None and patterns != [expected_pattern]:
            problems.append(f"{CARD_FILE}: config '{kind}' data files {patterns}, expected ['{expected_pattern}']")
        info = infos.get(kind)
        if info is None:
            problems.append(f"{CARD_FILE}: no dataset_info for '{kind}'")
            continue
        first = prep_out / entries[0]["path"]
        if not first.is_file():
            continue  # reported as a missing shard
        real = pq.read_schema(first).remove_metadata()
        if info.get("features") != hf_features(real):
            problems.append(f"{CARD_FILE}: dataset_info features of '{kind}' differ from the shards' schema")
        n = sum(e["rows"] for e in entries)
        if sum(s.get("num_examples", 0) for s in info.get("splits") or []) != n:
            problems.append(f"{CARD_FILE}: dataset_info num_examples of '{kind}' differ from {n} rows")
