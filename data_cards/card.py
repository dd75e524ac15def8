"""Write a Hugging Face dataset card (``PREP_OUT/README.md``) for a talkbench prep output.

The YAML front matter follows the Hub's dataset-card metadata (license, tags, task_categories,
size_categories, source_datasets, annotations_creators, ``configs`` pointing at the shard files,
``dataset_info`` features from the shards' real Arrow schema) plus a ``talkbench`` block with the facts
``talkbench card --check`` verifies (config hash, counts, every shard with rows + sha256). The body is
computed from the shards and the manifest (read through :class:`prep.output.PrepOutput`); the same inputs
give the same bytes.
"""
from __future__ import annotations

import json
import logging
import re
from pathlib import Path

import pyarrow as pa

from talkbase.escape import md
from talkbase.fileio import atomic_write_bytes
from talkbase.paths import join_inside

from .stats import QA_COLUMNS, ListedShards, compute_stats, open_prep, parquet_rows_and_bytes, qa_plot_png

log = logging.getLogger(__name__)

CARD_FILE = "README.md"
PLOT_FILE = "dataset_card_qa.png"
CARD_FORMAT = "talkbench-card/1"
DEFAULT_LICENSE_NAME = "source-video-terms"
TAGS = ["talking-face", "lip-sync", "audio-visual", "face-landmarks", "3dmm", "video", "audio", "talkbench"]
TAG_3DMM = "3dmm"  # only when the prep output has 3DMM coefficients (manifest config faces.fit_3dmm)
TASK_CATEGORIES = ["image-to-video", "any-to-any"]
KIND_ORDER = ("clips", "frames", "failures")

COLUMN_DOCS = {
    "clips": {
        "clip_id": "path of the source video relative to the input root, without extension, '/'-separated",
        "source_path": "source video path as given to prep",
        "source_sha256": "sha256 of the source video file",
        "split": "split assigned by prep (e.g. train / val / test)",
        "speaker": "speaker / identity label when the input layout provides one",
        "fps": "output frame rate (always 25)",
        "num_frames": "number of 25 fps frames (= rows in `frames`)",
        "sample_rate": "audio sample rate of the features (always 16000)",
        "duration_s": "num_frames / fps",
        "src_width": "source video width (px)",
        "src_height": "source video height (px)",
        "src_fps": "source frame rate before resampling to 25 fps",
        "src_video_codec": "source video codec",
        "mel": "Wav2Lip log-mel spectrogram, flat, shape in `mel_shape` = (80, T_mel)",
        "mel_shape": "shape of `mel`",
        "mfcc": "SyncNet MFCC (python_speech_features), flat, shape in `mfcc_shape` = (T_mfcc, 13)",
        "mfcc_shape": "shape of `mfcc`",
        "crop_size": "side of the aligned face crops (px)",
        "main_track": "how the main face track was chosen",
        "qa_face_fraction": "fraction of frames with a face",
        "qa_face_size": "median face box side (source px)",
        "qa_num_faces": "most faces seen in one frame",
        "qa_jitter": "mean frame-to-frame landmark motion (crop px)",
        "qa_blur": "variance of the Laplacian on the mouth region of the crops",
        "qa_loudness_db": "RMS level of the 16 kHz audio (dBFS)",
        "qa_fit_residual": "mean 3DMM keypoint residual (source px)",
        "qa_audio_coverage": "fraction of the clip whose audio came from the file (the rest is zero padding)",
        "source_clip_id": "the input's clip id (a multi-shot source gives one clip per shot, "
                          "`<source_clip_id>/shot-<start>`; equal to `clip_id` for a single-shot source)",
        "shot_index": "0-based shot of the source",
        "num_shots": "shots detected in the source (shots too short to keep are failure rows)",
        "shot_start": "first source frame of this clip at 25 fps (its frame_index 0)",
        "shot_stop": "one past the last source frame of this clip",
        "source_cuts": "every cut of the source: the first 25 fps frame of each new shot",
        "sync_offset": "SyncNet audio-video offset in frames (> 0: audio ahead); null when not measured",
        "sync_conf": "SyncNet confidence (LSE-C) at that offset",
        "sync_dist": "SyncNet distance (LSE-D) at that offset",
        "sync_windows": "5-frame windows the sync measure scored",
        "sync_shift": "frames the stored mel / MFCC were shifted by to correct the offset (--sync-shift)",
        "sync_note": "why a sync measure is missing (no weights, no face, too short)",
        "sync_tracks": "per face track when the shot has several faces: track, face size, offset, confidence, "
                       "and which track is the main one",
        "qa_flags": "reasons a QA filter marked this clip",
        "qa_pass": "whether the clip passed the QA filter",
    },
    "frames": {
        "clip_id": "clip this frame belongs to",
        "frame_index": "0-based frame index at 25 fps",
        "crop": "encoded aligned face crop (codec: see `crop_codec` in manifest.json)",
        "face_found": "whether a face was found (rows without a face are kept)",
        "num_faces": "faces detected in this frame",
        "box": "main face box x0, y0, x1, y1 (source px)",
        "landmarks": "68 (x, y) landmarks in crop coordinates, row-major",
        "landmarks_src": "68 (x, y) landmarks in source px, row-major",
        "affine": "2x3 similarity, source px -> crop px, row-major",
        "mm_pose": "3DMM pose: yaw, pitch, roll (rad), tx, ty (source px), scale",
        "mm_id": "3DMM identity coefficients (40, BFM / 3DDFA basis; one vector per clip)",
        "mm_exp": "3DMM expression coefficients (10)",
        "mm_residual": "mean keypoint reprojection error (source px)",
    },
    "failures": {
        "source_path": "input that failed",
        "clip_id": "clip id it would have had",
        "stage": "stage that failed (inputs / open / decode / faces / 3dmm / environment / internal)",
        "error_type": "exception type",
        "message": "error message",
        "transient": "an environment failure (disk full, memory, a killed worker): retried by the next prep run",
    },
}

