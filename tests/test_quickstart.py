"""The README's main job, end to end. About 8 minutes on 2 cores: marked slow, so the
default test run skips it; run it with ``pytest -m slow``."""

from __future__ import annotations

from pathlib import Path

import pytest

from adbench.leaderboards.board import load_board


@pytest.mark.slow
def test_quickstart_end_to_end(tmp_path: Path, cli) -> None:
    result = cli(
        "quickstart",
        "--hub",
        str(tmp_path / "hub"),
        "--output",
        str(tmp_path / "run"),
        timeout=3600,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    board = load_board(tmp_path / "hub" / "leaderboards", "darkroom")
    ids = [e["model_id"] for e in board.entries]
    # Ranked against the committed baselines, which the quickstart's board starts from.
    assert {"random", "optimal", "local/ad-darkroom-quickstart", "ad-bench/ad-darkroom"} <= set(ids)
    ad = next(e for e in board.entries if e["model_id"] == "local/ad-darkroom-quickstart")
    assert ad["improvement_iqm"] > 0  # it learns in context
    assert "local/ad-darkroom-quickstart" in result.stdout
