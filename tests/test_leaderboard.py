"""Leaderboards: entries as files, a binding protocol, ranking within a version,
verification of every number from the stored curves, and the committed boards."""

from __future__ import annotations

import copy
import json
import threading
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from conftest import REPO_ROOT
from rich.console import Console

from adbench.errors import AdbenchError
from adbench.evaluation.benchmarks import get_benchmark, runs_from_records
from adbench.evaluation.evaluate import evaluate, score_returns
from adbench.evaluation.results import read_results, runs_path, upgrade_v1, write_results
from adbench.leaderboards import board as lb
from adbench.leaderboards.render import render_readme, render_table, write_readme
from adbench.leaderboards.verify import verify_boards

COMMITTED = REPO_ROOT / "leaderboards"


@pytest.fixture(scope="module")
def random_results() -> dict[str, Any]:
    """The random reference on the full darkroom protocol (about two seconds)."""
    return evaluate(get_benchmark("darkroom"), "random")


def results_of(base: dict[str, Any], model_id: str, shift: float = 0.0) -> dict[str, Any]:
    """A model's results whose curves are the random reference's plus ``shift`` (capped at
    the optimal return), scored by the benchmark's own scoring: a consistent record."""
    bench = get_benchmark("darkroom")
    record = copy.deepcopy(base)
    runs = record["runs"]
    stored = runs_from_records(bench, runs["split"], runs["task_index"], runs["seed"])
    cap = bench.family.optimal_return(stored.tasks)[:, None]
    returns = np.minimum(runs["returns"] + np.float32(shift), cap).astype(np.float32)
    record.update(score_returns(bench, stored, returns, seed=0))
    record["runs"] = {**runs, "returns": returns}
    record["model"] = {
        "id": model_id,
        "kind": "model",
        "revision": "ab" * 20,
        "weights_sha256": "cd" * 32,
    }
    return record


def saved(record: dict[str, Any], directory: Path, name: str) -> Path:
    return write_results(record, directory / f"{name}.json", plot=False)


def test_an_entry_is_two_new_files_and_the_board_is_derived(
    tmp_path: Path, random_results: dict[str, Any]
) -> None:
    boards = tmp_path / "boards"
    results = saved(random_results, tmp_path / "results", "random")
    row = lb.submit(boards, results)
    assert row["new"] and row["kind"] == "reference" and len(row["id"]) == 16
    files = sorted(p.name for p in (boards / "darkroom").iterdir() if not p.name.startswith("."))
    assert files == [f"random-{row['id'][:8]}.json", f"random-{row['id'][:8]}.runs.parquet"]
    stored = read_results(boards / row["results_file"])
    assert stored["submission"]["id"] == row["id"] == lb.entry_id(stored)
    assert stored["score"] == read_results(results)["score"]
    board = lb.load_board(boards, "darkroom")
    assert [e["id"] for e in board.entries] == [row["id"]] and board.older == []
    # Submitting the same entry again changes nothing.
    again = lb.submit(boards, results)
    assert not again["new"] and again["id"] == row["id"]
    assert len(list((boards / "darkroom").glob("*.json"))) == 1


def test_ranking_within_the_current_version_and_older_ones_apart(
    tmp_path: Path, random_results: dict[str, Any]
) -> None:
    boards = tmp_path / "boards"
    lb.submit(boards, saved(random_results, tmp_path, "random"))
    for model_id, shift in (("b", 2.0), ("a", 6.0), ("d", 1.0)):
        lb.submit(boards, saved(results_of(random_results, model_id, shift), tmp_path, model_id))
    # An entry of an older protocol version, as committed before the version changed.
    older = saved(results_of(random_results, "old", 9.0), tmp_path, "old")
    summary = read_results(older)
    summary["benchmark"]["version"] = "0.9"
    summary["runs_file"]["name"] = "old-00000000.runs.parquet"
    (boards / "darkroom" / "old-00000000.json").write_text(json.dumps(summary))
    (boards / "darkroom" / "old-00000000.runs.parquet").write_bytes(runs_path(older).read_bytes())
    copied = older.with_name("old-copy.json")
    copied.write_text(json.dumps(summary))
    runs_path(copied).write_bytes(runs_path(older).read_bytes())
    with pytest.raises(AdbenchError, match=r"made under darkroom v0\.9.*ranks v1\.0"):
        lb.submit(tmp_path / "other", copied)

    board = lb.load_board(boards, "darkroom")
    rows = lb.ranked(board.entries)
    assert [(r["model_id"], r["rank"]) for r in rows] == [
        ("a", 1),
        ("b", 2),
        ("d", 3),
        ("random", None),
    ]
    assert [e["model_id"] for e in board.older] == ["old"]  # never ranked with v1.0
    console = Console(record=True, width=200)
    render_table(board, console)
    text = console.export_text()
    assert text.index("a@abababab") < text.index("b@abababab") < text.index("(reference)")
    assert "darkroom v0.9 (an older protocol: not ranked)" in text
    readme = render_readme(boards)
    assert readme.index("## darkroom v1.0") < readme.index("### darkroom v0.9")
    assert "old@abababab" in readme.split("### darkroom v0.9")[1]


