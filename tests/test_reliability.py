"""Reliability: every bad value a user can give is one line and exit status 2 with nothing
written; a failed step leaves the hub, the boards and the output folders as they were;
concurrent runs never collide; a stalled client cannot hold the hub server.

The option and key tests walk the real command tree and the real argument dataclasses, so
an option or a recipe key added later without a range or a check fails here.
"""

from __future__ import annotations

import contextlib
import inspect
import json
import multiprocessing
import multiprocessing.forkserver
import os
import shlex
import shutil
import socket
import subprocess
import time
import typing
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import torch
import typer
import yaml
from conftest import run_cli_here, tiny_bandit_model
from pydantic import TypeAdapter

from adbench.cli import app
from adbench.fileio import TEMP_PREFIX, atomic_path
from adbench.hub_server import MIN_UPLOAD_BYTES_PER_S, serving
from adbench.leaderboards.board import load_board
from adbench.models.publishing import publish_model
from adbench.sources import SOURCES, get_source_class
from adbench.training.train_ad import ADTrainArgs
from adbench.training.train_rl2 import RL2Args

UNREACHABLE = "http://127.0.0.1:9"  # the discard port: connection refused at once


# ---------------------------------------------------------------------------------------
# The workspace every failing command runs in, and the proof that it wrote nothing.