_SIZE_CATEGORIES = [(1_000, "n<1K"), (10_000, "1K<n<10K"), (100_000, "10K<n<100K"), (1_000_000, "100K<n<1M"),
                    (10_000_000, "1M<n<10M"), (100_000_000, "10M<n<100M"), (1_000_000_000, "100M<n<1B")]


def size_category(n: int) -> str:
    return next((label for limit, label in _SIZE_CATEGORIES if n < limit), "n>1B")


# ---------------------------------------------------------------- Arrow schema -> HF features

_HF_DTYPES = {pa.bool_(): "bool", pa.int8(): "int8", pa.int16(): "int16", pa.int32(): "int32", pa.int64(): "int64",
              pa.uint8(): "uint8", pa.uint16(): "uint16", pa.uint32(): "uint32", pa.uint64(): "uint64",
              pa.float16(): "float16", pa.float32(): "float32", pa.float64(): "float64", pa.string(): "string",
              pa.large_string(): "large_string", pa.binary(): "binary", pa.large_binary(): "large_binary"}


def hf_feature(t: pa.DataType) -> dict:
    """One Arrow type as a Hub ``dataset_info.features`` entry (without the name)."""
    if t in _HF_DTYPES:
        return {"dtype": _HF_DTYPES[t]}
    if pa.types.is_fixed_size_list(t) or pa.types.is_list(t) or pa.types.is_large_list(t):
        inner = hf_feature(t.value_type)
        # 'sequence' (not datasets>=4's 'list') so that every datasets version and the Hub parse it
        key = "large_list" if pa.types.is_large_list(t) else "sequence"
        out = {key: inner["dtype"] if list(inner) == ["dtype"] else inner}
        if pa.types.is_fixed_size_list(t):
            out["length"] = t.list_size
        return out
    if pa.types.is_struct(t):
        return {"struct": [{"name": f.name, **hf_feature(f.type)} for f in t]}
    if pa.types.is_timestamp(t) or pa.types.is_date(t) or pa.types.is_time(t):
        return {"dtype": str(t)}
    raise ValueError(f"no Hugging Face feature for Arrow type {t}")


