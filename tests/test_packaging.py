"""adbench as a package: committed models carry the code they were scored with, the
declared package list is complete, and a wheel installed outside the checkout runs the
pipeline."""

from __future__ import annotations

import json
import os
import re
import site
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
from conftest import REPO_ROOT

from adbench.models.loading import MODEL_CODE_FILES, model_code_differences, sync_model_code

BASELINE_MODELS = sorted(p for p in (REPO_ROOT / "baselines" / "models").iterdir() if p.is_dir())


def _scored_revisions(model_id: str) -> set[str]:
    """The adbench commits the committed leaderboard entries of ``model_id`` were scored at."""
    revisions = set()
    for entry in (REPO_ROOT / "leaderboards").glob("*/*.json"):
        summary = json.loads(entry.read_text())
        if summary["model"]["id"] == model_id:
            revisions.add(summary["adbench_git_revision"])
    return revisions


@pytest.mark.parametrize("model_dir", BASELINE_MODELS, ids=lambda p: p.name)
def test_committed_models_carry_exactly_the_code_they_were_scored_with(model_dir: Path) -> None:
    # What a trust_remote_code user runs must be what the leaderboard ran: a scored model
    # keeps the adbench/models/ files of the commit its entries name (its revision, which
    # the entries pin, covers them); a model on no board carries the package's, which
    # `adbench models check-code --fix` writes.
    revisions = _scored_revisions(f"ad-bench/{model_dir.name}")
    if not revisions:
        assert model_code_differences(model_dir) == []
        return
    model_type = json.loads((model_dir / "config.json").read_text())["model_type"]
    for revision in revisions:
        for name in MODEL_CODE_FILES[model_type]:
            scored = subprocess.run(
                ["git", "-C", str(REPO_ROOT), "show", f"{revision}:adbench/models/{name}"],
                capture_output=True,
                check=True,
            ).stdout
            assert (model_dir / name).read_bytes() == scored, (model_dir.name, name, revision)


def test_committed_models_load_with_their_own_code_alone() -> None:
    # In a fresh interpreter that never imports adbench: transformers runs the shipped code,
    # and every weight of every model finds its parameter (no missing or unexpected keys).
    script = (
        "import json, sys\n"
        "from transformers import AutoModel\n"
        "for path in sys.argv[1:]:\n"
        "    model, info = AutoModel.from_pretrained(path, trust_remote_code=True,\n"
        "                                            output_loading_info=True)\n"
        "    assert 'adbench' not in sys.modules, 'adbench was imported'\n"
        "    bad = {k: v for k, v in info.items() if v}\n"
        "    print(json.dumps([path, type(model).__module__, bad]))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script, *map(str, BASELINE_MODELS)],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=Path(os.environ["HF_HOME"]).parent,  # not the checkout: `adbench` is not importable
        stdin=subprocess.DEVNULL,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    loaded = [json.loads(line) for line in result.stdout.splitlines() if line.startswith("[")]
    assert len(loaded) == len(BASELINE_MODELS)
    for path, module, problems in loaded:
        assert module.startswith("transformers_modules"), (path, module)  # the shipped code
        assert problems == {}, (path, problems)


def test_check_code_finds_and_fixes_a_stale_copy(tmp_path: Path, cli) -> None:
    import shutil

    model = tmp_path / "ad"
    shutil.copytree(REPO_ROOT / "baselines" / "models" / "ad-darkroom", model)
    sync_model_code(model)  # the baseline keeps the code it was scored with: start current
    weights = (model / "model.safetensors").read_bytes()
    (model / "modeling_ad.py").write_text("# an older copy\n")
    (model / "old_module.py").write_text("")
    assert model_code_differences(model) == ["modeling_ad.py", "old_module.py"]
    stale = cli("models", "check-code", str(model))
    assert stale.returncode == 2 and "--fix" in stale.stderr
    assert len(stale.stderr.strip().splitlines()) == 1
    assert sync_model_code(model) == ["modeling_ad.py", "old_module.py"]
    assert model_code_differences(model) == [] and not (model / "old_module.py").exists()
    assert (model / "model.safetensors").read_bytes() == weights
    assert set(MODEL_CODE_FILES["adbench_ad"]) == {p.name for p in model.glob("*.py")}


def test_the_declared_packages_are_every_package_in_the_tree() -> None:
    # pyproject.toml lists the packages explicitly (to map the data folders into the
    # package): a new subpackage must be listed, or wheels would silently lack it.
    config = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    declared = {p for p in config["packages"] if not p.startswith("adbench._data")}
    found = {
        ".".join(init.parent.relative_to(REPO_ROOT).parts)
        for init in (REPO_ROOT / "adbench").rglob("__init__.py")
    }
    assert declared == found
    for package, folder in config["package-dir"].items():
        assert (REPO_ROOT / folder).is_dir(), package


def _build_wheel(out: Path) -> Path:
    try:
        import setuptools  # noqa: F401

        isolation = ["--no-build-isolation"]  # build with this environment's setuptools
    except ImportError:
        isolation = []
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", *isolation, "-w", str(out), "."],
        cwd=REPO_ROOT,
        check=True,
        capture_output=True,
        timeout=300,
    )
    (wheel,) = out.glob("adbench-*.whl")
    return wheel


