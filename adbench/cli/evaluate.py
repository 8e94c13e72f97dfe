"""``adbench evaluate``: score a model or a reference policy, save, and submit."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer
from rich.table import Table

from adbench.cli._common import (
    EndpointOption,
    HubOption,
    LeaderboardsOption,
    console,
    leaderboards_dir,
    progress_bar,
)


def show_results(results: dict[str, Any], path: Path) -> None:
    bench, score, protocol = results["benchmark"], results["score"], results["protocol"]
    table = Table(
        title=f"{results['model']['id']} on {bench['name']} v{bench['version']} "
        f"({protocol['seeds']} seeds x {protocol['episodes']} episodes)"
    )
    for column in (
        "split",
        "runs",
        "score IQM [95% CI]",
        "final IQM",
        "improvement IQM [95% CI]",
        "return ep 1",
        f"return ep {protocol['episodes']}",
    ):
        table.add_column(column)
    for split, data in results["splits"].items():
        m = data["metrics"]
        curve = data["mean_return_per_episode"]
        label = split if data["scored"] else f"{split} (not scored)"
        table.add_row(
            label,
            str(data["num_runs"]),
            f"{m['auc']['iqm']:.3f} [{m['auc']['iqm_ci'][0]:.3f}, {m['auc']['iqm_ci'][1]:.3f}]",
            f"{m['final']['iqm']:.3f}",
            f"{m['improvement']['iqm']:.3f} [{m['improvement']['iqm_ci'][0]:.3f}, "
            f"{m['improvement']['iqm_ci'][1]:.3f}]",
            f"{curve[0]:.2f}",
            f"{curve[-1]:.2f}",
        )
    console.print(table)
    console.print(
        f"score IQM {score['iqm']:.3f} [{score['iqm_ci'][0]:.3f}, "
        f"{score['iqm_ci'][1]:.3f}]; results in {path} (plot: {path.with_suffix('.png')}); "
        f"{results['wall_seconds']:.1f} s"
    )


def evaluate_command(
    model: str = typer.Option(
        ...,
        "--model",
        help="Model hub id or directory, or a reference policy: random, optimal, source.",
    ),
    benchmark: str = typer.Option(
        None, "--benchmark", help="Benchmark (default: the model's environment)."
    ),
    episodes: int = typer.Option(
        None, "--episodes", min=1, help="In-context episodes (default: the benchmark's)."
    ),
    seeds: int = typer.Option(
        None, "--seeds", min=1, help="Evaluation seeds per task (default: the benchmark's)."
    ),
    seed: int = typer.Option(0, "--seed", min=0, help="Base seed of the evaluation."),
    output: str = typer.Option(
        None, "--output", help="Results directory or .json path (default: results/<benchmark>/)."
    ),
    submit: bool = typer.Option(
        False, "--submit", help="Add the result to the benchmark's leaderboard."
    ),
    greedy: bool = typer.Option(
        False, "--greedy", help="Take the argmax action instead of sampling."
    ),
    prompt_episodes: int = typer.Option(
        0, "--prompt-episodes", min=0, help="Demonstration episodes fed into the context first."
    ),
    prompt_epsilon: float = typer.Option(
        0.0, "--prompt-epsilon", min=0.0, max=1.0, help="Random-action rate of the demonstrations."
    ),
    check_splits: str = typer.Option(
        None,
        "--check-splits",
        help="More of the env's splits to play and report, not scored, comma-separated "
        "(e.g. train: the gap between training and held-out tasks); never ranked.",
    ),
    trust_remote_code: bool = typer.Option(
        False, "--trust-remote-code", help="Allow running code shipped with the model."
    ),
    hub: str = HubOption,
    endpoint: str = EndpointOption,
    revision: str = typer.Option(None, "--revision", help="Model revision on the remote hub."),
    device: str = typer.Option(None, "--device", help="torch device, e.g. cuda:0 (default: cpu)."),
    leaderboards: str = LeaderboardsOption,
    allow_dirty: bool = typer.Option(
        False,
        "--allow-dirty",
        help="Submit to the committed leaderboards from a checkout with uncommitted changes.",
    ),
) -> None:
    """Score a model on a benchmark: held-out tasks, many episodes, context starting empty."""
    from adbench.leaderboards.submission import score_and_save

    with progress_bar() as progress:
        bar = progress.add_task(f"evaluating {model}", total=None)
        scored = score_and_save(
            model,
            benchmark,
            episodes,
            seeds,
            seed,
            output,
            submit,
            greedy,
            prompt_episodes,
            prompt_epsilon,
            trust_remote_code,
            hub,
            endpoint,
            revision,
            device,
            leaderboards_dir(leaderboards, hub),
            allow_dirty,
            on_start=lambda total: progress.update(bar, total=total or None),
            on_episode=lambda n: progress.advance(bar, n),
            check_splits=[name.strip() for name in (check_splits or "").split(",") if name.strip()],
        )
    if scored.path is None:
        return  # a non-main process of `accelerate launch`: the main one reports
    show_results(scored.results, scored.path)
    if scored.entry is not None:
        board = leaderboards_dir(leaderboards, hub)
        console.print(
            ("submitted to " if scored.entry["new"] else "already on the board: ")
            + f"{board / scored.entry['results_file']}"
        )