def test_the_same_curves_under_a_new_benchmark_version_replace_the_older_entry(
    tmp_path: Path, random_results: dict[str, Any]
) -> None:
    # A version change that leaves a policy's curves unchanged (e.g. a new source
    # reference, which the optimal-normalised score does not use): the entry's file name is
    # the same, and submitting again must move it to the current version, not keep the old.
    boards = tmp_path / "boards"
    row = lb.submit(boards, saved(random_results, tmp_path, "random"))
    stored_path = boards / row["results_file"]
    stored = read_results(stored_path)
    stored["benchmark"]["version"] = "0.9"
    stored_path.write_text(json.dumps(stored))
    assert [e["id"] for e in lb.load_board(boards, "darkroom").older] == [row["id"]]
    again = lb.submit(boards, saved(random_results, tmp_path, "random-again"))
    assert again["new"] and again["id"] == row["id"]
    board = lb.load_board(boards, "darkroom")
    assert [e["id"] for e in board.entries] == [row["id"]] and board.older == []
    assert read_results(stored_path)["benchmark"]["version"] == "1.0"
    assert len(list((boards / "darkroom").glob("*.json"))) == 1


def test_a_reference_replaces_its_older_entries(
    tmp_path: Path, random_results: dict[str, Any]
) -> None:
    boards = tmp_path / "boards"
    first = lb.submit(boards, saved(random_results, tmp_path, "r1"))
    changed = copy.deepcopy(random_results)
    changed["date"] = "2030-01-01T00:00:00+00:00"
    changed["runs"]["returns"] = np.roll(changed["runs"]["returns"], 1, axis=1)
    bench = get_benchmark("darkroom")
    runs = runs_from_records(
        bench, changed["runs"]["split"], changed["runs"]["task_index"], changed["runs"]["seed"]
    )
    changed.update(score_returns(bench, runs, changed["runs"]["returns"], seed=0))
    second = lb.submit(boards, saved(changed, tmp_path, "r2"))
    model = lb.submit(boards, saved(results_of(random_results, "m", 1.0), tmp_path, "m"))
    ids = {e["id"] for e in lb.load_board(boards, "darkroom").entries}
    assert ids == {second["id"], model["id"]} and first["id"] != second["id"]
    assert not (boards / first["results_file"]).exists()
    assert not runs_path(boards / first["results_file"]).exists()


def test_concurrent_submissions_are_all_kept(
    tmp_path: Path, random_results: dict[str, Any]
) -> None:
    boards = tmp_path / "boards"
    files = [
        saved(results_of(random_results, f"org/m{i}", 0.5 * i), tmp_path, f"m{i}") for i in range(6)
    ]
    errors: list[BaseException] = []

    def worker(path: Path) -> None:
        try:
            lb.submit(boards, path, verify=False)
            write_readme(boards)
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(path,)) for path in files]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert len(lb.load_board(boards, "darkroom").entries) == 6
    readme = (boards / "README.md").read_text()
    assert all(f"org/m{i}@" in readme for i in range(6))