@pytest.fixture(scope="module")
def ws(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("reliability")
    model = root / "model"
    tiny_bandit_model().save_pretrained(model)
    hub = root / "hub"
    publish_model(model, "me/tiny", hub=hub)
    a_file = root / "a-file.txt"
    a_file.write_text("not a directory\n")
    a_dir_json = root / "a-dir.json"
    a_dir_json.mkdir()
    corrupt_boards = root / "corrupt-boards"
    (corrupt_boards / "bandit").mkdir(parents=True)
    (corrupt_boards / "bandit" / "someone-0123abcd.json").write_text("{ not json")
    not_a_mapping = root / "list.yaml"
    not_a_mapping.write_text("- 1\n- 2\n")
    for name, config in {
        "config-list": [1, 2],
        "config-no-type": {"hidden_size": 8},
        "config-bad-value": {**json.loads((model / "config.json").read_text()), "hidden_size": "x"},
    }.items():
        shutil.copytree(model, root / name)
        (root / name / "config.json").write_text(json.dumps(config))
    return {
        "root": root,
        "model": model,
        "hub": hub,
        "file": a_file,
        "dir_json": a_dir_json,
        "boards": root / "boards",
        "corrupt_boards": corrupt_boards,
        "not_a_mapping": not_a_mapping,
        "out": root / "out",
    }


def snapshot(root: Path) -> dict[str, tuple[int, ...]]:
    """Every file and directory under ``root`` (hidden ones too), files with size and
    mtime (a directory's mtime moves when a temporary entry comes and goes)."""
    return {
        str(p.relative_to(root)): (p.stat().st_size, p.stat().st_mtime_ns) if p.is_file() else ()
        for p in sorted(root.rglob("*"))
    }


def assert_one_line_refusal(result: Any, *expected: str) -> None:
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 2, (result.returncode, result.stderr, result.stdout[-500:])
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    assert "internal error" not in result.stderr and "Traceback" not in result.stderr
    for text in expected:
        assert text in lines[0], (text, lines[0])


def refused_without_writes(ws: dict[str, Path], args: list[str], *expected: str) -> None:
    before = snapshot(ws["root"])
    result = run_cli_here(*args, cwd=ws["root"])
    assert_one_line_refusal(result, *expected)
    assert snapshot(ws["root"]) == before, "a refused command changed the workspace"


# ---------------------------------------------------------------------------------------
# Every option of every command.


def cli_commands() -> list[tuple[tuple[str, ...], Any]]:
    found = []

    def walk(command: Any, path: tuple[str, ...]) -> None:
        if hasattr(command, "commands"):
            for name, sub in command.commands.items():
                walk(sub, (*path, name))
        else:
            found.append((path, command))

    walk(typer.main.get_command(app), ())
    return found


def parameters() -> list[tuple[tuple[str, ...], Any, Any]]:
    """(command path, parameter, annotation) of every option and argument."""
    rows = []
    for path, command in cli_commands():
        hints = typing.get_type_hints(inspect.unwrap(command.callback))
        for param in command.params:
            if param.name != "help":
                rows.append((path, param, hints[param.name]))
    return rows


def param_range(param: Any) -> tuple[float | None, float | None]:
    low = getattr(param, "min", None)
    high = getattr(param, "max", None)
    kind = getattr(param, "type", None)  # click's IntRange/FloatRange (Typer < 0.26)
    return (low if low is not None else getattr(kind, "min", None)), (
        high if high is not None else getattr(kind, "max", None)
    )


# Arguments that make each command valid apart from the option under test.
BASE_ARGS: dict[tuple[str, ...], list[str]] = {
    ("push",): ["{model}", "--repo", "me/other", "--hub", "{hub}"],
    ("evaluate",): ["--model", "random", "--benchmark", "bandit", "--output", "{out}"],
    ("datasets", "build"): ["darkroom", "--hub", "{hub}"],
    ("datasets", "show"): ["ad-bench/darkroom", "--hub", "{hub}"],
    ("datasets", "push"): ["ad-bench/darkroom", "--hub", "{hub}"],
    ("datasets", "pull"): ["ad-bench/darkroom", "--hub", "{hub}"],
    ("train", "ad"): ["--output", "{out}", "--hub", "{hub}"],
    ("train", "ed"): ["--output", "{out}", "--hub", "{hub}"],
    ("train", "rl2"): ["--output", "{out}"],
    ("models", "check-code"): ["{model}"],
    ("leaderboard", "submit"): ["{file}"],
    ("leaderboard", "site"): ["--output", "{out}"],
}


def fill(args: list[str] | str, ws: dict[str, Path]) -> list[str]:
    """A command line with ``{name}`` standing for the workspace's paths."""
    parts = shlex.split(args) if isinstance(args, str) else args
    values = {k: str(v) for k, v in ws.items()} | {"unreachable": UNREACHABLE}
    return [part.format(**values) for part in parts]


NUMERIC = [
    pytest.param(path, param, hint, id=" ".join(path) + " " + param.opts[0])
    for path, param, hint in parameters()
    if hint in (int, float)
]


@pytest.mark.parametrize(("path", "param", "hint"), NUMERIC)
def test_every_numeric_option_refuses_a_wrong_type_and_an_out_of_range_value(
    ws: dict[str, Path], path: tuple[str, ...], param: Any, hint: type
) -> None:
    option = param.opts[0]
    low, high = param_range(param)
    assert low is not None or high is not None, f"{option} of {' '.join(path)} has no range"
    base = [*path, *fill(BASE_ARGS.get(path, []), ws)]
    refused_without_writes(ws, [*base, option, "abc"], option)
    if low is not None:
        below = low - 1 if hint is int else low - 0.5
        refused_without_writes(ws, [*base, option, str(below)], option)
    if high is not None:
        refused_without_writes(ws, [*base, option, str(high + 1)], option)


# Bad values of every text option and argument: (command line, text its one error line holds).
TEXT_CASES: dict[tuple[tuple[str, ...], str], list[tuple[str, str]]] = {
    (("push",), "directory"): [
        ("push {root}/nope --repo me/x --hub {hub}", "does not exist"),
        ("push {root} --repo me/x --hub {hub}", "no config.json"),
    ],
    (("push",), "repo"): [
        ("push {model} --repo me/../x", "invalid repo id"),
    ],
    (("push",), "hub"): [
        ("push {model} --repo me/x --hub {file}", "is a file"),
    ],
    (("push",), "endpoint"): [
        ("push {model} --repo me/x --hub {hub} --endpoint ftp://x", "http"),
        ("push {model} --repo me/x --hub {hub} --endpoint {unreachable}", "push"),
    ],
    (("evaluate",), "model"): [
        ("evaluate --model ./nope", "does not exist"),
        ("evaluate --model 'me/x y' --hub {hub}", "invalid repo id"),
        ("evaluate --model {root}/config-list", "not an object"),
        ("evaluate --model {root}/config-no-type", "no model_type"),
        ("evaluate --model {root}/config-bad-value", "cannot load"),
    ],
    (("evaluate",), "benchmark"): [
        ("evaluate --model random --benchmark x", "x"),
    ],
    (("evaluate",), "check_splits"): [
        (
            "evaluate --model random --benchmark bandit --output {out} --check-splits nope",
            "no such split",
        ),
        (
            "evaluate --model random --benchmark bandit --output {out} --check-splits test-even",
            "plays it already",
        ),
    ],
    (("evaluate",), "output"): [
        ("evaluate --model random --benchmark bandit --output {file}", "file"),
        ("evaluate --model random --benchmark bandit --output {dir_json}", "is a directory"),
    ],
    (("evaluate",), "hub"): [
        ("evaluate --model me/tiny --hub {file}", "is a file"),
    ],
    (("evaluate",), "endpoint"): [
        ("evaluate --model me/none --hub {hub} --endpoint ftp://x", "http"),
    ],
    (("evaluate",), "revision"): [
        (
            "evaluate --model me/tiny --hub {hub} --endpoint {unreachable} --revision " + "0" * 40,
            "127.0.0.1:9",
        ),
    ],
    (("evaluate",), "device"): [
        ("evaluate --model me/tiny --hub {hub} --device nope", "--device"),
        ("evaluate --model me/tiny --hub {hub} --device cuda:7", "--device"),
    ],
    (("evaluate",), "leaderboards"): [
        (
            "evaluate --model random --benchmark bandit --output {out} --submit "
            "--leaderboards {file}",
            "is a file",
        ),
        (
            # A corrupted board refuses a submission before the run: no results are written.
            "evaluate --model random --benchmark bandit --output {out} --submit "
            "--leaderboards {corrupt_boards}",
            "corrupted",
        ),
    ],
    (("quickstart",), "hub"): [
        ("quickstart --hub {file}", "is a file"),
    ],
    (("quickstart",), "output"): [
        ("quickstart --output {file}", "is a file"),
    ],
    (("quickstart",), "leaderboards"): [
        ("quickstart --leaderboards {file}", "is a file"),
    ],
    (("envs", "rollout"), "env"): [
        ("envs rollout --env nope", "nope"),
    ],
    (("envs", "rollout"), "split"): [
        ("envs rollout --split nope", "nope"),
    ],
    (("datasets", "build"), "name"): [
        ("datasets build nope --hub {hub}", "nope"),
    ],
    (("datasets", "build"), "source"): [
        ("datasets build darkroom --hub {hub} --source ucb", "ucb"),
    ],
    (("datasets", "build"), "source_arg"): [
        ("datasets build darkroom --hub {hub} --source-arg x", "KEY=VALUE"),
        ("datasets build darkroom --hub {hub} --source-arg learning_rate=a", "learning_rate='a'"),
        ("datasets build darkroom --hub {hub} --source-arg lr=1", "'lr'"),
    ],
    (("datasets", "build"), "org"): [
        ("datasets build darkroom --hub {hub} --org a/b", "invalid repo id"),
    ],
    (("datasets", "build"), "hub"): [
        ("datasets build darkroom --hub {file}", "file"),
    ],
    (("datasets", "list"), "hub"): [
        ("datasets list --hub {file}", "is a file"),
    ],
    (("datasets", "show"), "repo_id"): [
        ("datasets show x --hub {hub}", "repo id"),
    ],
    (("datasets", "show"), "hub"): [
        ("datasets show a/b --hub {file}", "is a file"),
    ],
    (("datasets", "show"), "endpoint"): [
        ("datasets show a/b --hub {hub} --endpoint {unreachable}", "127.0.0.1:9"),
    ],
    (("datasets", "push"), "repo_id"): [
        ("datasets push x --hub {hub}", "repo id"),
    ],
    (("datasets", "push"), "hub"): [
        ("datasets push a/b --hub {file}", "is a file"),
    ],
    (("datasets", "push"), "endpoint"): [
        ("datasets push a/b --hub {hub} --endpoint ftp://x", "nothing to push"),
    ],
    (("datasets", "pull"), "repo_id"): [
        ("datasets pull a/../b --hub {hub}", "id"),
    ],
    (("datasets", "pull"), "hub"): [
        ("datasets pull a/b --hub {file}", "is a file"),
    ],
    (("datasets", "pull"), "endpoint"): [
        ("datasets pull a/b --hub {hub} --endpoint {unreachable}", "127.0.0.1:9"),
    ],
    (("datasets", "pull"), "revision"): [
        ("datasets pull a/b --hub {hub} --revision v1 --endpoint {unreachable}", "127.0.0.1:9"),
    ],
    (("datasets", "export"), "repo_id"): [
        ("datasets export a/../b --format minari --output {out} --hub {hub}", "id"),
        ("datasets export me/none --format minari --output {out} --hub {hub}", "not in the"),
    ],
    (("datasets", "export"), "format_"): [
        ("datasets export me/none --format d4rl --output {out} --hub {hub}", "d4rl"),
    ],
    (("datasets", "export"), "output"): [
        ("datasets export me/none --format minari --output {file} --hub {hub}", "a-file.txt"),
    ],
    (("datasets", "export"), "config"): [
        ("datasets export me/none --format minari --output {out} --config x --hub {hub}", "'x'"),
    ],
    (("datasets", "export"), "revision"): [
        ("datasets export me/none --format minari --output {out} --revision 0123abc", "0123abc"),
    ],
    (("datasets", "export"), "hub"): [
        ("datasets export me/none --format minari --output {out} --hub {file}", "is a file"),
    ],
    (("hub", "serve"), "hub"): [
        ("hub serve --hub {file}", "is a file"),
    ],
    (("hub", "serve"), "host"): [
        ("hub serve --hub {hub} --host 256.0.0.1", "cannot listen"),
    ],
    (("hub", "path"), "hub"): [
        ("hub path --hub {file}", "is a file"),
    ],
    (("models", "list"), "hub"): [
        ("models list --hub {file}", "is a file"),
    ],
    (("models", "check-code"), "directories"): [
        ("models check-code {root}/nope", "no config.json"),
    ],
    (("leaderboard", "show"), "name"): [
        ("leaderboard show nope", "nope"),
    ],
    (("leaderboard", "show"), "leaderboards"): [
        ("leaderboard show --leaderboards {corrupt_boards}", "corrupted"),
    ],
    (("leaderboard", "show"), "hub"): [
        ("leaderboard show --hub {file} --leaderboards {boards}", "is a file"),
    ],
    (("leaderboard", "verify"), "name"): [
        ("leaderboard verify nope", "nope"),
    ],
    (("leaderboard", "verify"), "leaderboards"): [
        ("leaderboard verify --leaderboards {corrupt_boards}", "someone-0123abcd.json"),
    ],
    (("leaderboard", "verify"), "hub"): [
        ("leaderboard verify --hub {file} --leaderboards {boards}", "is a file"),
    ],
    (("leaderboard", "submit"), "results"): [
        ("leaderboard submit {root}/nope.json --leaderboards {boards}", "nope.json"),
        ("leaderboard submit {file} --leaderboards {boards}", "a-file.txt"),
    ],
    (("leaderboard", "submit"), "leaderboards"): [
        ("leaderboard submit {file} --leaderboards {file}", "a-file.txt"),
    ],
    (("leaderboard", "submit"), "hub"): [
        ("leaderboard submit {file} --leaderboards {boards} --hub {file}", "file"),
    ],
    (("leaderboard", "readme"), "leaderboards"): [
        ("leaderboard readme --leaderboards {corrupt_boards}", "corrupted"),
    ],
    (("leaderboard", "readme"), "hub"): [
        ("leaderboard readme --hub {file} --leaderboards {boards}", "is a file"),
    ],
    (("leaderboard", "site"), "output"): [
        ("leaderboard site --output {file}", "file"),
    ],
    (("leaderboard", "site"), "leaderboards"): [
        ("leaderboard site --output {out} --leaderboards {corrupt_boards}", "rupt"),
    ],
    (("leaderboard", "site"), "hub"): [
        ("leaderboard site --output {out} --hub {file}", "is a file"),
    ],
    (("leaderboard", "site"), "hub_url"): [
        ("leaderboard site --output {out} --hub-url nope", "--hub-url"),
    ],
    (("leaderboard", "seeds"), "name"): [
        ("leaderboard seeds nope --group A=x/y --leaderboards {boards}", "nope"),
    ],
    (("leaderboard", "seeds"), "group"): [
        ("leaderboard seeds darkroom --group A --leaderboards {boards}", "LABEL=MODEL_ID"),
        ("leaderboard seeds darkroom --group A= --leaderboards {boards}", "LABEL=MODEL_ID"),
        ("leaderboard seeds darkroom --group A=me/none --leaderboards {boards}", "no entry"),
    ],
    (("leaderboard", "seeds"), "marks"): [
        ("leaderboard seeds darkroom --group A=x/y --marks 1,x --leaderboards {boards}", "--marks"),
    ],
    (("leaderboard", "seeds"), "leaderboards"): [
        ("leaderboard seeds bandit --group A=x/y --leaderboards {corrupt_boards}", "corrupted"),
    ],
    (("leaderboard", "seeds"), "hub"): [
        ("leaderboard seeds darkroom --group A=x/y --hub {file}", "is a file"),
    ],
    (("leaderboard", "serve"), "host"): [
        ("leaderboard serve --host 256.0.0.1 --output {out}", "cannot listen"),
    ],
    (("leaderboard", "serve"), "output"): [
        ("leaderboard serve --output {file}", "file"),
    ],
    (("leaderboard", "serve"), "leaderboards"): [
        ("leaderboard serve --leaderboards {corrupt_boards}", "corrupted"),
    ],
    (("leaderboard", "serve"), "hub"): [
        ("leaderboard serve --hub {file} --leaderboards {boards}", "is a file"),
    ],
}
for method in ("ad", "ed"):
    TEXT_CASES |= {
        (("train", method), "dataset"): [
            (
                "train {method} --output {out} --dataset 'a b'".replace("{method}", method),
                "invalid repo id",
            ),
            (
                "train {method} --output {out} --dataset me/none --hub {hub}".replace(
                    "{method}", method
                ),
                "",
            ),
        ],
        (("train", method), "recipe"): [
            (
                "train {method} --output {out} --recipe nope".replace("{method}", method),
                "ad-darkroom",
            ),
            (
                "train {method} --output {out} --recipe {not_a_mapping}".replace(
                    "{method}", method
                ),
                "mapping",
            ),
            (
                "train {method} --output {out} --recipe rl2-darkroom".replace("{method}", method),
                "rl2 recipe",
            ),
        ],
        (("train", method), "output"): [
            ("train {method} --output {file}".replace("{method}", method), "is a file"),
        ],
        (("train", method), "hub"): [
            (
                "train {method} --output {out} --hub {file}".replace("{method}", method),
                "is a file",
            ),
        ],
        (("train", method), "set_"): [
            ("train {method} --output {out} --set x".replace("{method}", method), "KEY=VALUE"),
            (
                "train {method} --output {out} --set batch_size=abc".replace("{method}", method),
                "batch_size",
            ),
            (
                "train {method} --output {out} --set method=rl2".replace("{method}", method),
                "method",
            ),
            ("train {method} --output {out} --set 'a=[1'".replace("{method}", method), "YAML"),
        ],
    }
TEXT_CASES |= {
    (("train", "rl2"), "env"): [
        ("train rl2 --output {out} --env nope", "nope"),
    ],
    (("train", "rl2"), "recipe"): [
        ("train rl2 --output {out} --recipe ad-darkroom", "ad recipe"),
    ],
    (("train", "rl2"), "output"): [
        ("train rl2 --output {file}", "is a file"),
    ],
    (("train", "rl2"), "hub"): [
        ("train rl2 --output {out} --hub {file}", "file"),
    ],
    (("train", "rl2"), "set_"): [
        ("train rl2 --output {out} --set hidden_size=abc", "hidden_size"),
        ("train rl2 --output {out} --set split=nope", "nope"),
    ],
}
FREE_TEXT = {
    "token": "any string may be a token; only the remote can judge it",
}


def test_every_text_option_has_bad_value_cases() -> None:
    missing = [
        f"{' '.join(path)} {param.opts[0]}"
        for path, param, hint in parameters()
        if hint not in (int, float, bool)
        and param.name not in FREE_TEXT
        and (path, param.name) not in TEXT_CASES
    ]
    assert missing == [], f"text options without a bad-value case: {missing}"


TEXT = [
    pytest.param(args, expected, id=f"{' '.join(key[0])} {key[1]} {i}")
    for key, cases in TEXT_CASES.items()
    for i, (args, expected) in enumerate(cases)
]


@pytest.mark.parametrize(("args", "expected"), TEXT)
def test_every_text_option_refuses_bad_values_without_writing(
    ws: dict[str, Path], args: str, expected: str
) -> None:
    refused_without_writes(ws, fill(args, ws), expected)


# ---------------------------------------------------------------------------------------
# Every recipe key, every source hyperparameter.


def bad_values(schema: dict[str, Any]) -> list[Any]:
    """A value of the wrong type and, where the field has a range, one outside it."""
    if "anyOf" in schema:
        schema = next(s for s in schema["anyOf"] if s.get("type") != "null")
    if "enum" in schema or "const" in schema:
        return [123, "not-an-allowed-value"]
    kind = schema.get("type")
    values: list[Any] = {
        "integer": ["abc"],
        "number": ["abc"],
        "string": [123],
        "boolean": ["maybe"],
        "array": ["abc"],
    }[kind]
    if kind == "integer" and schema.get("minimum") is not None:
        values.append(schema["minimum"] - 1)
    if kind == "integer" and schema.get("exclusiveMaximum") is not None:
        values.append(schema["exclusiveMaximum"])
    if kind == "number":
        if schema.get("minimum") is not None:
            values.append(schema["minimum"] - 0.5)
        if schema.get("exclusiveMinimum") is not None:
            values.append(schema["exclusiveMinimum"])
        if schema.get("maximum") is not None:
            values.append(schema["maximum"] + 0.5)
        if schema.get("exclusiveMaximum") is not None:
            values.append(schema["exclusiveMaximum"])
    if kind == "string" and schema.get("minLength"):
        values.append("")
    if kind == "array":
        values.append([])
        values.append([0])
    return values


def field_cases(cls: type) -> list[tuple[str, Any]]:
    properties = TypeAdapter(cls).json_schema()["properties"]
    return [(name, value) for name, schema in properties.items() for value in bad_values(schema)]


def yaml_text(value: Any) -> str:
    return yaml.safe_dump(value, default_flow_style=True).strip().removesuffix("...").strip()


TRAIN_KEYS = [
    pytest.param(method, key, value, id=f"{method}-{key}={value!r}")
    for method, cls in (("ad", ADTrainArgs), ("rl2", RL2Args))
    for key, value in field_cases(cls)
    if key != "method"  # given by the command itself (see the text cases)
]


@pytest.mark.parametrize(("method", "key", "value"), TRAIN_KEYS)
def test_every_recipe_key_refuses_a_wrong_type_and_an_out_of_range_value(
    ws: dict[str, Path], method: str, key: str, value: Any
) -> None:
    base = ["train", method, "--output", str(ws["out"])]
    refused_without_writes(ws, [*base, "--set", f"{key}={yaml_text(value)}"], key, "--set")
    recipe = ws["root"] / "recipes" / f"{method}-{key}.yaml"
    recipe.parent.mkdir(exist_ok=True)
    recipe.write_text(yaml.safe_dump({key: value}))
    refused_without_writes(ws, [*base, "--recipe", str(recipe)], key, str(recipe))


SOURCE_DATASET = {"ucb": "bandit", "thompson": "bandit", "q-learning": "darkroom"}
SOURCE_DATASET |= {"a2c": "darkroom", "dqn": "watermaze", "pose-q-learning": "watermaze"}
SOURCE_KEYS = [
    pytest.param(source, key, value, id=f"{source}-{key}={value!r}")
    for source in SOURCES
    for key, value in field_cases(get_source_class(source).config_cls)
]


@pytest.mark.parametrize(("source", "key", "value"), SOURCE_KEYS)
def test_every_source_hyperparameter_refuses_bad_values(
    ws: dict[str, Path], source: str, key: str, value: Any
) -> None:
    args = ["datasets", "build", SOURCE_DATASET[source], "--source", source]
    args += ["--hub", str(ws["hub"]), "--source-arg", f"{key}={yaml_text(value)}"]
    refused_without_writes(ws, args, f"{key}=")


def test_every_source_has_a_dataset_to_try_it_on() -> None:
    assert set(SOURCE_DATASET) == set(SOURCES)


def test_yaml_numbers_in_recipes_and_overrides_are_numbers(ws: dict[str, Path]) -> None:
    from adbench.validation import build_args, load_yaml, parse_key_values

    assert load_yaml("learning_rate: 1e-3") == {"learning_rate": 0.001}
    assert parse_key_values(["learning_rate=3e-4", "image_channels=[8, 8]"], "--set") == {
        "learning_rate": 0.0003,
        "image_channels": [8, 8],
    }
    args = build_args(ADTrainArgs, [("--set", {"learning_rate": 1, "seed": 3})])
    assert args.learning_rate == 1.0 and args.seed == 3


def test_every_shipped_recipe_makes_its_methods_arguments() -> None:
    # A recipe with a misspelt or out-of-range knob fails here, not at a user's first run.
    from adbench.resources import recipe_files, recipe_names
    from adbench.training.common import argument_layers
    from adbench.training.train_rl2 import RL2Args
    from adbench.validation import build_args, read_mapping_file

    assert {"ad-darkroom", "ed-darkroom", "rl2-darkroom"} <= set(recipe_names())
    for path in recipe_files():
        method = read_mapping_file(path, "recipe")["method"]
        args = build_args(
            RL2Args if method == "rl2" else ADTrainArgs, argument_layers(method, str(path), [], {})
        )
        assert args.seed == 0, path


# ---------------------------------------------------------------------------------------
# Failed writes: read-only folders and full disks.


@contextlib.contextmanager
def tmpfs(path: Path, options: str) -> Iterator[Path]:
    path.mkdir(parents=True, exist_ok=True)
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(path)], capture_output=True
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.decode().strip()}")
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False)


