"""Options shared by several commands, and small display helpers."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import typer
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskProgressColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from adbench.cli._console import make_console

HubOption = typer.Option(
    None, "--hub", help="Local hub directory (default: $ADBENCH_HUB, else ~/.cache/adbench/hub)."
)
EndpointOption = typer.Option(
    None, "--endpoint", help="Remote hub URL (default: $HF_ENDPOINT, else the Hugging Face Hub)."
)
TokenOption = typer.Option(
    None, "--token", help="Access token for the remote hub.", envvar="HF_TOKEN"
)

LeaderboardsOption = typer.Option(
    None,
    "--leaderboards",
    help="Leaderboards directory (default: $ADBENCH_LEADERBOARDS, else the checkout's "
    "leaderboards/, else <hub>/leaderboards).",
)

console = make_console()


def leaderboards_dir(value: str | None, hub: str | None = None) -> Path:
    """``adbench.leaderboards.board.leaderboards_dir`` (imported when a command needs it)."""
    from adbench.leaderboards.board import leaderboards_dir as find

    return find(value, hub)


def human_size(num_bytes: int) -> str:
    size = float(num_bytes)
    for unit in ("B", "KB", "MB", "GB"):
        if size < 1024 or unit == "GB":
            return f"{size:,.1f} {unit}" if unit != "B" else f"{int(size)} B"
        size /= 1024
    return f"{size:.1f} TB"


def is_main_process() -> bool:
    """False in the non-zero ranks of a distributed launch (which stay quiet)."""
    return int(os.environ.get("RANK", "0")) == 0


@contextmanager
def progress_bar(*extra_columns: object) -> Iterator[Progress]:
    """A Rich progress bar (shown by the main process of a distributed launch only)."""
    with Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TaskProgressColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        *extra_columns,
        console=console,
        disable=not is_main_process(),
    ) as progress:
        yield progress