def test_submit_refuses_what_is_not_the_protocol(
    tmp_path: Path, random_results: dict[str, Any]
) -> None:
    boards = tmp_path / "boards"
    short = evaluate(get_benchmark("darkroom"), "random", episodes=3)
    with pytest.raises(AdbenchError, match=r"--episodes 3 \(the benchmark's: 1000\)"):
        lb.submit(boards, saved(short, tmp_path, "short"))
    greedy = evaluate(get_benchmark("darkroom"), "optimal", episodes=3, greedy=True)
    with pytest.raises(AdbenchError, match="decoding greedy"):
        lb.submit(boards, saved(greedy, tmp_path, "greedy"))
    forged = copy.deepcopy(random_results)
    forged["protocol"]["runs_fingerprint"] = "0" * 16
    with pytest.raises(AdbenchError, match=r"tasks and seeds \(fingerprint 0000000000000000\)"):
        lb.submit(boards, saved(forged, tmp_path, "forged"))
    edited = copy.deepcopy(random_results)
    edited["score"]["iqm"] = 0.5
    with pytest.raises(AdbenchError, match=r"its score IQM is 0\.5, but its curves give"):
        lb.submit(boards, saved(edited, tmp_path, "edited"))
    assert not boards.exists() or not list(boards.rglob("*.json"))


def _board_with_one_model(tmp_path: Path, random_results: dict[str, Any]) -> tuple[Path, Path]:
    boards = tmp_path / "boards"
    row = lb.submit(boards, saved(results_of(random_results, "org/m", 3.0), tmp_path, "m"))
    assert verify_boards(boards)[0].model_id == "org/m"
    return boards, boards / row["results_file"]


def test_verify_names_an_entry_whose_curves_were_edited(
    tmp_path: Path, random_results: dict[str, Any], cli
) -> None:
    boards, entry = _board_with_one_model(tmp_path, random_results)
    curves = runs_path(entry)
    table = pq.read_table(curves)
    returns = np.stack(table.column("returns").to_numpy(zero_copy_only=False))
    returns[0, 0] += 1
    flat = pa.array(returns.reshape(-1), type=table.schema.field("returns").type.value_type)
    edited = table.set_column(
        3, "returns", pa.FixedSizeListArray.from_arrays(flat, returns.shape[1])
    )
    pq.write_table(edited, curves)
    result = cli("leaderboard", "verify", "--leaderboards", str(boards))
    assert result.returncode == 2
    assert f"entry darkroom/{entry.name}" in result.stderr and "sha256 differs" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and "Traceback" not in result.stderr


