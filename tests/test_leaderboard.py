"""Leaderboard files: round trip, ranking, reference replacement, locking, corruption, README."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console

from adbench.errors import AdbenchError
from adbench.evaluation import leaderboard as lb

REPO_ROOT = Path(__file__).resolve().parents[1]


def make_entry(model_id: str = "org/ad-darkroom", score: float = 0.5, **overrides: Any) -> dict:
    entry = {
        "model_id": model_id,
        "model_revision": "0123456789abcdef0123456789abcdef01234567",
        "kind": "model",
        "score_iqm": score,
        "score_iqm_ci": [score - 0.04, score + 0.04],
        "final_iqm": score + 0.1,
        "improvement_iqm": 0.3,
        "episodes": 1000,
        "seeds": 5,
        "date": "2025-11-21T12:00:00+00:00",
        "results_file": None,
        "benchmark_version": "1.0",
        "adbench_version": "0.1.0",
        "decoding": "sample",
    }
    entry.update(overrides)
    return entry


def reference(model_id: str, score: float, **overrides: Any) -> dict:
    return make_entry(model_id, score, kind="reference", model_revision=None, **overrides)


def test_missing_board_is_empty(tmp_path: Path) -> None:
    board = lb.load_leaderboard(tmp_path / "leaderboards", "darkroom")
    assert board == {"schema": "adbench-leaderboard/1", "benchmark": "darkroom", "entries": []}
    assert not (tmp_path / "leaderboards").exists()


def test_submit_then_load_round_trips(tmp_path: Path) -> None:
    entry = make_entry(results_file=str(tmp_path / "results" / "darkroom" / "x.json"))
    stored = lb.submit(tmp_path / "leaderboards", "darkroom", entry)
    assert len(stored["id"]) == 32  # uuid4 hex
    # Inside the leaderboards folder's parent: stored relative to it.
    assert stored["results_file"] == "results/darkroom/x.json"
    board = lb.load_leaderboard(tmp_path / "leaderboards", "darkroom")
    assert board["schema"] == "adbench-leaderboard/1"
    assert board["benchmark"] == "darkroom"
    assert board["entries"] == [stored]
    assert {k: v for k, v in stored.items() if k not in ("id", "results_file")} == {
        k: v for k, v in entry.items() if k != "results_file"
    }
    on_disk = json.loads((tmp_path / "leaderboards" / "darkroom.json").read_text())
    assert on_disk == board
    # A given id and date are kept; outside results paths too.
    kept = lb.submit(
        tmp_path / "leaderboards",
        "darkroom",
        make_entry(id="abc", results_file="/elsewhere/r.json") | {"date": "2024-01-02"},
    )
    assert (kept["id"], kept["date"], kept["results_file"]) == (
        "abc",
        "2024-01-02",
        "/elsewhere/r.json",
    )


def test_submit_fills_date_and_rejects_bad_entries(tmp_path: Path) -> None:
    entry = make_entry()
    del entry["date"]
    stored = lb.submit(tmp_path, "bandit", entry)
    assert stored["date"].endswith("+00:00")
    with pytest.raises(AdbenchError, match="lacks score_iqm"):
        lb.submit(tmp_path, "bandit", {k: v for k, v in make_entry().items() if k != "score_iqm"})
    with pytest.raises(AdbenchError, match="kind must be"):
        lb.submit(tmp_path, "bandit", make_entry(kind="baseline"))
    with pytest.raises(AdbenchError, match="score_iqm_ci"):
        lb.submit(tmp_path, "bandit", make_entry(score_iqm_ci=[0.1]))
    with pytest.raises(AdbenchError, match="exists"):
        lb.submit(tmp_path, "bandit", make_entry(id=stored["id"]))
    with pytest.raises(AdbenchError, match="invalid benchmark name"):
        lb.submit(tmp_path, "../escape", make_entry())
    assert len(lb.load_leaderboard(tmp_path, "bandit")["entries"]) == 1


def test_ranking_order(tmp_path: Path) -> None:
    for entry in (
        make_entry("b", 0.60),
        reference("optimal", 1.0),
        make_entry("a", 0.80),
        reference("random", 0.0),
        make_entry("c", 0.60, final_iqm=0.9),  # ties with b on score, better final
        make_entry("d", 0.10),
    ):
        lb.submit(tmp_path, "darkroom", entry)
    rows = lb.ranked(lb.load_leaderboard(tmp_path, "darkroom"))
    assert [(r["model_id"], r["rank"]) for r in rows] == [
        ("optimal", None),
        ("a", 1),
        ("c", 2),
        ("b", 3),
        ("d", 4),
        ("random", None),
    ]


def test_reference_replacement(tmp_path: Path) -> None:
    lb.submit(tmp_path, "darkroom", reference("random", 0.01))
    lb.submit(tmp_path, "darkroom", reference("optimal", 1.0))
    newer = lb.submit(tmp_path, "darkroom", reference("random", 0.02))
    other_version = lb.submit(
        tmp_path, "darkroom", reference("random", 0.03, benchmark_version="2.0")
    )
    first = lb.submit(tmp_path, "darkroom", make_entry("m", 0.5))
    second = lb.submit(tmp_path, "darkroom", make_entry("m", 0.5))  # models are never replaced
    entries = lb.load_leaderboard(tmp_path, "darkroom")["entries"]
    randoms = [e for e in entries if e["model_id"] == "random"]
    assert sorted(e["id"] for e in randoms) == sorted([newer["id"], other_version["id"]])
    assert [e["model_id"] for e in entries].count("optimal") == 1
    assert {first["id"], second["id"]} <= {e["id"] for e in entries}
    assert len(entries) == 5


_WORKER = """
import json, sys
from pathlib import Path
from adbench.evaluation.leaderboard import submit
directory, count, name, template = sys.argv[1:5]
for i in range(int(count)):
    submit(Path(directory), "darkroom", {**json.loads(template), "model_id": f"{name}-{i}"})