def test_a_read_only_output_folder_is_one_line_and_nothing_is_written(tmp_path: Path) -> None:
    with tmpfs(tmp_path / "ro", "ro,size=1m") as folder:
        result = run_cli_here(
            "evaluate", "--model", "random", "--benchmark", "bandit", "--episodes", "2",
            "--output", str(folder / "results"),
        )  # fmt: skip
        assert_one_line_refusal(result, "no permission to write", str(folder))
        assert list(folder.iterdir()) == []


def test_a_full_disk_is_one_line_and_leaves_no_partial_file(tmp_path: Path) -> None:
    with tmpfs(tmp_path / "full", "size=256k") as folder:
        filler = folder / "filler"
        fd = os.open(filler, os.O_WRONLY | os.O_CREAT)
        with contextlib.suppress(OSError):
            while True:
                os.write(fd, b"\0" * 4096)
        os.close(fd)
        result = run_cli_here(
            "evaluate", "--model", "random", "--benchmark", "bandit", "--episodes", "2",
            "--seeds", "1", "--output", str(folder / "results"),
        )  # fmt: skip
        assert_one_line_refusal(result, "No space left on device")
        leftovers = [p for p in folder.rglob("*") if p.is_file() and p != filler]
        assert leftovers == [], leftovers


def test_a_failed_atomic_write_leaves_neither_file_nor_temp(tmp_path: Path) -> None:
    target = tmp_path / "plot.png"
    with pytest.raises(RuntimeError), atomic_path(target) as tmp:
        tmp.write_bytes(b"half")
        raise RuntimeError("the writer failed")
    assert list(tmp_path.iterdir()) == []
    with atomic_path(target) as first, atomic_path(target) as second:
        assert first != second  # two writers in one folder never share a temp file
        first.write_bytes(b"1")
        second.write_bytes(b"2")
    assert target.read_bytes() == b"1" and [p.name for p in tmp_path.iterdir()] == ["plot.png"]