def test_verify_names_an_edited_score_a_missing_file_and_a_corrupted_entry(
    tmp_path: Path, random_results: dict[str, Any]
) -> None:
    boards, entry = _board_with_one_model(tmp_path, random_results)
    original = entry.read_text()
    summary = json.loads(original)
    summary["score"]["final_iqm"] += 0.01
    entry.write_text(json.dumps(summary))
    with pytest.raises(AdbenchError, match=rf"entry darkroom/{entry.name}: its final IQM is"):
        verify_boards(boards)
    summary["score"]["final_iqm"] -= 0.01
    summary["model"]["revision"] = "ef" * 20  # the entry no longer names what was scored
    entry.write_text(json.dumps(summary))
    with pytest.raises(AdbenchError, match="does not match its model and curves"):
        verify_boards(boards)
    entry.write_text(original)
    curves = runs_path(entry).read_bytes()
    runs_path(entry).unlink()
    with pytest.raises(AdbenchError, match=r"per-run curves .*\.runs\.parquet are missing"):
        verify_boards(boards, "darkroom")
    runs_path(entry).write_bytes(curves)
    entry.write_text(original[: len(original) // 2])
    with pytest.raises(AdbenchError, match=rf"entry darkroom/{entry.name}: cannot read"):
        verify_boards(boards)
    with pytest.raises(AdbenchError, match=r"corrupted.*restore it from git"):
        lb.load_board(boards, "darkroom")
    # A corrupted board refuses submissions, and is left as it was.
    before = sorted(p.name for p in (boards / "darkroom").iterdir())
    with pytest.raises(AdbenchError, match=rf"{entry.name} is corrupted"):
        lb.submit(boards, saved(random_results, tmp_path, "late"))
    assert sorted(p.name for p in (boards / "darkroom").iterdir()) == before


def test_a_v1_results_file_converts_with_the_same_scores(
    tmp_path: Path, random_results: dict[str, Any]
) -> None:
    v1 = {k: v for k, v in copy.deepcopy(random_results).items() if k != "protocol"}
    v1.update(
        schema="adbench-results/1",
        benchmark={**v1["benchmark"], "episodes": 1000, "seeds": 5},
        settings={**v1["settings"], "seed": 0, "decoding": "sample", "prompt": None},
        runs={
            "split": v1["runs"]["split"].tolist(),
            "task_index": v1["runs"]["task_index"].tolist(),
            "seed": v1["runs"]["seed"].tolist(),
            "returns": np.round(v1["runs"]["returns"], 4).tolist(),
        },
    )
    del v1["adbench_code"]
    v1["adbench_git_revision"] = "a" * 40
    converted = upgrade_v1(v1)
    assert converted["protocol"]["standard"]
    assert converted["adbench_code"]["clean"] is True
    path = saved(converted, tmp_path, "converted")
    row = lb.submit(tmp_path / "boards", path)  # verified: the scores follow from the curves
    assert row["score_iqm"] == random_results["score"]["iqm"]


# --- the committed boards ---------------------------------------------------------------


def test_every_committed_entry_verifies() -> None:
    verified = verify_boards(COMMITTED)
    every = {"bandit", "darkroom", "darkroom-hard", "key-to-door", "watermaze"}
    assert {v.benchmark for v in verified} == every
    for entry in verified:
        assert entry.current_version
        if entry.model_id.startswith("ad-bench/"):
            assert entry.model_checked, entry  # weights and revision of baselines/models/


def test_committed_entries_name_clean_code_and_rank_within_one_version() -> None:
    for name in lb.board_names(COMMITTED):
        board = lb.load_board(COMMITTED, name)
        assert board.older == []
        assert {e["benchmark_version"] for e in board.entries} == {board.benchmark.version}
        for summary in board.summaries.values():
            assert summary["adbench_code"]["clean"] is True, summary["model"]["id"]
            assert not summary["adbench_git_revision"].endswith("-dirty")


def test_the_committed_readme_is_current_and_the_folder_is_small() -> None:
    assert (COMMITTED / "README.md").read_text() == render_readme(COMMITTED)
    tracked = [p for p in COMMITTED.rglob("*") if p.is_file() and not p.name.startswith(".")]
    assert sum(p.stat().st_size for p in tracked) <= 3 * 1024 * 1024
    assert not [p for p in tracked if p.suffix == ".png"]


# ---------------------------------------------------------------------------------------
# Training-seed groups.


def test_a_seed_group_of_one_model_reports_its_mean_return_at_each_mark() -> None:
    from adbench.leaderboards.seeds import markdown_table, seed_group

    group = seed_group(COMMITTED, "darkroom", "AD", ["ad-bench/ad-darkroom"], (1, 200, 1000))
    (path,) = (COMMITTED / "darkroom").glob("ad-bench__ad-darkroom-????????.runs.parquet")
    returns = np.stack(pq.read_table(path).column("returns").to_numpy(zero_copy_only=False))
    assert [m.episode for m in group.marks] == [1, 200, 1000]
    for mark in group.marks:
        # 16 tasks x 5 seeds: the mean over tasks of task means is the plain mean.
        assert mark.value == pytest.approx(returns[:, mark.episode - 1].mean(), abs=1e-6)
        assert mark.ci is None  # one seed: no interval over seeds
    assert [m.paper for m in group.marks] == [None, 9.6, 14.1]
    table = markdown_table([group])
    assert "| AD | 1 | 0.962 |" in table and "(paper 14.1)" in table


@pytest.mark.parametrize(
    ("models", "marks", "message"),
    [
        (["ad-bench/ad-darkroom", "random"], None, "mixes methods"),
        (["ad-bench/ad-darkroom", "ad-bench/ad-darkroom"], None, "names a model twice"),
        (["me/unknown"], None, "no entry"),
        (["ad-bench/ad-darkroom"], (0, 1001), "outside 1..1000"),
    ],
)
def test_a_bad_seed_group_is_refused(models: list[str], marks: Any, message: str) -> None:
    from adbench.leaderboards.seeds import seed_group

    with pytest.raises(AdbenchError, match=message):
        seed_group(COMMITTED, "darkroom", "G", models, marks)


def test_a_seed_group_of_two_trained_models_has_a_ci_over_seeds_and_tasks() -> None:
    from adbench.leaderboards.seeds import seed_group

    models = ["ad-bench/ad-darkroom", "ad-bench/ad-darkroom-seed1"]
    group = seed_group(COMMITTED, "darkroom", "AD", models, (1, 200), reps=500)
    per_model = []
    for model in models:
        stem = model.replace("/", "__")
        (path,) = (COMMITTED / "darkroom").glob(f"{stem}-????????.runs.parquet")
        per_model.append(
            np.stack(pq.read_table(path).column("returns").to_numpy(zero_copy_only=False))
        )
    for mark in group.marks:
        expected = [returns[:, mark.episode - 1].mean() for returns in per_model]
        assert mark.per_seed == pytest.approx(expected, abs=1e-6)
        assert mark.value == pytest.approx(np.mean(expected), abs=1e-6)
        low, high = mark.ci
        assert low <= mark.value <= high and high - low > 0
    # The same seed gives the same interval.
    again = seed_group(COMMITTED, "darkroom", "AD", models, (1, 200), reps=500)
    assert [m.ci for m in again.marks] == [m.ci for m in group.marks]


def _recorded_improvement(benchmark: str, model: str) -> float:
    stem = model.replace("/", "__")
    (path,) = (COMMITTED / benchmark).glob(f"{stem}-????????.json")
    return json.loads(path.read_text())["score"]["metrics"]["improvement"]["mean"]


def _improvement_per_task(benchmark: str, model: str) -> tuple[float, np.ndarray]:
    """The mean over runs of a model's in-context improvement, and its per-task means."""
    from adbench.evaluation.benchmarks import get_benchmark, runs_from_records
    from adbench.evaluation.evaluate import normalized_returns

    bench = get_benchmark(benchmark)
    stem = model.replace("/", "__")
    (path,) = (COMMITTED / benchmark).glob(f"{stem}-????????.runs.parquet")
    table = pq.read_table(path)
    returns = np.stack(table.column("returns").to_numpy(zero_copy_only=False))
    runs = runs_from_records(
        bench,
        np.asarray(table.column("split").to_pylist()),
        table.column("task_index").to_numpy(),
        table.column("seed").to_numpy(),
    )
    normalized = normalized_returns(bench, runs, returns)
    k = returns.shape[1] // 10
    improvement = normalized[:, -k:].mean(axis=1) - normalized[:, :k].mean(axis=1)
    tasks = np.unique(runs.task_key)
    per_task = np.array([improvement[runs.task_key == task].mean() for task in tasks])
    return float(improvement.mean()), per_task


def test_a_seed_groups_improvement_is_the_iqm_over_seeds_and_tasks() -> None:
    from adbench.evaluation.metrics import iqm
    from adbench.leaderboards.seeds import markdown_table, seed_group

    models = ["ad-bench/ad-darkroom", "ad-bench/ad-darkroom-seed1"]
    group = seed_group(COMMITTED, "darkroom", "AD", models, (1,), reps=500)
    per_model = [_improvement_per_task("darkroom", m) for m in models]
    # The curves, normalised as the benchmark does, give each entry's recorded improvement.
    for (mean_over_runs, _), model in zip(per_model, models, strict=True):
        assert mean_over_runs == pytest.approx(_recorded_improvement("darkroom", model), abs=1e-9)
    matrix = np.stack([per_task for _, per_task in per_model])  # [seeds, tasks]
    assert group.improvement is not None
    assert group.improvement.per_seed == pytest.approx([iqm(row) for row in matrix], abs=1e-9)
    assert group.improvement.value == pytest.approx(iqm(matrix), abs=1e-9)
    low, high = group.improvement.ci
    assert 0 < low <= group.improvement.value <= high  # AD improves in context on Dark Room
    assert (
        markdown_table([group])
        .rstrip()
        .endswith(f"| {group.improvement.value:.3f} [{low:.3f}, {high:.3f}] |")
    )
    # One model that does not learn: no interval, and about 0.
    flat = seed_group(COMMITTED, "darkroom", "random", ["random"], (1,)).improvement
    assert flat.ci is None and abs(flat.value) < 0.01
