"""``adbench envs``: list the environment families and run reference policies on them."""

from __future__ import annotations

import time

import numpy as np
import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from adbench.cli._console import make_console
from adbench.envs import FAMILIES, get_family

envs_app = typer.Typer(
    help="Environment families: spaces, task splits, reference returns.", no_args_is_help=True
)
console = make_console()


def _space(space: object) -> str:
    return repr(space).replace(", dtype=uint8", " uint8")


@envs_app.command("list")
def list_envs() -> None:
    """A table of every environment: id, spaces, episode length, tasks per split."""
    table = Table(title="adbench environments")
    for column in (
        "name",
        "id",
        "observation space",
        "actions",
        "episode length",
        "tasks per split",
    ):
        table.add_column(column)
    for family in FAMILIES.values():
        splits = ", ".join(f"{s} {len(family.split(s))}" for s in family.split_names)
        table.add_row(
            family.name,
            family.env_id,
            _space(family.observation_space),
            f"Discrete({family.num_actions})",
            str(family.episode_length),
            splits,
        )
    console.print(table)


@envs_app.command("rollout")
def rollout(
    env: list[str] = typer.Option(
        None, "--env", "-e", help="Environment name (repeatable); all of them by default."
    ),
    split: str = typer.Option(None, help="Task split; each family's first test split by default."),
    episodes: int = typer.Option(20, min=1, help="Episodes per task and policy."),
    seed: int = typer.Option(0, min=0, help="Seed of the environments and of the random policy."),
) -> None:
    """Run the uniform random policy and the oracle on every task of a split, batched, and
    compare their mean returns with the exact reference returns."""
    names = env or list(FAMILIES)
    families = [get_family(n) for n in names]
    for family in families:  # an unknown split fails before the first rollout
        family.split(split or family.test_splits[0])
    table = Table(title=f"reference policies, {episodes} episodes per task (seed {seed})")
    for column in (
        "env",
        "split",
        "tasks",
        "random",
        "random (reference)",
        "oracle",
        "optimal (reference)",
        "steps/s",
    ):
        table.add_column(column, justify="right" if column not in ("env", "split") else "left")
    total = sum(2 * episodes * f.episode_length for f in families)
    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
        transient=True,
    ) as progress:
        bar = progress.add_task("rolling out", total=total)
        for family in families:
            split_name = split or family.test_splits[0]
            tasks = family.split(split_name)
            rng = np.random.default_rng(seed)
            returns = {}
            start = time.perf_counter()
            for policy in ("random", "oracle"):
                progress.update(bar, description=f"{family.name}: {policy}")
                batch = family.make_batched(tasks, seed=seed)
                total_return = np.zeros(len(tasks))
                for _ in range(episodes):
                    batch.reset()
                    for _ in range(family.episode_length):
                        if policy == "random":
                            actions = rng.integers(0, family.num_actions, size=len(tasks))
                        else:
                            actions = batch.optimal_actions()
                        _, reward, _, _ = batch.step(actions)
                        total_return += reward
                        progress.advance(bar)
                returns[policy] = total_return / episodes
            steps_per_s = (
                2 * episodes * family.episode_length * len(tasks) / (time.perf_counter() - start)
            )
            table.add_row(
                family.name,
                split_name,
                str(len(tasks)),
                f"{returns['random'].mean():.3f}",
                f"{family.random_return(tasks).mean():.3f}",
                f"{returns['oracle'].mean():.3f}",
                f"{family.optimal_return(tasks).mean():.3f}",
                f"{steps_per_s:,.0f}",
            )
    console.print(table)