# ---------------------------------------------------------------------------------------
# Concurrent runs.


def _cli_in_child(args: list[str]) -> tuple[int, str]:
    torch.set_num_threads(1)  # 16 processes share 2 cores
    result = run_cli_here(*args)
    return result.returncode, result.stderr


@pytest.fixture(scope="module")
def forkserver() -> multiprocessing.context.BaseContext:
    """Processes forked from a server that imported adbench and ran one evaluation
    (``_warm_cli``): 16 real processes without 16 interpreter start-ups and first-call
    imports; the CLI runs in each through its entry point, as from a shell."""
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(["_warm_cli"])
    # Python 3.11's forkserver ignores the parent's sys.path: give it the tests' folder.
    previous = os.environ.get("PYTHONPATH")
    os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(Path(__file__).parent), previous]))
    try:
        multiprocessing.forkserver.ensure_running()
    finally:
        if previous is None:
            del os.environ["PYTHONPATH"]
        else:
            os.environ["PYTHONPATH"] = previous
    return context


def test_sixteen_concurrent_evaluations_in_one_second_keep_sixteen_results(
    tmp_path: Path, forkserver: multiprocessing.context.BaseContext
) -> None:
    # The same model, seed and second: only the run id tells the files apart, and the plots'
    # temporary files must not be shared.
    results = tmp_path / "results"
    args = ["evaluate", "--model", "random", "--benchmark", "bandit", "--episodes", "2"]
    args += ["--seeds", "1", "--output", str(results)]
    with forkserver.Pool(16) as pool:
        outcomes = pool.map(_cli_in_child, [args] * 16)
    assert [code for code, _ in outcomes] == [0] * 16, [err for _, err in outcomes]
    summaries = sorted((results / "bandit").glob("*.json"))
    assert len(summaries) == 16 and len(list((results / "bandit").glob("*.png"))) == 16
    assert len(list((results / "bandit").glob("*.runs.parquet"))) == 16
    scores = {json.loads(p.read_text())["score"]["iqm"] for p in summaries}
    assert len(scores) == 1  # one deterministic result, written 16 times whole
    assert not [p for p in tmp_path.rglob(f"{TEMP_PREFIX}*")], "temporary files left behind"


