"""``adbench leaderboard``: show, verify, submit, and publish the boards as a web site."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.table import Table

from adbench.cli._common import HubOption, LeaderboardsOption, console, leaderboards_dir

leaderboard_app = typer.Typer(
    help="Leaderboards: ranked results per benchmark.", no_args_is_help=True
)

NameArgument = typer.Argument(None, help="Benchmark (default: every benchmark with a board).")


@leaderboard_app.command("show")
def show(
    name: str = NameArgument, leaderboards: str = LeaderboardsOption, hub: str = HubOption
) -> None:
    """A ranked table per benchmark, with the random, optimal and source reference rows."""
    from adbench.evaluation.benchmarks import get_benchmark
    from adbench.leaderboards.board import board_names, load_board
    from adbench.leaderboards.render import render_table

    directory = leaderboards_dir(leaderboards, hub)
    names = [get_benchmark(name).name] if name else board_names(directory)
    if not names:
        console.print(
            f"no leaderboards in {directory} yet: "
            "[bold]adbench evaluate --model ID --benchmark NAME --submit[/]"
        )
    for benchmark in names:
        render_table(load_board(directory, benchmark), console)


@leaderboard_app.command("verify")
def verify(
    name: str = NameArgument, leaderboards: str = LeaderboardsOption, hub: str = HubOption
) -> None:
    """Recompute every entry's scores from its stored curves and check the hashes tying
    entry, curves, model revision and weights; exit 2 naming the first entry that fails."""
    from adbench.evaluation.benchmarks import REFERENCE_POLICIES
    from adbench.leaderboards.verify import verify_boards

    directory = leaderboards_dir(leaderboards, hub)
    verified = verify_boards(directory, name, hub=hub)
    table = Table(title=f"verified entries in {directory}")
    for column in ("benchmark", "entry", "score IQM", "weights and revision"):
        table.add_column(column)
    for entry in verified:
        weights = "checked" if entry.model_checked else "no local copy"
        if entry.model_id in REFERENCE_POLICIES:
            weights = "reference policy"
        version = "" if entry.current_version else " (older version: hashes only)"
        table.add_row(entry.benchmark, entry.file + version, f"{entry.score_iqm:.4f}", weights)
    console.print(table)
    console.print(f"{len(verified)} entries verified: every score follows from its curves")


@leaderboard_app.command("submit")
def submit(
    results: str = typer.Argument(..., help="A results summary written by adbench evaluate."),
    leaderboards: str = LeaderboardsOption,
    hub: str = HubOption,
    allow_dirty: bool = typer.Option(
        False, "--allow-dirty", help="Submit to the committed boards from uncommitted code."
    ),
) -> None:
    """Submit saved results (for example made on another machine) to their board. Results
    of the older one-file schema (adbench-results/1) are converted first."""
    import json
    import tempfile

    from adbench.errors import AdbenchError
    from adbench.evaluation.results import upgrade_v1, write_results
    from adbench.fileio import check_writable_dir
    from adbench.leaderboards.board import submit as submit_entry
    from adbench.leaderboards.render import write_readme
    from adbench.leaderboards.submission import check_clean_for_submission

    directory = check_writable_dir(leaderboards_dir(leaderboards, hub), "--leaderboards")
    if not allow_dirty:
        check_clean_for_submission(directory)
    path = Path(results)
    try:
        schema = json.loads(path.read_text()).get("schema")
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, AttributeError) as exc:
        raise AdbenchError(f"cannot read results file {path}: {exc}") from None
    with tempfile.TemporaryDirectory(prefix="adbench-submit-") as staging:
        if schema == "adbench-results/1":
            converted = upgrade_v1(json.loads(path.read_text()))
            path = write_results(converted, Path(staging) / path.name, plot=False)
        entry = submit_entry(directory, path)
    write_readme(directory)
    console.print(
        ("submitted to " if entry["new"] else "already on the board: ")
        + f"{directory / entry['results_file']}"
    )


@leaderboard_app.command("readme")
def readme(leaderboards: str = LeaderboardsOption, hub: str = HubOption) -> None:
    """Regenerate the leaderboards' README.md from the entries."""
    from adbench.leaderboards.render import write_readme

    directory = leaderboards_dir(leaderboards, hub)
    write_readme(directory)
    console.print(f"wrote {directory / 'README.md'}")