IMAGE_COLUMNS = ("crop",)  # encoded images (JPEG / PNG bytes): the Hub viewer shows them as pictures


def hf_features(schema: pa.Schema) -> list[dict]:
    """Hub features of a shard schema; an encoded-image column is an ``image`` feature (``datasets`` decodes
    binary bytes into PIL images), not ``binary``."""
    return [{"name": f.name, **({"dtype": "image"} if f.name in IMAGE_COLUMNS and pa.types.is_binary(f.type)
                                else hf_feature(f.type))} for f in schema]


# ---------------------------------------------------------------- gathering facts

def _shard_entries(manifest: dict) -> dict[str, list[dict]]:
    shards = manifest.get("shards") or {}
    kinds = [k for k in KIND_ORDER if k in shards] + sorted(k for k in shards if k not in KIND_ORDER)
    # a kind without rows (no failures) is no config: the datasets library cannot load an empty split
    return {k: [{"path": e["path"], "rows": int(e["rows"]), "sha256": e["sha256"]} for e in shards[k]]
            for k in kinds if shards[k] and (k != "failures" or any(int(e["rows"]) for e in shards[k]))}


def data_files_pattern(kind: str, entries: list[dict]) -> str:
    """'clips/*.parquet' when a kind's shards fill their own folder, else the single file's path."""
    folders = {e["path"].rsplit("/", 1)[0] if "/" in e["path"] else "" for e in entries}
    if len(entries) == 1 and "" in folders:
        return entries[0]["path"]
    if len(folders) == 1 and "" not in folders:
        return f"{folders.pop()}/*.parquet"
    raise ValueError(f"{kind} shards are spread over several folders: {sorted(folders)}")


def real_schema(prep_out: Path, entries: list[dict]) -> pa.Schema:
    """The Arrow schema stored in the first shard of a kind (metadata dropped)."""
    import pyarrow.parquet as pq

    return pq.read_schema(shard_path(prep_out, entries[0]["path"])).remove_metadata()


def shard_path(prep_out: Path, rel) -> Path:
    """A manifest shard path inside ``prep_out`` (raises ValueError for one that would leave it)."""
    p = join_inside(prep_out, rel) if isinstance(rel, str) else None
    if p is None:
        raise ValueError(f"manifest shard path {rel!r} leaves {prep_out}")
    return p


def gather(prep) -> dict:
    """Everything the card says: manifest, shard facts (rows, bytes, real schemas) and statistics.

    ``prep``: a :class:`prep.output.PrepOutput` or its path. Statistics come from the shards the manifest
    lists (a stray file beside them is not counted).
    """
    po = open_prep(prep)
    manifest = po.manifest
    entries = _shard_entries(manifest)
    kinds, files = {}, {}
    for kind, es in entries.items():
        paths = [shard_path(po.path, e["path"]) for e in es]
        rows_bytes = [parquet_rows_and_bytes(p) for p in paths]
        files[kind] = paths
        kinds[kind] = {"entries": es, "schema": real_schema(po.path, es), "pattern": data_files_pattern(kind, es),
                       "rows": sum(r for r, _ in rows_bytes), "num_bytes": sum(b for _, b in rows_bytes),
                       "download_size": sum(p.stat().st_size for p in paths)}
    return {"manifest": manifest, "kinds": kinds, "has_3dmm": po.has_3dmm,
            "stats": compute_stats(ListedShards(po, files))}


# ---------------------------------------------------------------- front matter

def split_name(stats: dict) -> str:
    """The Hub split name: the clips' single split value when there is exactly one valid one, else 'train'."""
    names = [s for s in stats["splits"] if s != "(none)"]
    if len(names) == 1 and len(stats["splits"]) == 1 and re.fullmatch(r"\w+", names[0]):
        return names[0]
    return "train"