@pytest.mark.slow  # 16 full bandit protocols: about 2 minutes on 2 cores; .ci/run runs it
def test_sixteen_concurrent_evaluate_submit_runs_keep_every_entry_and_results_file(
    tmp_path: Path, forkserver: multiprocessing.context.BaseContext
) -> None:
    hub, boards, results = tmp_path / "hub", tmp_path / "boards", tmp_path / "results"
    model = tmp_path / "model"
    tiny_bandit_model().save_pretrained(model)
    ids = [f"org{i:02d}/tiny" for i in range(16)]
    for repo in ids:  # one model's weights, published as 16 models
        publish_model(model, repo, hub=hub)
    common = ["--hub", str(hub), "--leaderboards", str(boards), "--output", str(results)]
    runs = [["evaluate", "--model", repo, "--submit", *common] for repo in ids]
    with forkserver.Pool(16) as pool:
        outcomes = pool.map(_cli_in_child, runs)
    assert [code for code, _ in outcomes] == [0] * 16, [err for _, err in outcomes]
    board = load_board(boards, "bandit")
    assert sorted(e["model_id"] for e in board.entries) == ids
    assert len(list((results / "bandit").glob("*.json"))) == 16
    assert len(list((results / "bandit").glob("*.png"))) == 16
    assert len(list((boards / "bandit").glob("*.runs.parquet"))) == 16
    readme = (boards / "README.md").read_text()
    assert all(f"{repo}@" in readme for repo in ids)
    assert not [p for p in tmp_path.rglob(f"{TEMP_PREFIX}*")], "temporary files left behind"


