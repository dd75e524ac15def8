"""``per_video.parquet``: one row per reference clip (scored, skipped or failed) and per unknown file.

Columns: the clip and submission facts, one column per active metric that has a per-video value, and the
extra per-video columns metrics declare (the LSE offset, FID frames ...). Bytes are deterministic.
"""
from __future__ import annotations

import pyarrow as pa

from prep.shards import table_to_parquet_bytes

BASE_COLUMNS = {"clip_id": pa.string(), "status": pa.string(), "code": pa.string(), "reason": pa.string(),
                "path": pa.string(), "src_fps": pa.float64(), "resampled": pa.bool_(), "width": pa.int32(),
                "height": pa.int32(), "num_frames": pa.int32(), "ref_num_frames": pa.int32(),
                "n_frames": pa.int32(), "n_face_frames": pa.int32()}


def per_video_table(specs, scores, accepted, skipped) -> bytes:
    """Parquet bytes of the per-video table (rows sorted by clip id)."""
    acc = {v.clip_id: v for v in accepted}
    by_id = {s.clip_id: s for s in scores}
    skip_by_id = {}
    for s in skipped:  # a reference clip's own record wins over an unknown file of the same id
        skip_by_id.setdefault(s["clip_id"], s)
    columns = dict(BASE_COLUMNS)
    for spec in specs:
        if spec.per_video_column:
            columns[spec.name] = pa.float64()
        for name, kind in spec.columns:
            columns[name] = kind if isinstance(kind, pa.DataType) else pa.type_for_alias(kind)
    records = []
    for cid in sorted(set(acc) | set(skip_by_id)):
        v, r, sk = acc.get(cid), by_id.get(cid), skip_by_id.get(cid)
        status = r.status if r else ("skipped" if sk else "scored")
        if sk and sk["code"] == "unknown_clip":
            status = "unknown"
        elif sk and status == "scored":
            status = "skipped"
        rec = {"clip_id": cid, "status": status, "code": sk["code"] if sk else None,
               "reason": (sk or {}).get("reason") or (r.reason if r else None),
               "path": v.rel_path if v else (sk or {}).get("path"), "src_fps": v.src_fps if v else None,
               "resampled": v.resampled if v else None, "width": v.width if v else None,
               "height": v.height if v else None, "num_frames": v.num_frames if v else None,
               "ref_num_frames": v.ref_num_frames if v else None,
               "n_frames": r.n_frames if r and r.status == "scored" else None,
               "n_face_frames": r.n_face_frames if r and r.status == "scored" else None}
        for spec in specs:
            mv = r.values.get(spec.name) if r else None
            if spec.per_video_column:
                rec[spec.name] = mv.value if mv is not None else None
            for name, _ in spec.columns:
                if mv is not None and name in mv.columns:
                    rec[name] = mv.columns[name]
        records.append(rec)
    table = pa.table({k: pa.array([rec.get(k) for rec in records], type=t) for k, t in columns.items()})
    return table_to_parquet_bytes(table, "per_video")


__all__ = ["per_video_table"]
