"""``adbench datasets``: build, list, show, push, pull and export history datasets."""

from __future__ import annotations

import time
from pathlib import Path

import typer
from rich.table import Table

from adbench.cli._common import (
    EndpointOption,
    HubOption,
    TokenOption,
    console,
    human_size,
    is_main_process,
    progress_bar,
)
from adbench.errors import AdbenchError
from adbench.histories.specs import DATASETS, DEFAULT_ORG

EXPORT_FORMATS = ("minari",)

datasets_app = typer.Typer(
    help="Source learning-history datasets in the hub.", no_args_is_help=True
)


@datasets_app.command("build")
def build(
    name: str = typer.Argument(..., help=f"Dataset: {', '.join(DATASETS)}."),
    tasks: int = typer.Option(None, min=1, help="Train tasks (a fixed subset of the train split)."),
    learners: int = typer.Option(None, min=1, help="Independent learners per task."),
    episodes: int = typer.Option(None, min=1, help="Learning episodes per learner."),
    every: int = typer.Option(None, min=1, help="Keep every k-th learning episode."),
    expert_episodes: int = typer.Option(None, min=0, help="Post-learning episodes per learner."),
    source: str = typer.Option(None, help="Source algorithm (default: the dataset's)."),
    source_arg: list[str] = typer.Option(
        None, help="Source hyperparameter KEY=VALUE (repeatable)."
    ),
    seed: int = typer.Option(None, min=0, help="Seed of everything random in the build."),
    histories_per_shard: int = typer.Option(None, min=1, help="Learners run together per shard."),
    org: str = typer.Option(DEFAULT_ORG, help="Organisation of the repo id."),
    force: bool = typer.Option(False, "--force", help="Rebuild even if the dataset exists."),
    hub: str = HubOption,
) -> None:
    """Run the source algorithm and write its learning histories into the local hub.

    An interrupted build resumes from its completed shards when rerun with the same options.
    Under `accelerate launch --num_processes N` (one machine or several sharing the hub's
    file system) the shards are split over the processes; the files are the same bytes.
    """
    from adbench.histories.builder import build_dataset, plan_build
    from adbench.validation import parse_key_values

    options = dict(
        tasks=tasks,
        learners=learners,
        episodes=episodes,
        every=every,
        expert_episodes=expert_episodes,
        source=source,
        seed=seed,
        histories_per_shard=histories_per_shard,
        # None, not {}: no --source-arg keeps the dataset's own source hyperparameters.
        source_hyperparameters=parse_key_values(source_arg, "--source-arg") or None,
    )
    plan_build(name, hub, org, force, **options)  # bad options fail before the progress bar
    started = time.perf_counter()
    with progress_bar() as progress:
        bar = progress.add_task(f"building {org}/{name}", total=None)
        path = build_dataset(
            name,
            hub=hub,
            org=org,
            force=force,
            **options,
            on_start=lambda total: progress.update(bar, total=total),
            on_episode=lambda n: progress.advance(bar, n),
        )
    if is_main_process():  # under `accelerate launch`, the main process reports
        _show(path, title=f"built {org}/{name} in {time.perf_counter() - started:.1f} s")


@datasets_app.command("list")
def list_datasets(hub: str = HubOption) -> None:
    """The datasets in the local hub, with their sizes."""
    from adbench.hub import hub_root, list_repos

    repos = list_repos("dataset", hub)
    table = Table(title=f"datasets in {hub_root(hub)}")
    for column in ("id", "files", "size", "modified"):
        table.add_column(column, justify="right" if column in ("files", "size") else "left")
    for repo in repos:
        table.add_row(
            repo.repo_id,
            str(repo.num_files),
            human_size(repo.size_bytes),
            repo.last_modified.strftime("%Y-%m-%d %H:%M"),
        )
    console.print(table)
    if not repos:
        console.print("no datasets yet: build one with [bold]adbench datasets build darkroom[/]")


