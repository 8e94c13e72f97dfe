"""Scoring a model for the leaderboards: evaluate it on a benchmark's protocol, save the
results, and submit them, with every check made before any work. ``adbench evaluate`` and
``adbench quickstart`` are thin layers over :func:`score_and_save`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from adbench.distributed import Processes
from adbench.errors import AdbenchError
from adbench.leaderboards.board import leaderboards_dir


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


@dataclass
class ScoredRun:
    """What :func:`score_and_save` did: the results, where they were written (None in a
    non-main process of an ``accelerate launch``), and the board entry when submitted."""

    results: dict[str, Any]
    path: Path | None
    entry: dict[str, Any] | None


def score_and_save(
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
    leaderboards: str | Path | None = None,
    allow_dirty: bool = False,
    on_start: Callable[[int], None] | None = None,
    on_episode: Callable[[int], None] | None = None,
    check_splits: Sequence[str] = (),
) -> ScoredRun:
    """Score ``model`` (a hub id or directory, or a reference policy) on a benchmark, write
    the results (summary, curves, plot) and, with ``submit``, add them to the board and
    refresh its README. Every argument is checked before any work: a bad one, or a
    submission that would not be ranked, raises :class:`AdbenchError` and writes nothing.
    ``on_start(total episodes)`` and ``on_episode(n)`` report progress."""
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
    board_dir = leaderboards_dir(str(leaderboards) if leaderboards else None, hub)
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
            check_splits=check_splits,
        )
        bench.with_check_splits(check_splits)  # an unknown split fails before any work
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
        check_splits=check_splits,
        on_start=on_start,
        on_episode=on_episode,
    )
    if not Processes.current().is_main:
        return ScoredRun(results, None, None)
    root = Path(output) if output else board_dir.parent / "results"
    path = Path(output) if output and output.endswith(".json") else default_output(results, root)
    write_results(results, path)
    entry = None
    if submit:
        entry = submit_entry(board_dir, path)
        write_readme(board_dir)
    return ScoredRun(results, path, entry)
