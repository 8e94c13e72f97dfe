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
    is_main_process,
    leaderboards_dir,
    progress_bar,
)
from adbench.errors import AdbenchError


def check_clean_for_submission(board_dir: Path) -> None:
    """A submission to the committed leaderboards must name the exact code that made it: a
    clean checkout's commit. Raises before any work when the tree has uncommitted changes."""
    from adbench.provenance import code_version
    from adbench.resources import checkout_root

    root = checkout_root()
    if root is None or board_dir.resolve() != (root / "leaderboards").resolve():
        return
    version = code_version()
    if version.clean:
        return
    why = (
        "the checkout's code (adbench/, pyproject.toml, constraints.txt) has uncommitted changes"
        if version.revision
        else "its git revision cannot be read"
    )
    raise AdbenchError(
        f"refusing to submit to the committed leaderboards {board_dir}: {why}, so the results "
        "would pin no code; commit (or stash) first, or pass --allow-dirty to submit anyway"
    )


def model_info(path: Path, model: Any) -> dict[str, Any]:
    """What identifies the scored weights: hub revision, weights hash, training data."""
    from adbench.fileio import sha256_file
    from adbench.hub import repo_revision

    config = model.config
    return {
        "revision": repo_revision(path),
        "weights_sha256": sha256_file(path / "model.safetensors"),
        "model_type": config.model_type,
        "method": getattr(config, "method", None),
        "dataset_id": getattr(config, "dataset_id", None),
        "dataset_revision": getattr(config, "dataset_revision", None),
        "parameters": sum(p.numel() for p in model.parameters()),
    }


def run_evaluation(
    model: str,
    benchmark: str | None = None,
    episodes: int | None = None,
    seeds: int | None = None,
    seed: int = 0,
    output: str | None = None,
    submit: bool = False,
    greedy: bool = False,
    prompt_episodes: int = 0,
    prompt_epsilon: float = 0.0,
    trust_remote_code: bool = False,
    hub: str | None = None,
    endpoint: str | None = None,
    revision: str | None = None,
    device: str | None = None,
    leaderboards: str | None = None,
    allow_dirty: bool = False,
) -> dict[str, Any]:
    """Evaluate and write results (and submit); shared by ``evaluate`` and ``quickstart``."""
    from adbench.evaluation.benchmarks import (
        REFERENCE_POLICIES,
        Benchmark,
        benchmark_for_env,
        get_benchmark,
    )
    from adbench.fileio import check_writable_dir

    if prompt_episodes < 0 or not 0.0 <= prompt_epsilon <= 1.0:
        raise AdbenchError("--prompt-episodes must be >= 0 and --prompt-epsilon in [0, 1]")
    for name, value in (("--episodes", episodes), ("--seeds", seeds)):
        if value is not None and value < 1:
            raise AdbenchError(f"{name} must be at least 1, got {value}")
    board_dir = leaderboards_dir(leaderboards, hub)
    if submit and not allow_dirty:
        check_clean_for_submission(board_dir)
    if output and output.endswith(".json"):
        if Path(output).is_dir():
            raise AdbenchError(f"--output {output} is a directory: give a .json file or a folder")
        check_writable_dir(Path(output).parent, "--output")
    else:
        check_writable_dir(Path(output) if output else board_dir.parent / "results", "--output")
    if submit:
        check_writable_dir(board_dir, "--leaderboards")

    def refuse_nonstandard(bench: Benchmark) -> None:
        # Only the benchmark's own protocol is ranked, on a board that can be read: refuse
        # before any work.
        deviations = bench.deviations(
            episodes=bench.episodes if episodes is None else episodes,
            seeds=bench.seeds if seeds is None else seeds,
            seed=seed,
            decoding="greedy" if greedy else "sample",
            prompt_episodes=prompt_episodes,
        )
        if not submit:
            return
        if deviations:
            raise AdbenchError(
                f"cannot submit to {bench.label()}: {'; '.join(deviations)}; drop --submit "
                "to evaluate and save a non-standard run (it is never ranked)"
            )
        from adbench.leaderboards.board import load_board

        load_board(board_dir, bench.name)  # a corrupted board refuses here, not after the run

    if benchmark is not None:
        refuse_nonstandard(get_benchmark(benchmark))  # before the seconds of imports below
    from adbench.evaluation.evaluate import default_output, evaluate
    from adbench.evaluation.results import write_results
    from adbench.evaluation.rollout import Prompt
    from adbench.leaderboards.board import submit as submit_entry
    from adbench.leaderboards.render import write_readme

    loaded, info = None, {}
    if model in REFERENCE_POLICIES:
        if benchmark is None:
            raise AdbenchError(f"the reference policy {model!r} needs --benchmark")
        bench = get_benchmark(benchmark)
    else:
        from adbench.models.loading import load_model, model_dir, resolve_device

        resolve_device(device)  # before anything is fetched
        path = model_dir(model, hub=hub, endpoint=endpoint, revision=revision)
        loaded = load_model(path, trust_remote_code=trust_remote_code, device=device)
        info = model_info(path, loaded)
        bench = (
            get_benchmark(benchmark)
            if benchmark
            else benchmark_for_env(getattr(loaded.config, "env_name", None))
        )
    if benchmark is None:
        refuse_nonstandard(bench)  # the model's own benchmark, known now
    prompt = Prompt(prompt_episodes, prompt_epsilon) if prompt_episodes else None
    with progress_bar() as progress:
        bar = progress.add_task(f"evaluating {model} on {bench.name}", total=None)
        results = evaluate(
            bench,
            model,
            model=loaded,
            model_info=info,
            episodes=episodes,
            seeds=seeds,
            seed=seed,
            greedy=greedy,
            prompt=prompt,
            on_start=lambda total: progress.update(bar, total=total or None),
            on_episode=lambda n: progress.advance(bar, n),
        )
    if not is_main_process():
        return results
    root = Path(output) if output else board_dir.parent / "results"
    path = Path(output) if output and output.endswith(".json") else default_output(results, root)
    write_results(results, path)
    show_results(results, path)
    if submit:
        entry = submit_entry(board_dir, path)
        write_readme(board_dir)
        console.print(
            ("submitted to " if entry["new"] else "already on the board: ")
            + f"{board_dir / entry['results_file']}"
        )
    return results


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
    run_evaluation(
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
        leaderboards,
        allow_dirty,
    )