def _show(path: object, title: str) -> None:
    from pathlib import Path

    from adbench.histories.loading import read_metadata

    m = read_metadata(Path(str(path)))
    counts = m["counts"]
    curve = m["source_learning_curve"]["mean_return_per_episode"]
    table = Table(title=title, show_header=False)
    table.add_column("key", style="bold")
    table.add_column("value")
    rows = [
        ("repo", f"{m['repo_id']}  ({path})"),
        ("environment", f"{m['env']['id']} (train split {m['env']['train_split']})"),
        (
            "source",
            f"{m['source']['name']} "
            + ", ".join(f"{k}={v}" for k, v in m["source"]["hyperparameters"].items()),
        ),
        ("histories", f"{counts['histories']:,} ({counts['tasks']} tasks)"),
        (
            "episodes kept",
            f"{counts['kept_episodes_per_history']:,} of "
            f"{counts['learning_episodes_per_history']:,} per history (every "
            f"{m['config']['every']}), {counts['episodes']:,} in all",
        ),
        ("transitions", f"{counts['transitions']:,} (+{counts['expert_transitions']:,} expert)"),
        (
            "source return",
            f"{curve[0]:.3f} (first episode) -> {curve[-1]:.3f} (last); optimal "
            f"{m['source_learning_curve']['optimal_return']}, random "
            f"{m['source_learning_curve']['random_return']}",
        ),
        ("build command", m["build_command"]),
        (
            "adbench",
            f"{m['provenance']['adbench_version']} ({m['provenance']['adbench_git_revision']})",
        ),
        ("data files", f"{len(m['checksums'])} (sha256 in adbench.json)"),
    ]
    if "build" in m:
        rows.append(("build time", f"{m['build']['seconds']} s"))
    for key, value in rows:
        table.add_row(key, value)
    console.print(table)


@datasets_app.command("show")
def show(
    repo_id: str = typer.Argument(..., help="Dataset id, e.g. ad-bench/darkroom."),
    hub: str = HubOption,
    endpoint: str = EndpointOption,
) -> None:
    """The key facts of a dataset's card."""
    from adbench.histories.loading import dataset_dir

    _show(dataset_dir(repo_id, hub=hub, endpoint=endpoint), title=repo_id)


@datasets_app.command("push")
def push(
    repo_id: str = typer.Argument(..., help="Dataset id in the local hub."),
    hub: str = HubOption,
    endpoint: str = EndpointOption,
    token: str = TokenOption,
    private: bool = typer.Option(False, "--private", help="Create the remote repo private."),
) -> None:
    """Upload a dataset from the local hub to a remote hub (huggingface_hub)."""
    from adbench.hub import push_repo

    result = push_repo(repo_id, "dataset", hub=hub, endpoint=endpoint, token=token, private=private)
    console.print(f"pushed {repo_id} (revision {result.revision[:12]}) to {result.repo_url}")


@datasets_app.command("pull")
def pull(
    repo_id: str = typer.Argument(..., help="Dataset id on the remote hub."),
    hub: str = HubOption,
    endpoint: str = EndpointOption,
    token: str = TokenOption,
    revision: str = typer.Option(None, help="Remote revision (default: main)."),
) -> None:
    """Download a dataset from a remote hub into the local hub."""
    from adbench.hub import pull_repo

    path = pull_repo(repo_id, "dataset", hub=hub, endpoint=endpoint, revision=revision, token=token)
    console.print(f"pulled {repo_id} into {path}")


@datasets_app.command("export")
def export(
    repo_id: str = typer.Argument(..., help="Dataset id, e.g. ad-bench/darkroom."),
    format_: str = typer.Option(
        ..., "--format", help=f"Format to write: {', '.join(EXPORT_FORMATS)}."
    ),
    output: str = typer.Option(..., "--output", help="Directory to write the export under."),
    config: str = typer.Option("default", "--config", help="Dataset config: default or expert."),
    revision: str = typer.Option(None, "--revision", help="Dataset revision (default: main)."),
    hub: str = HubOption,
) -> None:
    """Write a history dataset in another tool's format (Minari: its loader opens it)."""
    from adbench.fileio import check_writable_dir
    from adbench.histories.export import export_minari

    if format_ not in EXPORT_FORMATS:
        raise AdbenchError(f"--format {format_!r}: valid formats are {', '.join(EXPORT_FORMATS)}")
    check_writable_dir(output, "--output")
    path = export_minari(repo_id, output, config=config, hub=hub, revision=revision)
    console.print(f"wrote the Minari dataset {path.relative_to(Path(output).absolute())} to {path}")