# ---------------------------------------------------------------------------------------
# A stalled client.


def test_a_stalled_client_is_cut_off_and_its_staging_removed(tmp_path: Path) -> None:
    from huggingface_hub import HfApi

    hub = tmp_path / "hub"
    publish_model(_saved(tmp_path), "me/tiny", hub=hub)
    with serving(hub, read_timeout=1.0, max_body_bytes=2**20) as server:
        host, port = server.server_address[:2]
        stalled = socket.create_connection((host, port))
        header = json.dumps({"key": "header", "value": {"summary": "x"}}).encode() + b"\n"
        stalled.sendall(
            b"POST /api/models/me/tiny/commit/main HTTP/1.1\r\nHost: x\r\n"
            + b"Content-Type: application/x-ndjson\r\nContent-Length: 500000\r\n\r\n"
            + header
        )
        started = time.monotonic()
        staging_seen = _wait_for(lambda: any(_staging(hub)), 5.0)
        # Others are served while the stalled client holds its connection.
        info = HfApi(endpoint=server.url, token=False).model_info("me/tiny")
        assert info.id == "me/tiny"
        stalled.settimeout(10)
        with contextlib.suppress(ConnectionResetError):
            while stalled.recv(65536):
                pass  # the server closes the connection (after an error answer, or none)
        cut_after = time.monotonic() - started
        stalled.close()
        assert staging_seen, "the commit never started staging"
        assert cut_after < 5.0, f"the stalled client held its connection for {cut_after:.1f} s"
        assert _wait_for(lambda: not any(_staging(hub)), 5.0), list(_staging(hub))

        # A client trickling a byte every half second, each within the read timeout, is
        # cut off by the body's deadline (timeout + length / MIN_UPLOAD_BYTES_PER_S).
        length = 100_000
        trickler = socket.create_connection((host, port))
        trickler.sendall(
            b"POST /api/models/me/tiny/commit/main HTTP/1.1\r\nHost: x\r\n"
            + f"Content-Length: {length}\r\n\r\n".encode()
            + header
        )
        started = time.monotonic()
        deadline = 1.0 + length / MIN_UPLOAD_BYTES_PER_S
        with contextlib.suppress(OSError):
            while time.monotonic() - started < deadline + 5:
                trickler.sendall(b"x")
                time.sleep(0.5)
        cut_after = time.monotonic() - started
        trickler.close()
        assert cut_after < deadline + 2, f"the trickling client was served for {cut_after:.1f} s"
        assert _wait_for(lambda: not any(_staging(hub)), 5.0), list(_staging(hub))

        too_big = socket.create_connection((host, port))
        too_big.sendall(
            b"POST /api/models/me/tiny/commit/main HTTP/1.1\r\nHost: x\r\n"
            + f"Content-Length: {2**30}\r\n\r\n".encode()
        )
        too_big.settimeout(10)
        answer = too_big.recv(65536).decode()
        too_big.close()
        assert answer.startswith("HTTP/1.1 413"), answer[:200]
        assert not any(_staging(hub))
        assert HfApi(endpoint=server.url, token=False).model_info("me/tiny").id == "me/tiny"


