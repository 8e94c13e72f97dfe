"""``adbench train {ad,ed,rl2}``: train the baselines with Accelerate."""

from __future__ import annotations

import shlex
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import typer

from adbench.cli._common import HubOption, console, is_main_process, progress_bar

train_app = typer.Typer(
    help="Train AD, ED (from a dataset) or RL^2 (online).", no_args_is_help=True
)


def _command() -> str:
    return "adbench " + " ".join(shlex.quote(a) for a in sys.argv[1:])


@contextmanager
def training_progress(description: str, total: int) -> Iterator[Callable[[dict[str, Any]], None]]:
    """A progress bar for a distillation run; yields its ``on_step`` callback."""
    with progress_bar("[cyan]{task.fields[status]}") as progress:
        bar = progress.add_task(description, total=total, status="")

        def on_step(record: dict[str, Any]) -> None:
            progress.update(
                bar,
                completed=record["step"],
                status=(f"loss {record['loss']:.3f}  {record['tokens_per_second']:,.0f} tok/s"),
            )

        yield on_step


def _train_distilled(
    method: str,
    dataset: str | None,
    recipe: str | None,
    max_steps: int | None,
    output: str,
    seed: int | None,
    hub: str | None,
    overrides: list[str] | None,
) -> None:
    from adbench.fileio import check_writable_dir
    from adbench.training.train_ad import recipe_args, train_ad

    args = recipe_args(
        method, recipe, overrides, dataset=dataset, max_steps=max_steps, seed=seed, hub=hub
    )
    check_writable_dir(output, "--output")
    with training_progress(f"training {method.upper()}", args.max_steps) as on_step:
        train_ad(args, Path(output), command=_command(), on_step=on_step)
    if is_main_process():
        console.print(
            f"saved {method.upper()} model to {output}; publish it with "
            f"[bold]adbench push {output} --repo ORG/NAME[/]"
        )


DatasetOption = typer.Option(None, "--dataset", help="History dataset id, e.g. ad-bench/darkroom.")
RecipeOption = typer.Option(
    None, "--recipe", help="Recipe: a YAML file, or a baseline recipe's name (ad-darkroom, ...)."
)
MaxStepsOption = typer.Option(
    None, "--max-steps", min=1, help="Optimiser steps (overrides the recipe)."
)
OutputOption = typer.Option(
    ..., "--output", help="Model directory to write (resumes if it holds a checkpoint)."
)
SeedOption = typer.Option(None, "--seed", min=0, help="Seed (overrides the recipe).")
SetOption = typer.Option(None, "--set", help="Override a recipe value: KEY=VALUE (repeatable).")


@train_app.command("ad")
def train_ad_command(
    dataset: str = DatasetOption,
    recipe: str = RecipeOption,
    max_steps: int = MaxStepsOption,
    output: str = OutputOption,
    seed: int = SeedOption,
    hub: str = HubOption,
    set_: list[str] = SetOption,
) -> None:
    """Algorithm Distillation: learn to imitate the source's learning histories."""
    _train_distilled("ad", dataset, recipe, max_steps, output, seed, hub, set_)


@train_app.command("ed")
def train_ed_command(
    dataset: str = DatasetOption,
    recipe: str = RecipeOption,
    max_steps: int = MaxStepsOption,
    output: str = OutputOption,
    seed: int = SeedOption,
    hub: str = HubOption,
    set_: list[str] = SetOption,
) -> None:
    """Expert Distillation: the same model on the dataset's post-learning (expert) episodes."""
    _train_distilled("ed", dataset, recipe, max_steps, output, seed, hub, set_)


@train_app.command("rl2")
def train_rl2_command(
    env: str = typer.Option(None, "--env", help="Environment to meta-train on, e.g. darkroom."),
    recipe: str = RecipeOption,
    max_steps: int = typer.Option(
        None, "--max-steps", min=1, help="PPO updates (overrides the recipe)."
    ),
    output: str = OutputOption,
    seed: int = SeedOption,
    hub: str = HubOption,
    set_: list[str] = SetOption,
) -> None:
    """RL^2: a recurrent policy meta-trained online with PPO (no dataset; --hub serves
    init_from)."""
    from adbench.envs import get_family
    from adbench.fileio import check_writable_dir
    from adbench.hub import hub_root
    from adbench.training.common import argument_layers
    from adbench.training.train_rl2 import RL2Args, train_rl2
    from adbench.validation import build_args

    hub_root(hub)  # a bad one is an error even when no init_from needs it
    options = {"env": env, "total_updates": max_steps, "seed": seed, "hub": hub}
    args = build_args(RL2Args, argument_layers("rl2", recipe, set_, options))
    family = get_family(args.env)  # an unknown env or split fails before any work
    family.split(args.split or family.train_split)
    if args.init_from:
        from adbench.models.loading import model_dir

        model_dir(args.init_from, hub=args.hub)  # a model that is nowhere fails here too
    check_writable_dir(output, "--output")
    with progress_bar("[cyan]{task.fields[status]}") as progress:
        bar = progress.add_task("training RL^2", total=args.total_updates, status="")

        def on_update(record: dict[str, Any]) -> None:
            progress.update(
                bar,
                completed=record["update"],
                status=(
                    f"trial return {record['mean_trial_return']:.2f}  "
                    f"{record['steps_per_second']:,.0f} steps/s"
                ),
            )

        train_rl2(args, Path(output), on_update=on_update, command=_command())
    if is_main_process():
        console.print(
            f"saved RL^2 model to {output}; publish it with "
            f"[bold]adbench push {output} --repo ORG/NAME[/]"
        )
