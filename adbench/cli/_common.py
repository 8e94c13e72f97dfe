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
    """Where boards are read and submissions go: ``--leaderboards``, else
    ``$ADBENCH_LEADERBOARDS``, else the committed boards of the checkout adbench runs from,
    else the local hub's ``leaderboards/`` (an installed package's own boards are
    read-only reference data)."""
    from adbench.hub import hub_root

    if hub is not None:
        hub_root(hub)  # a bad --hub is an error even where the boards are elsewhere
    if value:
        return Path(value)
    if os.environ.get("ADBENCH_LEADERBOARDS"):
        return Path(os.environ["ADBENCH_LEADERBOARDS"])
    from adbench.resources import checkout_root

    root = checkout_root()
    if root is not None and (root / "leaderboards").is_dir():
        return root / "leaderboards"
    return hub_root(hub) / "leaderboards"


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