@pytest.mark.slow  # builds a wheel and a fresh venv: about 90 s; .ci/run runs it
def test_a_wheel_runs_the_pipeline_outside_the_checkout(tmp_path: Path) -> None:
    wheel = _build_wheel(tmp_path / "dist")
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=300)
    python = venv / "bin" / "python"
    subprocess.run(
        [str(python), "-m", "pip", "install", "--no-deps", "--no-index", str(wheel)],
        check=True,
        capture_output=True,
        timeout=300,
    )
    # The dependencies come from this test environment (installing torch and the rest again
    # would take minutes): its site-packages are appended to the new venv's path. Their .pth
    # files are not processed there, so this environment's editable adbench stays invisible
    # and only the wheel's copy can be imported.
    (purelib,) = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    (Path(purelib) / "_test_dependencies.pth").write_text("\n".join(site.getsitepackages()))
    work = tmp_path / "work"  # an empty directory, not the repository
    work.mkdir()
    env = {
        **os.environ,
        "ADBENCH_HUB": str(tmp_path / "hub"),
        "PYTHONPATH": "",
        "ADBENCH_LEADERBOARDS": "",
    }

    def adbench(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(venv / "bin" / "adbench"), *args],
            capture_output=True,
            text=True,
            cwd=work,
            env=env,
            timeout=600,
            stdin=subprocess.DEVNULL,
        )

    where = subprocess.run(
        [str(python), "-c", "import adbench; print(adbench.__file__)"],
        capture_output=True,
        text=True,
        cwd=work,
        env=env,
    )
    assert Path(where.stdout.strip()).is_relative_to(purelib), where

    steps = [
        ("datasets", "build", "darkroom", "--tasks", "4", "--learners", "2"),
        (
            "train",
            "ad",
            "--recipe",
            "ad-darkroom",  # by name: the wheel carries the recipes
            "--max-steps",
            "2",
            "--set",
            "batch_size=2",
            "--set",
            "hidden_size=16",
            "--set",
            "num_hidden_layers=1",
            "--output",
            "m",
        ),
        ("push", "m", "--repo", "me/tiny-ad"),
        ("evaluate", "--model", "me/tiny-ad", "--benchmark", "darkroom", "--episodes", "2"),
        ("evaluate", "--model", "random", "--benchmark", "darkroom", "--episodes", "2"),
        ("leaderboard", "show", "darkroom"),
    ]
    for step in steps:
        result = adbench(*step)
        assert result.returncode == 0, (step, result.stderr[-3000:])
    card = (tmp_path / "hub" / "datasets" / "ad-bench" / "darkroom" / "README.md").read_text()
    assert "adbench datasets build darkroom" in card  # rendered from the wheel's templates
    results = sorted((tmp_path / "hub" / "results" / "darkroom").glob("*.json"))
    recorded = json.loads(results[0].read_text())
    assert recorded["adbench_code"] == {
        "version": recorded["adbench_version"],
        "install": "package",
        "revision": None,
        "clean": None,
    }
    assert (work / "m" / "model.safetensors").exists()

    missing = adbench("train", "ad", "--recipe", "ad-nowhere", "--output", "x")
    assert missing.returncode == 2 and "ad-darkroom" in missing.stderr
    assert len(missing.stderr.strip().splitlines()) == 1 and not (work / "x").exists()

    import shutil

    shutil.rmtree(Path(purelib) / "adbench" / "_data" / "dataset_cards")
    broken = adbench("datasets", "build", "bandit", "--tasks", "2", "--episodes", "2")
    assert broken.returncode == 2, broken.stderr
    assert re.search(r"incomplete; reinstall it", broken.stderr)
    assert len(broken.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "hub" / "datasets" / "ad-bench" / "bandit").exists()
