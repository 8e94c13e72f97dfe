"""``adbench quickstart``: the whole pipeline on Dark Room, end to end, on the local hub.

Build the Dark Room histories, train AD on them, publish it to the local hub, score it
(and the random and optimal references) on the darkroom benchmark, submit, and print the
leaderboard. Every stage is skipped when its output already exists, so an interrupted
quickstart resumes where it stopped.
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import typer

from adbench.cli._common import HubOption, console

QUICKSTART_MODEL = "local/ad-darkroom-quickstart"


def quickstart(
    hub: str = HubOption,
    output: str = typer.Option(
        "runs/quickstart", "--output", help="Working directory for the run."
    ),
    max_steps: int = typer.Option(
        2500, "--max-steps", min=1, help="AD training steps (the recipe has 4000)."
    ),
    episodes: int = typer.Option(
        None, "--episodes", min=1, help="In-context episodes (default: the benchmark's 1000)."
    ),
    leaderboards: str = typer.Option(
        None, "--leaderboards", help="Leaderboards directory (default: <hub>/leaderboards)."
    ),
) -> None:
    """Build a Dark Room dataset, train AD, evaluate, submit, and show the leaderboard."""
    from adbench.cli._common import progress_bar
    from adbench.cli.evaluate import show_results
    from adbench.cli.train import training_progress
    from adbench.fileio import check_writable_dir
    from adbench.histories.builder import build_dataset
    from adbench.hub import hub_root, local_repo_dir
    from adbench.leaderboards.board import load_board
    from adbench.leaderboards.render import render_table
    from adbench.leaderboards.submission import score_and_save
    from adbench.models.publishing import publish_model
    from adbench.resources import data_dir, recipe_path
    from adbench.training.train_ad import recipe_args, train_ad

    started = time.perf_counter()
    work = check_writable_dir(output, "--output")
    board_dir = Path(leaderboards) if leaderboards else hub_root(hub) / "leaderboards"
    check_writable_dir(board_dir, "--leaderboards")
    check_writable_dir(hub_root(hub), "--hub")
    board_dir.mkdir(parents=True, exist_ok=True)
    official = data_dir("leaderboards") / "darkroom"
    if official.is_dir() and not (board_dir / "darkroom").exists():
        shutil.copytree(official, board_dir / "darkroom")  # rank against the baselines

    console.rule("[bold]1/4 dataset: ad-bench/darkroom")
    if local_repo_dir("ad-bench/darkroom", "dataset", hub).exists():
        console.print("ad-bench/darkroom is already in the local hub: reusing it")
    else:
        with progress_bar() as progress:
            bar = progress.add_task("building ad-bench/darkroom", total=None)
            path = build_dataset(
                "darkroom",
                hub=hub,
                on_start=lambda total: progress.update(bar, total=total),
                on_episode=lambda n: progress.advance(bar, n),
            )
        console.print(f"built ad-bench/darkroom into {path}")

    console.rule("[bold]2/4 train AD (recipe ad-darkroom)")
    model_dir = work / "ad-darkroom"
    if local_repo_dir(QUICKSTART_MODEL, "model", hub).exists():
        console.print(f"{QUICKSTART_MODEL} is already in the local hub: reusing it")
    else:
        args = recipe_args(
            "ad", recipe_path("ad-darkroom"), dataset="ad-bench/darkroom", max_steps=max_steps,
            hub=hub,
        )  # fmt: skip
        with training_progress("training AD", args.max_steps) as on_step:
            train_ad(args, model_dir, command="adbench quickstart", on_step=on_step)
        publish_model(model_dir, QUICKSTART_MODEL, hub=hub)
        console.print(f"published {QUICKSTART_MODEL} to the local hub")

    console.rule("[bold]3/4 evaluate on the darkroom benchmark, and submit")
    results_dir = work / "results"
    for policy in ("random", "optimal", QUICKSTART_MODEL):
        with progress_bar() as progress:
            bar = progress.add_task(f"evaluating {policy}", total=None)
            scored = score_and_save(
                policy,
                "darkroom",
                episodes=episodes,
                output=str(results_dir),
                submit=episodes is None,  # only the benchmark's own protocol is ranked
                hub=hub,
                leaderboards=board_dir,
                on_start=lambda total, bar=bar, progress=progress: progress.update(
                    bar, total=total or None
                ),
                on_episode=lambda n, bar=bar, progress=progress: progress.advance(bar, n),
            )
        if scored.path is not None:
            show_results(scored.results, scored.path)
        if scored.entry is not None:
            done = "submitted to" if scored.entry["new"] else "already on the board:"
            console.print(f"{done} {board_dir / scored.entry['results_file']}")

    console.rule("[bold]4/4 leaderboard")
    render_table(load_board(board_dir, "darkroom"), console)
    console.print(
        f"quickstart done in {(time.perf_counter() - started) / 60:.1f} min; "
        f"results and plots in {results_dir}"
    )
