"""``adbench leaderboard site``: the boards as a static web site.

One page per benchmark (the ranked table, sortable, with CIs, model revisions, dates and
links to each model card and results files; the in-context learning curves of any
selected entries, with 95% bands, against the random, optimal and source references),
and a landing page with every benchmark. Everything a page needs is in the output folder
and its data is inlined in the page, so the site works from ``file://``, from any static
host and as a static Hugging Face Space, with no server and no network.
"""

from __future__ import annotations

import contextlib
import functools
import http.server
import json
import shutil
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

import adbench
from adbench.errors import AdbenchError
from adbench.evaluation.results import curve_band, read_runs, runs_path
from adbench.fileio import atomic_write_text, check_writable_dir
from adbench.leaderboards.board import Board, board_names, load_board, ranked
from adbench.leaderboards.verify import model_dir_at_hand

ASSETS_DIR = Path(__file__).resolve().parent / "site_assets"
STATIC_ASSETS = ("leaderboard.js", "style.css")


def _environment() -> Any:
    import jinja2

    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(ASSETS_DIR),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
    )


def _script_json(data: Any) -> str:
    # Inline JSON in a <script> element: "</" would end the element early.
    return json.dumps(data, separators=(",", ":")).replace("</", "<\\/")


def _model_card(
    entry: dict[str, Any], output: Path, hub: str | Path | None, hub_url: str, env: Any
) -> str | None:
    """The link of an entry's model card: a page of the site when a local copy of the
    model has one, else the model's page on the hub; None for reference policies."""
    if entry["kind"] != "model":
        return None
    local = model_dir_at_hand(entry["model_id"], hub)
    if local is None or not (local / "README.md").is_file():
        return f"{hub_url.rstrip('/')}/{entry['model_id']}"
    name = entry["model_id"].replace("/", "__")
    page = output / "models" / f"{name}.html"
    if not page.exists():
        atomic_write_text(
            page,
            env.get_template("card.html.j2").render(
                root="../",
                benchmarks=[],
                adbench_version=adbench.__version__,
                model_id=entry["model_id"],
                revision=entry.get("model_revision") or "",
                card=(local / "README.md").read_text(encoding="utf-8"),
            ),
        )
    return f"models/{name}.html"


def _curve(summary: dict[str, Any], summary_path: Path) -> dict[str, list[float]]:
    """The mean return per episode over the scored runs, and its 95% band's half-width."""
    runs = read_runs(summary_path, summary)
    scored = np.isin(runs["split"], summary["benchmark"]["scored_splits"])
    mean, half = curve_band(runs["returns"][scored])
    return {"mean": np.round(mean, 4).tolist(), "half": np.round(half, 4).tolist()}


def board_data(
    board: Board, output: Path, hub: str | Path | None, hub_url: str, env: Any
) -> dict[str, Any]:
    """What a benchmark's page shows: its protocol, ranked entries and their curves."""
    results_dir = output / "results" / board.name
    results_dir.mkdir(parents=True, exist_ok=True)
    entries, curves = [], {}
    for entry in ranked(board.entries):
        summary = board.summaries[entry["id"]]
        source = board.directory / entry["results_file"]
        for path in (source, runs_path(source)):
            shutil.copyfile(path, results_dir / path.name)
        curves[entry["id"]] = _curve(summary, source)
        entries.append(
            {
                **{
                    key: entry[key]
                    for key in (
                        "id",
                        "rank",
                        "model_id",
                        "kind",
                        "model_revision",
                        "score_iqm",
                        "score_iqm_ci",
                        "final_iqm",
                        "improvement_iqm",
                        "improvement_ci",
                        "date",
                    )
                },
                "model_card": _model_card(entry, output, hub, hub_url, env),
                "results_summary": f"results/{board.name}/{source.name}",
                "results_runs": f"results/{board.name}/{runs_path(source).name}",
            }
        )
    bench = board.benchmark
    return {
        "benchmark": {
            "name": bench.name,
            "version": bench.version,
            "episodes": bench.episodes,
            "description": bench.description,
        },
        "entries": entries,
        "curves": curves,
    }


def build_site(
    directory: Path,
    output: Path,
    *,
    hub: str | Path | None = None,
    hub_url: str = "https://huggingface.co",
) -> Path:
    """Write the site of every board in ``directory`` into ``output``; returns the path
    of its landing page ``index.html``."""
    output = Path(output)
    if not hub_url.startswith(("http://", "https://")):
        raise AdbenchError(f"--hub-url {hub_url!r} must be an http:// or https:// URL")
    check_writable_dir(output, "--output")
    boards = [load_board(directory, name) for name in board_names(directory)]  # read all first
    env = _environment()
    (output / "assets").mkdir(parents=True, exist_ok=True)
    for name in STATIC_ASSETS:
        shutil.copyfile(ASSETS_DIR / name, output / "assets" / name)
    listed = []
    for board in boards:
        rows = ranked(board.entries)
        models = [row for row in rows if row["kind"] == "model"]
        listed.append(
            {
                "name": board.name,
                "version": board.benchmark.version,
                "description": board.benchmark.description,
                "num_entries": len(rows),
                "best": models[0] if models else None,
            }
        )
    common = {"root": "", "benchmarks": listed, "adbench_version": adbench.__version__}
    for board in boards:
        data = board_data(board, output, hub, hub_url, env)
        page = env.get_template("board.html.j2").render(
            **common,
            benchmark=board.benchmark,
            older=board.older,
            data_json=_script_json(data),
        )
        atomic_write_text(output / f"{board.name}.html", page)
    index = output / "index.html"
    atomic_write_text(index, env.get_template("index.html.j2").render(**common))
    return index


@contextlib.contextmanager
def serving(root: Path, host: str = "127.0.0.1", port: int = 0) -> Iterator[str]:
    """Serve the folder ``root`` over HTTP in a background thread; yields its URL."""

    class QuietHandler(http.server.SimpleHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            pass

    handler = functools.partial(QuietHandler, directory=str(root))
    try:
        server = http.server.ThreadingHTTPServer((host, port), handler)
    except OSError as error:
        raise AdbenchError(
            f"cannot listen on {host}:{port} ({error.strerror or error}); pick another --port "
            "(0 picks a free one) or --host"
        ) from error
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://{host}:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()
