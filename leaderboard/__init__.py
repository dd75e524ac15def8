"""leaderboard: regenerate the static leaderboard site (Markdown, CSV, HTML, plots) from stored results."""
from .build import build_leaderboard

__all__ = ["build_leaderboard"]