def front_matter(facts: dict, *, pretty_name: str, license: str, license_name: str | None,
                 license_link: str | None, source_datasets: list[str]) -> dict:
    m, kinds, stats = facts["manifest"], facts["kinds"], facts["stats"]
    split = split_name(stats)
    meta = {"pretty_name": pretty_name, "license": license}
    if license == "other":
        meta["license_name"] = license_name or DEFAULT_LICENSE_NAME
        if license_link:
            meta["license_link"] = license_link
    meta |= {
        "tags": [t for t in TAGS if t != TAG_3DMM or facts["has_3dmm"]],
        "task_categories": TASK_CATEGORIES,
        "size_categories": [size_category(stats["clips"])],
        "source_datasets": source_datasets,
        "annotations_creators": ["machine-generated"],
        "configs": [{"config_name": kind, **({"default": True} if kind == "clips" else {}),
                     "data_files": [{"split": split, "path": k["pattern"]}]} for kind, k in kinds.items()],
        "dataset_info": [{"config_name": kind, "features": hf_features(k["schema"]),
                          "splits": [{"name": split, "num_bytes": k["num_bytes"], "num_examples": k["rows"]}],
                          "download_size": k["download_size"], "dataset_size": k["num_bytes"]}
                         for kind, k in kinds.items()],
        "talkbench": {
            "card_format": CARD_FORMAT,
            "schema_version": m.get("schema_version"),
            "talkbench_version": m.get("talkbench_version"),
            "config_hash": m.get("config_hash"),
            "counts": {"clips": stats["clips"], "frames": stats["frames"], "failed": stats["failures"],
                       "hours": round(stats["hours"], 6)},
            "shards": {kind: k["entries"] for kind, k in kinds.items()},
            "qa_plot": PLOT_FILE,
        },
    }
    return meta


def dump_yaml(meta: dict) -> str:
    import yaml

    return yaml.safe_dump(meta, sort_keys=False, allow_unicode=True, default_flow_style=False, width=4096)


# ---------------------------------------------------------------- body

def _cell(text) -> str:
    return md(text, 200)


def _fence(text: str, lang: str = "") -> str:
    ticks = "`" * max(3, max((len(r) for r in re.findall(r"`+", text)), default=0) + 1)
    return f"{ticks}{lang}\n{text.rstrip()}\n{ticks}\n"


def _fmt(x, nd=2) -> str:
    return "—" if x is None else f"{x:,.{nd}f}"


def _dist_row(label, unit, s, nd=2) -> str:
    if s is None:
        return f"| {label} | {unit} | 0 | — | — | — | — |\n"
    return (f"| {label} | {unit} | {s['n']} | {_fmt(s['mean'], nd)} | {_fmt(s['median'], nd)} | "
            f"{_fmt(s['p5'], nd)} – {_fmt(s['p95'], nd)} | {_fmt(s['min'], nd)} – {_fmt(s['max'], nd)} |\n")


def _n(n: int, word: str) -> str:
    return f"{n:,} {word}{'' if n == 1 else 's'}"


def _counts_line(d: dict) -> str:
    return ", ".join(f"{_cell(k)}: {v}" for k, v in d.items()) or "—"


def _schema_table(kind: str, schema: pa.Schema) -> str:
    docs = COLUMN_DOCS.get(kind, {})
    rows = "".join(f"| `{f.name}` | `{f.type}` | {'yes' if f.nullable else 'no'} | {docs.get(f.name, '—')} |\n"
                   for f in schema)
    return "| column | Arrow type | nullable | meaning |\n|---|---|---|---|\n" + rows


