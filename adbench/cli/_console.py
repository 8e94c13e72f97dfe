"""Rich consoles for the CLI: wide enough for tables when output goes to a file or pipe."""

from __future__ import annotations

import sys

from rich.console import Console


def make_console(stderr: bool = False) -> Console:
    stream = sys.stderr if stderr else sys.stdout
    # Rich falls back to 80 columns off a terminal, which folds every table cell.
    return Console(stderr=stderr, width=None if stream.isatty() else 160)
