"""The ``adbench`` command line: one Typer app, one sub-app per stage."""

from __future__ import annotations

import os
import sys

# adbench draws its own Rich progress bars; the libraries' tqdm bars would interleave.
os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
os.environ.setdefault("HF_DATASETS_DISABLE_PROGRESS_BARS", "1")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")

import typer

from adbench import __version__
from adbench.cli._console import make_console
from adbench.cli.datasets import datasets_app
from adbench.cli.envs import envs_app
from adbench.cli.evaluate import evaluate_command
from adbench.cli.hub import hub_app
from adbench.cli.leaderboard import leaderboard_app
from adbench.cli.models import models_app, push
from adbench.cli.quickstart import quickstart
from adbench.cli.train import train_app
from adbench.errors import AdbenchError

err_console = make_console(stderr=True)

app = typer.Typer(
    name="adbench",
    help="Datasets, baselines and a benchmark harness for in-context reinforcement learning.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
app.add_typer(envs_app, name="envs")
app.add_typer(datasets_app, name="datasets")
app.add_typer(hub_app, name="hub")
app.add_typer(train_app, name="train")
app.add_typer(models_app, name="models")
app.command("push")(push)
app.command("evaluate")(evaluate_command)
app.add_typer(leaderboard_app, name="leaderboard")
app.command("quickstart")(quickstart)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"adbench {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Print the version and exit."
    ),
) -> None:
    """adbench: Algorithm Distillation datasets, models and benchmark."""


def main() -> None:
    """Console entry point: bad input becomes one line on stderr and exit status 2."""
    try:
        # Typer's standalone mode reports usage errors (bad option, missing argument) itself
        # with exit status 2; everything else propagates to here.
        app()
    except AdbenchError as exc:
        err_console.print(f"[bold red]error:[/] {exc}", highlight=False, soft_wrap=True)
        sys.exit(2)
    except KeyboardInterrupt:
        err_console.print("interrupted")
        sys.exit(130)
    except Exception as exc:
        if os.environ.get("ADBENCH_DEBUG"):
            raise
        err_console.print(
            f"[bold red]internal error:[/] {type(exc).__name__}: {exc} "
            "(rerun with ADBENCH_DEBUG=1 for a traceback, and please report it)",
            highlight=False,
            soft_wrap=True,
        )
        sys.exit(1)