def render_body(facts: dict, *, pretty_name: str, license: str, license_name: str | None,
                source_datasets: list[str]) -> str:
    m, kinds, st = facts["manifest"], facts["kinds"], facts["stats"]
    cfg = m.get("config") or {}
    counts = m.get("counts") or {}
    crop_codec = m.get("crop_codec") or cfg.get("crop_codec") or "unknown"
    crop_sizes = ", ".join(st["crop_sizes"]) or "unknown"
    face_pct = 100.0 * st["frames_with_face"] / st["frames"] if st["frames"] else 0.0
    ident = (f"{st['identities']} (from the `speaker` column; {st['clips_with_speaker']} of {st['clips']} clips "
             "labelled)" if st["clips_with_speaker"] else
             f"unknown: no `speaker` labels; up to {st['clips']} (one per clip)")
    out = [f"# {_cell(pretty_name)}\n\n"]

    out.append("## Dataset summary\n\n")
    out.append(
        f"Talking-face shards produced by `talkbench prep` from {counts.get('inputs', 'unknown')} input videos: "
        f"**{_n(st['clips'], 'clip')}**, **{_n(st['frames'], 'frame')}** at 25 fps (**{st['hours']:.3f} hours**), "
        f"{st['identities'] if st['clips_with_speaker'] else 'an unknown number of'} identities. "
        "Per clip: 16 kHz audio features (Wav2Lip log-mel, SyncNet "
        f"MFCC) and QA measurements. Per frame: an aligned face crop ({crop_sizes} px, {_cell(crop_codec)}), "
        "68 landmarks in crop and source coordinates, the crop's affine transform, and "
        + ("3DMM coefficients (BFM / 3DDFA basis: 40 identity, 10 expression, pose)" if facts["has_3dmm"]
           else "no 3DMM coefficients (the fit was not run: the `mm_*` columns are null)")
        + ". All annotations are machine-generated; "
        "there are no human labels. Built for training and evaluating audio-driven lip-sync models "
        "(Wav2Lip, Diff2Lip, LatentSync style) and for the talkbench evaluation protocol.\n\n")
    out.append("Load with the `datasets` library (from this folder or a Hub repository holding it):\n\n")
    out.append(_fence('from datasets import load_dataset\n\n'
                      'clips = load_dataset("path/to/this/folder", "clips")    # one row per clip\n'
                      'frames = load_dataset("path/to/this/folder", "frames")  # one row per 25 fps frame\n\n'
                      '# or without this card, straight from the Parquet shards:\n'
                      'clips = load_dataset("parquet", data_files="clips/*.parquet")', "python"))
    out.append("\nor with `pandas.read_parquet` / DuckDB on the same files. Arrays are flat lists with their "
               "shape beside them (`mel` + `mel_shape`) or fixed-size lists (landmarks: 68 (x, y) pairs).\n\n")

    out.append("## Dataset structure\n\n### Configurations and files\n\n")
    out.append("| config | data files | shards | rows | Parquet bytes |\n|---|---|--:|--:|--:|\n")
    for kind, k in kinds.items():
        out.append(f"| `{kind}` | `{k['pattern']}` | {len(k['entries'])} | {k['rows']:,} | {k['download_size']:,} |\n")
    if len(st["splits"]) > 1 or split_name(st) == "train" and "train" not in st["splits"]:
        out.append(f"\nThe Hub split `{split_name(st)}` holds every row; each clip's own split is in the `split` "
                   f"column ({_counts_line(st['splits'])}), and frames inherit it through `clip_id`.\n")
    out.append("\nEvery shard with its row count and sha256 (also in `manifest.json` and this card's metadata; "
               "`talkbench card PREP_OUT --check` verifies them):\n\n")
    out.append("| file | rows | sha256 |\n|---|--:|---|\n")
    for kind, k in kinds.items():
        for e in k["entries"]:
            out.append(f"| `{e['path']}` | {e['rows']:,} | `{e['sha256']}` |\n")
    for kind, k in kinds.items():
        out.append(f"\n### `{kind}` schema (read from the shards)\n\n")
        out.append(_schema_table(kind, k["schema"]))
    out.append(f"\nSchema version {m.get('schema_version', 'unknown')}. Rows without a detected face keep "
               "their frame row with `face_found = false` and null face columns.\n\n")

    out.append("## Dataset creation\n\n### Source data\n\n")
    failed = (f"{st['failures']} failed ({_counts_line(st['failures_by_stage'])}; details in the `failures` config)"
              if st["failures"] else "none failed (so there is no `failures` config)")
    out.append(f"{counts.get('inputs', 'unknown')} input videos; {st['clips']} became clips and {failed}. "
               f"Source resolutions: {_counts_line(st['source_resolutions'])}. Source frame rates: "
               f"{_counts_line(st['source_fps'])}. Source codecs: {_counts_line(st['source_codecs'])}. "
               "Every clip was resampled to 25 fps and 16 kHz mono.\n\n")
    out.append("### Processing\n\n")
    out.append(f"Created by {_cell(m.get('created_by', 'talkbench prep'))} with talkbench "
               f"{_cell(m.get('talkbench_version', 'unknown'))}; crop codec {_cell(crop_codec)}; "
               f"configuration hash `{_cell(m.get('config_hash', 'unknown'))}`. The exact configuration:\n\n")
    out.append(_fence(json.dumps(cfg, indent=2, sort_keys=True, default=str), "json"))
    versions = m.get("versions") or {}
    if versions:
        out.append("\nSoftware versions:\n\n| package | version |\n|---|---|\n")
        out.extend(f"| {_cell(k)} | {_cell(v)} |\n" for k, v in sorted(versions.items()))
    out.append("\n### Annotations\n\nMachine-generated by the pipeline above: face detection and tracking, 68-point "
               "landmarks, similarity-aligned crops, a landmark-based 3DMM fit (one identity vector per clip, "
               "per-frame pose and expression with a temporal prior), audio features and QA measurements. "
               "No human annotation or verification.\n\n")

    out.append("## Statistics\n\nComputed from the shards when this card was written.\n\n")
    out.append("| quantity | value |\n|---|--:|\n")
    out.append(f"| clips | {st['clips']:,} |\n| frames (25 fps) | {st['frames']:,} |\n"
               f"| frames with a face | {st['frames_with_face']:,} ({face_pct:.1f} %) |\n"
               f"| frames with 3DMM coefficients | {st['frames_with_3dmm']:,} |\n"
               f"| hours | {st['hours']:.3f} |\n| identities | {ident} |\n"
               f"| failed inputs | {st['failures']:,} |\n")
    out.append(f"\nSplits: {_counts_line(st['splits'])}. Faces per frame: {_counts_line(st['faces_per_frame'])}. "
               f"QA filter: {_counts_line(st['qa_pass'])}"
               + (f"; flags: {_counts_line(st['qa_flags'])}" if st["qa_flags"] else "") + ".\n\n")
    out.append("| per clip | unit | n | mean | median | p5 – p95 | min – max |\n|---|---|--:|--:|--:|--:|--:|\n")
    out.append(_dist_row("duration", "s", st["duration_s"]))
    for c, (label, unit) in QA_COLUMNS.items():
        out.append(_dist_row(label, unit, st["qa"][c], 3 if c in ("qa_face_fraction", "qa_jitter") else 2))
    out.append(f"\n![QA distributions per clip]({PLOT_FILE})\n\n")

    out.append("## Known limitations\n\n")
    lim = [
        "Every annotation is automatic: detections can miss small, profile or occluded faces, and with several "
        "faces in view the main track is chosen by a heuristic (see `main_track`); landmarks degrade on extreme "
        "poses, and the 3DMM fit uses landmarks only (no photometric term), so identity and expression "
        "coefficients are approximate.",
        "QA values are heuristics with thresholds set in the configuration above; they flag but do not "
        "guarantee quality.",
        "Audio features assume one dominant speaker who is the person on screen; dubbed or off-screen speech "
        "is not detected.",
        "Demographics (age, gender, skin tone, language, recording conditions) were not measured, so the "
        "dataset's coverage and any bias toward the sources' populations are unknown.",
    ]
    if face_pct < 100.0:
        lim.append(f"{100 - face_pct:.1f} % of frames have no detected face (rows kept with `face_found = false`).")
    if st["failures"]:
        lim.append(f"{st['failures']} input{'s' if st['failures'] != 1 else ''} failed and "
                   f"{'are' if st['failures'] != 1 else 'is'} absent (see the `failures` config for reasons).")
    if not st["clips_with_speaker"]:
        lim.append("There are no speaker labels, so identity-disjoint splits cannot be guaranteed.")
    out.extend(f"- {x}\n" for x in lim)

    out.append("\n## Personal and sensitive information: privacy and consent\n\n")
    out.append(
        "This dataset contains **biometric data of real people**: face images, facial landmarks and 3DMM "
        "identity coefficients (which can re-identify a person), and voice features (log-mel and MFCC). In many "
        "jurisdictions (e.g. GDPR Art. 9, BIPA) such data is specially protected.\n\n"
        "- talkbench does not verify consent. Whoever publishes these shards must ensure that the people "
        "shown agreed to this use, or that another legal basis and the source licence allow it.\n"
        "- Do not use the data to identify people, or to make anyone appear to say something they did not say "
        "without their consent. Label generated media as synthetic.\n"
        "- Honour removal requests: drop the person's clips (by `clip_id` / `source_sha256`), rerun "
        "`talkbench prep` and rewrite this card; consider gated access when hosting it on the Hub.\n\n")

    out.append("## Licensing information\n\n")
    if license == "other":
        out.append(f"`license: other` (`{_cell(license_name or DEFAULT_LICENSE_NAME)}`): the shards are derived "
                   "from the source videos and inherit their terms; redistribution is allowed only where those "
                   "terms allow it. ")
    else:
        out.append(f"Released under `{_cell(license)}`, which must be compatible with the source videos' terms. ")
    out.append("The talkbench code that produced them is Apache-2.0 and adds no terms of its own. "
               f"Source datasets: {', '.join(_cell(s) for s in source_datasets)}.\n\n")

    out.append("## Reproducing and checking\n\n")
    out.append("Rerun `talkbench prep` with the configuration above on the same inputs (each clip's "
               "`source_sha256` is recorded) to obtain byte-identical shards, then `talkbench card PREP_OUT "
               "--check` to verify this card against them (shard list, sha256s, row counts, schema).\n")
    return "".join(out)


