"""``adbench push`` and ``adbench models``: publish and list models."""

from __future__ import annotations

import typer
from rich.table import Table

from adbench.cli._common import HubOption, TokenOption, console, human_size

models_app = typer.Typer(help="Models in the hub.", no_args_is_help=True)


def push(
    directory: str = typer.Argument(..., help="Model directory written by `adbench train`."),
    repo: str = typer.Option(..., "--repo", help="Repo id to publish as, e.g. me/ad-darkroom."),
    hub: str = HubOption,
    endpoint: str = typer.Option(None, "--endpoint", help="Also upload to this remote hub URL."),
    token: str = TokenOption,
    private: bool = typer.Option(False, "--private", help="Create the remote repo private."),
) -> None:
    """Publish a trained model to the local hub (and, with --endpoint, to a remote hub)."""
    from adbench.models.publishing import publish_model

    target = publish_model(
        directory, repo, hub=hub, endpoint=endpoint, token=token, private=private
    )
    where = f" and {endpoint}" if endpoint else ""
    console.print(
        f"published {repo} to {target}{where}; score it with "
        f"[bold]adbench evaluate --model {repo}[/]"
    )


@models_app.command("list")
def list_models(hub: str = HubOption) -> None:
    """The models in the local hub."""
    import json

    from adbench.hub import hub_root, list_repos

    repos = list_repos("model", hub)
    table = Table(title=f"models in {hub_root(hub)}")
    for column in ("id", "type", "env", "trained on", "size", "modified"):
        table.add_column(column)
    for repo in repos:
        try:
            config = json.loads((repo.path / "config.json").read_text())
        except (OSError, json.JSONDecodeError):
            config = {}
        kind = config.get("method", config.get("model_type", "?"))
        table.add_row(
            repo.repo_id,
            str(kind),
            str(config.get("env_name", "?")),
            str(config.get("dataset_id") or "online"),
            human_size(repo.size_bytes),
            repo.last_modified.strftime("%Y-%m-%d %H:%M"),
        )
    console.print(table)
    if not repos:
        console.print(
            "no models yet: train one with [bold]adbench train ad[/], then [bold]adbench push[/]"
        )


@models_app.command("check-code")
def check_code(
    directories: list[str] = typer.Argument(..., help="Model directories to check."),
    fix: bool = typer.Option(
        False, "--fix", help="Rewrite differing code files from the installed package."
    ),
) -> None:
    """Check that models carry exactly this adbench's modeling code (what
    trust_remote_code runs); with --fix, copy it in (weights and config untouched)."""
    from pathlib import Path

    from adbench.errors import AdbenchError
    from adbench.models.loading import model_code_differences, sync_model_code

    stale = []
    for directory in directories:
        if fix:
            written = sync_model_code(Path(directory))
            console.print(f"{directory}: " + (f"rewrote {', '.join(written)}" if written else "ok"))
            continue
        differing = model_code_differences(Path(directory))
        console.print(
            f"{directory}: " + (f"differs in {', '.join(differing)}" if differing else "ok")
        )
        if differing:
            stale.append(directory)
    if stale:
        raise AdbenchError(
            f"{len(stale)} model(s) carry code that differs from adbench's: rerun with --fix"
        )