"""


def test_concurrent_process_submissions_are_all_kept(tmp_path: Path) -> None:
    count = 20
    template = json.dumps(make_entry())
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", _WORKER, str(tmp_path), str(count), f"proc-{n}", template],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            cwd=REPO_ROOT,
        )
        for n in range(2)
    ]
    for proc in procs:
        _, err = proc.communicate(timeout=300)
        assert proc.returncode == 0, err
    entries = lb.load_leaderboard(tmp_path, "darkroom")["entries"]
    assert sorted(e["model_id"] for e in entries) == sorted(
        f"proc-{n}-{i}" for n in range(2) for i in range(count)
    )
    assert len({e["id"] for e in entries}) == 2 * count
    leftovers = [p.name for p in tmp_path.iterdir() if p.name != "darkroom.json"]
    assert leftovers == [".darkroom.lock"]  # no temporary files left behind


def test_concurrent_thread_submissions_are_all_kept(tmp_path: Path) -> None:
    errors: list[BaseException] = []

    def work(n: int) -> None:
        try:
            for i in range(15):
                lb.submit(tmp_path, "darkroom", make_entry(f"thread-{n}-{i}", 0.5))
        except BaseException as error:  # pragma: no cover - reported below
            errors.append(error)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors
    assert len(lb.load_leaderboard(tmp_path, "darkroom")["entries"]) == 60


@pytest.mark.parametrize(
    ("content", "detail"),
    [
        (b'{"schema": "adbench-leaderboard/1", "benchmark": "darkroom", "entries": [', "invalid"),
        (b"\xff\xfe not utf-8", "invalid JSON"),
        (b'{"schema": "adbench-leaderboard/9", "benchmark": "darkroom", "entries": []}', "schema"),
        (b'{"schema": "adbench-leaderboard/1", "benchmark": "bandit", "entries": []}', "bandit"),
        (b'{"schema": "adbench-leaderboard/1", "benchmark": "darkroom"}', "entries"),
        (b"[]", "not an object"),
    ],
)
def test_corrupted_board_is_never_overwritten(tmp_path: Path, content: bytes, detail: str) -> None:
    path = tmp_path / "darkroom.json"
    path.write_bytes(content)
    with pytest.raises(AdbenchError, match="not overwritten") as info:
        lb.load_leaderboard(tmp_path, "darkroom")
    assert str(path) in str(info.value) and detail in str(info.value)
    assert "\n" not in str(info.value)
    with pytest.raises(AdbenchError, match="corrupted"):
        lb.submit(tmp_path, "darkroom", make_entry())
    with pytest.raises(AdbenchError, match="corrupted"):
        lb.write_readme(tmp_path)
    assert path.read_bytes() == content
    assert not (tmp_path / "README.md").exists()


def test_entry_missing_key_is_corruption(tmp_path: Path) -> None:
    lb.submit(tmp_path, "darkroom", make_entry())
    path = tmp_path / "darkroom.json"
    board = json.loads(path.read_text())
    del board["entries"][0]["seeds"]
    path.write_text(json.dumps(board))
    content = path.read_bytes()
    with pytest.raises(AdbenchError, match="lacks seeds"):
        lb.submit(tmp_path, "darkroom", make_entry())
    assert path.read_bytes() == content


def test_render_table(tmp_path: Path) -> None:
    lb.submit(tmp_path, "darkroom", make_entry("org/ad", 0.83, score_iqm_ci=[0.79, 0.87]))
    lb.submit(tmp_path, "darkroom", reference("random", 0.0, score_iqm_ci=[0.0, 0.0]))
    console = Console(record=True, width=200)
    table = lb.render_table(lb.load_leaderboard(tmp_path, "darkroom"), console)
    text = console.export_text()
    assert "0.83 [0.79, 0.87]" in text
    assert "org/ad@01234567" in text
    assert "random (reference)" in text
    assert [c.header for c in table.columns] == list(lb._COLUMNS)
    assert [row.style for row in table.rows] == [None, "dim italic"]

    empty = Console(record=True, width=200)
    lb.render_table(lb.load_leaderboard(tmp_path, "bandit"), empty)
    assert "no entries yet" in empty.export_text()


def test_readme_lists_every_entry(tmp_path: Path) -> None:
    entries = {
        "darkroom": [
            make_entry("org/ad-darkroom", 0.83, score_iqm_ci=[0.79, 0.87]),
            make_entry("org/rl2|pipe", 0.41),
            reference("random", 0.0),
            reference("optimal", 1.0),
        ],
        "bandit": [make_entry("org/ad-bandit", 0.66), reference("source", 1.0)],
    }
    for benchmark, items in entries.items():
        for entry in items:
            lb.submit(tmp_path, benchmark, entry)
    path = lb.write_readme(tmp_path)
    assert path == tmp_path / "README.md"
    text = path.read_text()
    assert text == lb.render_readme(tmp_path)
    assert text.index("## bandit") < text.index("## darkroom")
    assert "(R - random) / (reference - random)" in text
    assert "stratified-bootstrap" in text
    assert "adbench evaluate --model ID --benchmark NAME --submit" in text
    assert (
        "| 1 | `org/ad-darkroom@01234567` | 0.83 [0.79, 0.87] | 0.93 | 0.30 | 1000 | 2025-11-21 |"
        in text
    )
    assert "org/rl2\\|pipe" in text
    for model_id in ("random", "optimal", "source"):
        assert f"*{model_id} (reference)*" in text
    assert "org/ad-bandit" in text
    rows = [line for line in text.splitlines() if line.startswith("| ") and "---" not in line]
    assert len(rows) == 6 + 2  # every entry + one header per board
    # Regenerating is deterministic.
    lb.write_readme(tmp_path)
    assert path.read_text() == text


def test_readme_without_boards(tmp_path: Path) -> None:
    assert "No leaderboards yet." in lb.render_readme(tmp_path)