@leaderboard_app.command("site")
def site(
    output: str = typer.Option(..., "--output", help="Directory to write the site into."),
    leaderboards: str = LeaderboardsOption,
    hub: str = HubOption,
    hub_url: str = typer.Option(
        "https://huggingface.co",
        "--hub-url",
        help="Where model ids link to when the site has no copy of the model card.",
    ),
) -> None:
    """Write the web leaderboard: static pages that work from file:// or any static host."""
    from adbench.leaderboards.site import build_site

    index = build_site(leaderboards_dir(leaderboards, hub), Path(output), hub=hub, hub_url=hub_url)
    console.print(f"wrote the site: open {index.resolve().as_uri()}")


@leaderboard_app.command("serve")
def serve(
    port: int = typer.Option(
        8000, "--port", min=0, max=65535, help="Port to serve on (0: any free port)."
    ),
    host: str = typer.Option("127.0.0.1", "--host", help="Address to bind."),
    output: str = typer.Option(
        None, "--output", help="Build the site here (default: a temporary directory)."
    ),
    leaderboards: str = LeaderboardsOption,
    hub: str = HubOption,
) -> None:
    """Build the web leaderboard and serve it over HTTP until interrupted."""
    import signal
    import tempfile
    import time

    from adbench.leaderboards.site import build_site, serving

    # Started from a script's background job, a process inherits SIGINT ignored, and Ctrl-C
    # (or a test's SIGINT) would never stop the server.
    signal.signal(signal.SIGINT, signal.default_int_handler)

    with tempfile.TemporaryDirectory(prefix="adbench-site-") as temporary:
        root = Path(output) if output else Path(temporary)
        directory = leaderboards_dir(leaderboards, hub)
        with serving(root, host, port) as url:  # a bad --host or --port fails before a write
            build_site(directory, root, hub=hub)
            console.print(f"serving the leaderboard at {url} (Ctrl-C to stop)")
            try:
                while True:  # sleep, unlike a bare lock wait, is always woken by Ctrl-C
                    time.sleep(3600)
            except KeyboardInterrupt:
                console.print("stopped")


@leaderboard_app.command("seeds")
def seeds(
    name: str = typer.Argument(..., help="Benchmark."),
    group: list[str] = typer.Option(
        ...,
        "--group",
        help="LABEL=MODEL_ID,MODEL_ID,...: one method's models, one per training seed "
        "(repeatable: one row each).",
    ),
    marks: str = typer.Option(
        None, "--marks", help="Episode marks, comma-separated (default: the paper's)."
    ),
    leaderboards: str = LeaderboardsOption,
    hub: str = HubOption,
) -> None:
    """Training-seed groups as one row each: the return at episode marks, mean over the
    seeds' models, with a 95% stratified-bootstrap CI over seeds x tasks, beside the paper's
    numbers, and the in-context improvement's IQM with its CI over seeds x tasks (markdown,
    for docs/results.md)."""
    from adbench.errors import AdbenchError
    from adbench.evaluation.benchmarks import get_benchmark
    from adbench.leaderboards.seeds import markdown_table, seed_group

    benchmark = get_benchmark(name).name
    mark_values = None
    if marks is not None:
        try:
            mark_values = tuple(int(m) for m in marks.split(","))
        except ValueError:
            raise AdbenchError(
                f"--marks {marks!r}: give episode numbers, e.g. 1,200,1000"
            ) from None
    groups = []
    for spec in group:
        label, sep, ids = spec.partition("=")
        model_ids = [i for i in ids.split(",") if i]
        if not sep or not label or not model_ids:
            raise AdbenchError(f"--group {spec!r}: write LABEL=MODEL_ID,MODEL_ID,...")
        groups.append(
            seed_group(
                leaderboards_dir(leaderboards, hub), benchmark, label, model_ids, mark_values
            )
        )
    typer.echo(markdown_table(groups), nl=False)
