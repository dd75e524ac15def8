"""Help formatting shared by the subcommands: a default is shown once, and only when there is one."""
from __future__ import annotations

import argparse


class DefaultsFormatter(argparse.RawDescriptionHelpFormatter):
    """Adds ``(default: X)`` to an option's help when it has a real default (not None / False / suppressed)
    and the help text does not already say it."""

    def _get_help_string(self, action):
        text = action.help or ""
        d = action.default
        if (d is None or d is False or d is argparse.SUPPRESS or "default" in text or not action.option_strings
                or isinstance(action, (argparse._HelpAction, argparse._VersionAction))):
            return text
        return f"{text} (default: {d})" if text else f"(default: {d})"
