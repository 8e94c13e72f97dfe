"""The ``adbench`` command line: one Typer app, one sub-app per stage."""

from __future__ import annotations

import errno
import os
import sys

# adbench draws its own Rich progress bars; the libraries' tqdm bars would interleave.
os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
os.environ.setdefault("HF_DATASETS_DISABLE_PROGRESS_BARS", "1")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")

import typer
from rich.markup import escape

from adbench import __version__
from adbench.allocator import retain_freed_memory
from adbench.cli._console import make_console
from adbench.cli.datasets import datasets_app
from adbench.cli.envs import envs_app
from adbench.cli.evaluate import evaluate_command
from adbench.cli.hub import hub_app
from adbench.cli.leaderboard import leaderboard_app
from adbench.cli.models import models_app, push
from adbench.cli.quickstart import quickstart
from adbench.cli.train import train_app
from adbench.distributed import end_processes
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


def _usage_error_types() -> tuple[type[BaseException], ...]:
    """The command-line parser's own error class (click's ``ClickException``; Typer 0.26+
    vendors click, so it is found from the public ``typer.BadParameter``)."""
    return tuple(c for c in typer.BadParameter.__mro__ if c.__name__ == "ClickException")


def _one_line(text: str) -> str:
    return " ".join(str(text).split())


def _file_error(exc: OSError) -> str:
    """A permission, read-only or full-disk error as what happened to which file."""
    what = exc.strerror or type(exc).__name__
    where = f": {exc.filename}" if exc.filename else ""
    hint = {
        errno.EACCES: "check the folder's permissions or choose another (--output, --hub)",
        errno.EPERM: "check the folder's permissions or choose another (--output, --hub)",
        errno.EROFS: "choose a writable folder (--output, --hub)",
        errno.ENOSPC: "free some space or choose another disk (--output, --hub)",
        errno.EDQUOT: "free some space or choose another disk (--output, --hub)",
    }.get(exc.errno or 0)
    return f"{what}{where}" + (f"; {hint}" if hint else "")


_FILE_ERRNOS = {errno.EACCES, errno.EPERM, errno.EROFS, errno.ENOSPC, errno.EDQUOT}


def _fail(message: str, code: int, label: str = "error") -> None:
    err_console.print(
        f"[bold red]{label}:[/] {escape(_one_line(message))}", highlight=False, soft_wrap=True
    )
    sys.exit(code)


def main(argv: list[str] | None = None) -> None:
    """Console entry point: bad input (a usage error, a bad value, a file that cannot be
    written) becomes one line on stderr and exit status 2; an unexpected exception is a
    bug, reported on one line with exit status 1."""
    usage_errors = _usage_error_types()
    retain_freed_memory()  # CPU steps stop page-faulting their tensors (adbench/allocator.py)
    try:
        # Not standalone: the parser's usage errors come back here, to be printed on one
        # line like every other error (Typer's own display is a multi-line panel).
        code = app(args=argv, standalone_mode=False)
        end_processes()
    except usage_errors as exc:
        message = exc.format_message()  # type: ignore[attr-defined]
        if not message.strip():  # a bare group: the parser has printed its help already
            sys.exit(getattr(exc, "exit_code", 2))
        context = getattr(exc, "ctx", None)
        hint = f" (see `{context.command_path} --help`)" if context is not None else ""
        _fail(message + hint, getattr(exc, "exit_code", 2))
    except AdbenchError as exc:
        _fail(str(exc), 2)
    except (KeyboardInterrupt, typer.Abort):
        _fail("interrupted", 130, label="stopped")
    except BrokenPipeError:
        # The reader went away (`adbench ... | head`): nothing left to say, to anyone.
        sys.stderr = open(os.devnull, "w")  # noqa: SIM115 (interpreter exit flushes it)
        sys.exit(1)
    except Exception as exc:
        if os.environ.get("ADBENCH_DEBUG"):
            raise
        if isinstance(exc, OSError) and exc.errno in _FILE_ERRNOS:
            _fail(_file_error(exc), 2)
        _fail(
            f"{type(exc).__name__}: {exc} (rerun with ADBENCH_DEBUG=1 for a traceback, and "
            "please report it)",
            1,
            label="internal error",
        )
    sys.exit(code if isinstance(code, int) else 0)