def write_card(prep_out, *, license: str = "other", license_name: str | None = None,
               license_link: str | None = None, pretty_name: str | None = None,
               source_datasets: list[str] | None = None) -> Path:
    """Write ``PREP_OUT/README.md`` (+ ``PREP_OUT/dataset_card_qa.png``) and return the card's path.

    ``prep_out``: the prep output folder (or its :class:`prep.output.PrepOutput`). ``license`` is a Hub
    licence id; the default ``other`` with ``license_name`` says that the shards inherit the source videos'
    terms. ``source_datasets`` defaults to ``["original"]``.
    """
    po = open_prep(prep_out)
    facts = gather(po)
    pretty = pretty_name or f"{po.path.resolve().name} (talkbench talking-face shards)"
    sources = list(source_datasets or ["original"])
    meta = front_matter(facts, pretty_name=pretty, license=license, license_name=license_name,
                        license_link=license_link, source_datasets=sources)
    body = render_body(facts, pretty_name=pretty, license=license, license_name=license_name,
                       source_datasets=sources)
    # world-readable: a card is meant to be published with its shards
    atomic_write_bytes(po.path / PLOT_FILE, qa_plot_png(facts["stats"]), mode=0o644)
    card = po.path / CARD_FILE
    atomic_write_bytes(card, ("---\n" + dump_yaml(meta) + "---\n\n" + body).encode("utf-8"), mode=0o644)
    log.info("card: %s (%d clips, %d frames, %.3f h)", card, facts["stats"]["clips"], facts["stats"]["frames"],
             facts["stats"]["hours"])
    return card
