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
    port: int = typer.Option(8080, min=0, max=65535, help="Port, 0 for any free one."),
    read_only: bool = typer.Option(False, "--read-only", help="Refuse pushes."),
    quiet: bool = typer.Option(False, "--quiet", help="Do not log each request."),
    timeout: float = typer.Option(
        60.0, "--timeout", min=0.1, help="Seconds a client may stall before it is disconnected."
    ),
    max_body_mb: int = typer.Option(
        16384, "--max-body-mb", min=1, help="Largest request body (a commit's files), in MiB."
    ),
) -> None:
    """Serve the local hub so that others push and pull with HF_ENDPOINT=http://HOST:PORT."""
    from adbench.hub_server import serve_until_interrupted

    serve_until_interrupted(
        hub,
        host,
        port,
        read_only=read_only,
        log_requests=not quiet,
        read_timeout=timeout,
        max_body_bytes=max_body_mb * 2**20,
    )


@hub_app.command("path")
def path(hub: str = HubOption) -> None:
    """Print the local hub's directory."""
    from adbench.hub import hub_root

    typer.echo(str(hub_root(hub)))
