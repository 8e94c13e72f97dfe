"""``adbench train {ad,ed,rl2}``: train the baselines with Accelerate."""

from __future__ import annotations

import shlex
import sys
from pathlib import Path
from typing import Any

import typer

from adbench.cli._common import HubOption, console, is_main_process, progress_bar
from adbench.errors import AdbenchError

train_app = typer.Typer(
    help="Train AD, ED (from a dataset) or RL^2 (online).", no_args_is_help=True
)


def read_recipe(path: str | None) -> dict[str, Any]:
    """A recipe: a YAML mapping of hyperparameter names to values, given by path or by the
    name of a baseline recipe (``ad-darkroom``)."""
    if path is None:
        return {}
    import yaml

    from adbench.resources import recipe_path

    recipe = recipe_path(path)
    try:
        values = yaml.safe_load(recipe.read_text()) or {}
    except yaml.YAMLError as exc:
        raise AdbenchError(
            f"recipe {recipe} is not valid YAML: {str(exc).splitlines()[0]}"
        ) from exc
    if not isinstance(values, dict):
        raise AdbenchError(f"recipe {recipe} must be a mapping of hyperparameter: value")
    return values


def parse_overrides(pairs: list[str] | None) -> dict[str, Any]:
    import yaml

    values: dict[str, Any] = {}
    for pair in pairs or []:
        if "=" not in pair:
            raise AdbenchError(f"--set takes KEY=VALUE, got {pair!r}")
        key, value = pair.split("=", 1)
        values[key.strip()] = yaml.safe_load(value)
    return values


def _command() -> str:
    return "adbench " + " ".join(shlex.quote(a) for a in sys.argv[1:])


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
    from adbench.training.train_ad import ADTrainArgs, train_ad

    values = read_recipe(recipe)
    if values.get("method", method) != method:
        raise AdbenchError(
            f"{recipe} is a {values['method']} recipe: use `adbench train {values['method']}`"
        )
    values["method"] = method
    values.update(parse_overrides(overrides))
    for key, value in (
        ("dataset", dataset),
        ("max_steps", max_steps),
        ("seed", seed),
        ("hub", hub),
    ):
        if value is not None:
            values[key] = value
    args = ADTrainArgs.from_dict(values, source=recipe or "the options")
    with progress_bar("[cyan]{task.fields[status]}") as progress:
        bar = progress.add_task(f"training {method.upper()}", total=args.max_steps, status="")

        def on_step(record: dict[str, Any]) -> None:
            progress.update(
                bar,
                completed=record["step"],
                status=(f"loss {record['loss']:.3f}  {record['tokens_per_second']:,.0f} tok/s"),
            )

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
MaxStepsOption = typer.Option(None, "--max-steps", help="Optimiser steps (overrides the recipe).")
OutputOption = typer.Option(
    ..., "--output", help="Model directory to write (resumes if it holds a checkpoint)."
)
SeedOption = typer.Option(None, "--seed", help="Seed (overrides the recipe).")
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
    max_steps: int = typer.Option(None, "--max-steps", help="PPO updates (overrides the recipe)."),
    output: str = OutputOption,
    seed: int = SeedOption,
    hub: str = HubOption,
    set_: list[str] = SetOption,
) -> None:
    """RL^2: a recurrent policy meta-trained online with PPO (no dataset; --hub unused)."""
    from dataclasses import fields

    from adbench.training.train_rl2 import RL2Args, train_rl2

    values = read_recipe(recipe)
    if values.pop("method", "rl2") != "rl2":
        raise AdbenchError(f"{recipe} is not an rl2 recipe: use the matching `adbench train`")
    values.update(parse_overrides(set_))
    for key, value in (("env", env), ("total_updates", max_steps), ("seed", seed)):
        if value is not None:
            values[key] = value
    names = {f.name for f in fields(RL2Args)}
    unknown = sorted(set(values) - names)
    if unknown:
        raise AdbenchError(
            f"unknown key(s) {unknown} in {recipe or 'the options'}: valid keys "
            f"are {', '.join(sorted(names))}"
        )
    args = RL2Args(**values)
    args.validate()
    from adbench.envs import get_family

    get_family(args.env)  # an unknown env fails before any work
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
