"""Any model can be submitted: a model written outside adbench (examples/gru_policy/) is
pushed with its code and scored by ``adbench evaluate --trust-remote-code`` in fresh
processes, and a model that breaks the policy contract is refused in one line before any
rollout."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import torch
from conftest import REPO_ROOT, run_cli
from torch import nn

from adbench.envs import get_family
from adbench.errors import AdbenchError
from adbench.evaluation.policies import InContextModel, check_model_contract

EXAMPLE = REPO_ROOT / "examples" / "gru_policy"


@pytest.fixture(scope="module")
def example_model(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A tiny darkroom dataset, and the example trained on it for a few steps by its own
    script, in a fresh process."""
    root = tmp_path_factory.mktemp("submit")
    hub = root / "hub"
    build = run_cli(
        "datasets", "build", "darkroom", "--tasks", "4", "--learners", "2",
        "--episodes", "100", "--hub", str(hub),
    )  # fmt: skip
    assert build.returncode == 0, build.stderr
    trained = subprocess.run(
        [sys.executable, str(EXAMPLE / "train.py"), "--hub", str(hub), "--output",
         str(root / "gru"), "--steps", "20", "--window", "40"],
        capture_output=True, text=True, stdin=subprocess.DEVNULL, timeout=300,
    )  # fmt: skip
    assert trained.returncode == 0, trained.stderr
    return {"root": root, "hub": hub, "model": root / "gru"}


def test_the_example_model_is_scored_by_the_harness_in_a_fresh_process(
    example_model: dict[str, Path],
) -> None:
    root, hub = example_model["root"], example_model["hub"]
    saved = sorted(p.name for p in example_model["model"].iterdir())
    assert saved == [
        "config.json", "configuration_gru_policy.py", "model.safetensors",
        "modeling_gru_policy.py",
    ]  # fmt: skip
    pushed = run_cli("push", str(example_model["model"]), "--repo", "me/gru", "--hub", str(hub))
    assert pushed.returncode == 0, pushed.stderr
    base = ["evaluate", "--model", "me/gru", "--hub", str(hub), "--episodes", "3", "--seeds", "1"]
    refused = run_cli(*base, "--output", str(root / "refused"), cwd=root)
    assert refused.returncode == 2
    assert "--trust-remote-code" in refused.stderr and not (root / "refused").exists()
    # The evaluating process has never seen the example: it runs from an empty directory,
    # and the code it runs is the copy shipped in the hub.
    scored = run_cli(*base, "--trust-remote-code", "--output", str(root / "results"), cwd=root)
    assert scored.returncode == 0, scored.stderr
    (summary_path,) = (root / "results" / "darkroom").glob("*.json")
    summary = json.loads(summary_path.read_text())
    assert summary["model"]["id"] == "me/gru"
    assert summary["model"]["model_type"] == "example_gru_policy"
    assert summary["protocol"]["episodes"] == 3
    assert -1.0 <= summary["score"]["iqm"] <= 1.0
    assert "gru_policy" not in " ".join(sys.modules)  # nor has this test process


def test_a_pushed_model_that_breaks_the_contract_is_refused_before_any_rollout(
    example_model: dict[str, Path],
) -> None:
    root, hub = example_model["root"], example_model["hub"]
    broken = root / "broken"
    shutil.copytree(example_model["model"], broken)
    modeling = broken / "modeling_gru_policy.py"
    text = modeling.read_text()
    good = "return self.head(hidden[:, 0]), context"
    assert good in text
    modeling.write_text(text.replace(good, "return self.head(hidden[:, 0])[:, :2], context"))
    assert run_cli("push", str(broken), "--repo", "me/broken", "--hub", str(hub)).returncode == 0
    result = run_cli(
        "evaluate", "--model", "me/broken", "--hub", str(hub), "--trust-remote-code",
        "--output", str(root / "broken-results"), cwd=root,
    )  # fmt: skip
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "me/broken breaks the adbench policy contract: logits of shape [2, 2]" in lines[0]
    assert "expected [batch, num_actions] = [2, 5]" in lines[0]
    assert not (root / "broken-results").exists()


# ---------------------------------------------------------------------------------------
# The contract, clause by clause, on small models defined here (as a submitter would).


class Submitted(nn.Module):
    """A GRU-free submitted model whose act_logits misbehaves as ``mode`` says."""

    def __init__(self, mode: str, num_actions: int = 5) -> None:
        super().__init__()
        self.mode = mode
        self.num_actions = num_actions
        self.head = nn.Linear(1, num_actions)

    def new_context(self, batch_size: int) -> Any:
        if self.mode == "new_context raises":
            raise RuntimeError("no context for you")
        return torch.zeros(batch_size, 1)

    def act_logits(self, context: Any, observations: torch.Tensor, *rest: torch.Tensor) -> Any:
        logits = self.head(context)
        if self.mode == "good":
            return logits, context + 1
        if self.mode == "logits only":
            return logits
        if self.mode == "integer logits":
            return logits.long(), context
        if self.mode == "numpy logits":
            return logits.numpy(), context
        if self.mode == "nan":
            return logits * float("nan"), context
        if self.mode == "second step breaks":
            if context.sum() > 0:
                return logits[:, :3], context
            return logits, context + 1
        if self.mode == "raises":
            raise IndexError("index 9 is out of bounds")
        raise AssertionError(self.mode)


@pytest.mark.parametrize(
    ("mode", "message"),
    [
        ("new_context raises", "new_context(2) raised RuntimeError: no context for you"),
        ("logits only", "must return (logits, context), got Tensor"),
        ("integer logits", "logits must be a floating torch tensor, got torch.int64"),
        ("numpy logits", "logits must be a floating torch tensor, got ndarray"),
        ("nan", "logits hold nan or inf at a first step"),
        ("second step breaks", "logits of shape [2, 3] at a second step"),
        ("raises", "act_logits raised IndexError at a first step: index 9 is out of bounds"),
    ],
)
def test_each_breach_of_the_contract_is_one_line(mode: str, message: str) -> None:
    family = get_family("darkroom")
    with pytest.raises(AdbenchError) as caught:
        check_model_contract(Submitted(mode), family, "me/model")
    text = str(caught.value)
    assert text.startswith("me/model breaks the adbench policy contract: ")
    assert message in text and "\n" not in text


def test_a_model_that_keeps_the_contract_passes_and_is_an_in_context_model() -> None:
    model = Submitted("good")
    check_model_contract(model, get_family("darkroom"), "me/model")
    model.config = None
    assert isinstance(model, InContextModel)
    assert not isinstance(nn.Linear(1, 1), InContextModel)
