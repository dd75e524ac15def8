"""The metric columns of the leaderboard: results.json key, label, direction, display precision."""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Column:
    key: str  # metric key in results.json
    label: str
    higher_is_better: bool
    decimals: int


COLUMNS = (
    Column("psnr", "PSNR", True, 2),
    Column("ssim", "SSIM", True, 4),
    Column("lmd_mouth", "LMD", False, 3),
    Column("fid", "FID", False, 2),
    Column("lse_d", "LSE-D", False, 3),
    Column("lse_c", "LSE-C", True, 3),
    Column("csim", "CSIM", True, 4),
)
# reported in the CSV (and checked for comparability) but not shown as table columns
EXTRA_COLUMNS = (
    Column("lmd_face", "LMD (face)", False, 3),
    Column("sync_inhouse", "Sync (in-house)", True, 3),
)
ALL_COLUMNS = COLUMNS + EXTRA_COLUMNS
DIRECTIONS = {c.key: c.higher_is_better for c in ALL_COLUMNS}
