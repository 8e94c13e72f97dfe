"""The web leaderboard, built from the committed boards and checked in a real headless
Chromium (Debian's chromium, driven by Playwright): the rows match the boards, the curves
are drawn, sorting works, and the pages log no errors, from file:// and over HTTP."""

from __future__ import annotations

import os
import shutil
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import REPO_ROOT

from adbench.leaderboards.board import board_names, load_board, ranked
from adbench.leaderboards.site import build_site, serving

COMMITTED = REPO_ROOT / "leaderboards"
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
# CI installs Chromium and sets this, so that the browser tests can never be skipped there.
REQUIRED = os.environ.get("ADBENCH_REQUIRE_BROWSER") == "1"


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    output = tmp_path_factory.mktemp("site")
    build_site(COMMITTED, output)
    return output


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    if CHROMIUM is None:
        if REQUIRED:
            pytest.fail("Chromium is not installed: apt-get install chromium")
        pytest.skip("Chromium is not installed (apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM,
            headless=True,
            args=[
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
            ],
        )
        yield browser
        browser.close()


def _open(browser: Any, url: str) -> tuple[Any, list[str]]:
    page = browser.new_page(viewport={"width": 1280, "height": 1000})
    errors: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.goto(url)
    page.wait_for_selector("#board tbody tr")
    return page, errors


def _row_ids(page: Any) -> list[str]:
    return page.eval_on_selector_all("#board tbody tr", "rows => rows.map(r => r.dataset.entryId)")


def test_the_site_has_every_board_and_its_files(site: Path) -> None:
    names = board_names(COMMITTED)
    assert names == ["bandit", "darkroom", "darkroom-hard", "key-to-door", "watermaze"]
    for name in names:
        assert (site / f"{name}.html").is_file()
        board = load_board(COMMITTED, name)
        for entry in board.entries:
            assert (site / "results" / entry["results_file"]).is_file()
    cards = sorted(p.name for p in (site / "models").iterdir())
    assert "ad-bench__ad-darkroom.html" in cards  # the model card, from baselines/models/


@pytest.mark.parametrize(
    "name", ["bandit", "darkroom", "darkroom-hard", "key-to-door", "watermaze"]
)
def test_a_board_page_renders_sorts_and_draws_curves(site: Path, browser: Any, name: str) -> None:
    board = load_board(COMMITTED, name)
    expected = ranked(board.entries)
    page, errors = _open(browser, (site / f"{name}.html").as_uri())
    assert _row_ids(page) == [e["id"] for e in expected]  # best first, as the board
    first_model = next(e for e in expected if e["kind"] == "model")
    row = page.locator(f'#board tr[data-entry-id="{first_model["id"]}"]')
    assert first_model["model_id"] in row.inner_text()
    assert f"{first_model['score_iqm']:.3f}" in row.inner_text()

    # The references and the top models are drawn, each with its confidence band.
    default = [e for e in expected if e["kind"] == "reference" or (e["rank"] or 99) <= 3]
    curves = page.eval_on_selector_all("#curves path.curve", "ps => ps.map(p => p.dataset.entryId)")
    assert sorted(curves) == sorted(e["id"] for e in default)
    assert page.locator("#curves polygon.band").count() == len(default)
    lengths = page.eval_on_selector_all(
        "#curves path.curve", "ps => ps.map(p => p.getTotalLength())"
    )
    assert all(length > 100 for length in lengths)  # real lines across the chart

    # Ticking an entry draws it; unticking removes it.
    hidden = [e for e in expected if e not in default]
    if hidden:
        box = page.locator(f'#board tr[data-entry-id="{hidden[0]["id"]}"] input')
        box.check()
        assert page.locator("#curves path.curve").count() == len(default) + 1
        box.uncheck()
        assert page.locator("#curves path.curve").count() == len(default)

    # Sorting: by final score ascending, then descending; by model name.
    header = page.locator('#board th[data-key="final_iqm"]')
    header.click()
    finals = page.eval_on_selector_all(
        "#board tbody tr td:nth-child(5)", "cells => cells.map(c => Number(c.textContent))"
    )
    assert finals == sorted(finals, reverse=True)
    assert header.get_attribute("aria-sort") == "descending"
    header.click()
    finals = page.eval_on_selector_all(
        "#board tbody tr td:nth-child(5)", "cells => cells.map(c => Number(c.textContent))"
    )
    assert finals == sorted(finals)
    page.locator('#board th[data-key="model_id"]').click()
    models = page.eval_on_selector_all(
        "#board tbody tr td:nth-child(3) a, #board tbody tr td:nth-child(3)",
        "cells => cells.filter(c => c.tagName === 'TD').map(c => c.firstChild.textContent)",
    )
    assert models == sorted(models)
    page.screenshot(path=str(site / f"{name}.png"), full_page=True)
    assert errors == []
    page.close()


def test_the_landing_page_lists_every_benchmark_over_http(site: Path, browser: Any) -> None:
    with serving(site) as url:
        with urllib.request.urlopen(url + "index.html") as response:
            assert response.status == 200
        page = browser.new_page()
        errors: list[str] = []
        page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        page.goto(url + "index.html")
        rows = page.eval_on_selector_all(
            "#benchmarks tbody tr", "rows => rows.map(r => r.dataset.benchmark)"
        )
        assert rows == board_names(COMMITTED)
        page.click("text=darkroom-hard")
        page.wait_for_selector("#curves path.curve", state="attached")
        assert page.url.endswith("darkroom-hard.html")
        assert errors == []
        page.close()


def test_leaderboard_serve_serves_the_site(tmp_path: Path) -> None:
    import re
    import signal
    import subprocess
    import sys

    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "adbench",
            "leaderboard",
            "serve",
            "--port",
            "0",
            "--leaderboards",
            str(COMMITTED),
            "--output",
            str(tmp_path / "site"),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        stdin=subprocess.DEVNULL,
    )
    try:
        line = server.stdout.readline()
        match = re.search(r"http://127\.0\.0\.1:\d+/", line)
        assert match, (line, server.stderr.read() if server.poll() is not None else "")
        with urllib.request.urlopen(match.group(0) + "darkroom.html") as response:
            page = response.read().decode()
        assert response.status == 200 and "window.ADBENCH_BOARD" in page
    finally:
        server.send_signal(signal.SIGINT)
        try:
            server.wait(timeout=120)  # a loaded CI machine is slow to stop a process
        except subprocess.TimeoutExpired:
            server.kill()
            out, err = server.communicate()
            pytest.fail(
                f"the server did not stop on Ctrl-C; stdout {out!r}; stderr {err[-2000:]!r}"
            )
