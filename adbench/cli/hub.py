"""``adbench hub``: serve a local hub over HTTP with the Hugging Face Hub's API."""

from __future__ import annotations

import typer

from adbench.cli._common import HubOption

hub_app = typer.Typer(help="The local hub.", no_args_is_help=True)


@hub_app.command("serve")
def serve(
    hub: str = HubOption,
    host: str = typer.Option(
        "127.0.0.1", help="Address to bind (no authentication: keep it private)."
    ),
    port: int = typer.Option(8080, help="Port, 0 for any free one."),
    read_only: bool = typer.Option(False, "--read-only", help="Refuse pushes."),
    quiet: bool = typer.Option(False, "--quiet", help="Do not log each request."),
) -> None:
    """Serve the local hub so that others push and pull with HF_ENDPOINT=http://HOST:PORT."""
    from adbench.hub_server import main

    argv = ["--host", host, "--port", str(port)]
    if hub:
        argv += ["--hub", hub]
    if read_only:
        argv.append("--read-only")
    if quiet:
        argv.append("--quiet")
    raise typer.Exit(main(argv))


@hub_app.command("path")
def path(hub: str = HubOption) -> None:
    """Print the local hub's directory."""
    from adbench.hub import hub_root

    typer.echo(str(hub_root(hub)))