def _saved(tmp_path: Path) -> Path:
    path = tmp_path / "model"
    tiny_bandit_model().save_pretrained(path)
    return path


def _staging(hub: Path) -> Iterator[Path]:
    return (p for p in hub.rglob(f"{TEMP_PREFIX}*"))


def _wait_for(condition: typing.Callable[[], bool], seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.02)
    return condition()


def test_a_second_build_of_the_same_dataset_is_refused_while_one_runs(tmp_path: Path) -> None:
    from adbench.fileio import exclusive_lock
    from adbench.hub import list_repos, local_repo_dir

    final = local_repo_dir("ad-bench/darkroom", "dataset", tmp_path)
    with exclusive_lock(final.with_name(f".{final.name}.lock")):  # as a running build holds it
        result = run_cli_here("datasets", "build", "darkroom", "--hub", str(tmp_path))
    assert_one_line_refusal(result, "the build of ad-bench/darkroom is in use by another process")
    assert not final.exists() and not final.with_name(f".{final.name}.partial").exists()
    assert list_repos("dataset", tmp_path) == []


def test_a_read_only_hub_refuses_a_build_and_a_push_before_any_work(tmp_path: Path) -> None:
    model = tmp_path / "model"
    tiny_bandit_model().save_pretrained(model)
    with tmpfs(tmp_path / "ro-hub", "ro,size=1m") as hub:
        built = run_cli_here("datasets", "build", "darkroom", "--hub", str(hub))
        assert_one_line_refusal(built, "the local hub", "no permission to write")
        pushed = run_cli_here("push", str(model), "--repo", "me/x", "--hub", str(hub))
        assert_one_line_refusal(pushed, "the local hub", "no permission to write")
        assert list(hub.iterdir()) == []


def test_source_args_read_numbers_as_recipes_do(tmp_path: Path) -> None:
    # The same KEY=VALUE parser as --set: 1e-3 is a number, so it passes validation, and a
    # bad value is still refused before anything is written.
    from adbench.histories.specs import resolve_config
    from adbench.validation import parse_key_values

    parsed = parse_key_values(["learning_rate=1e-3"], "--source-arg")
    config = resolve_config("darkroom", source="a2c", source_hyperparameters=parsed)
    assert config.source_hyperparameters == {"learning_rate": 0.001}
    result = run_cli_here(
        "datasets", "build", "darkroom", "--source", "a2c", "--source-arg", "learning_rate=1e-3",
        "--source-arg", "gamma=2", "--hub", str(tmp_path),
    )  # fmt: skip
    assert_one_line_refusal(result, "gamma=2")
    assert list(tmp_path.iterdir()) == []
