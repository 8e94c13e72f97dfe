"""The local hub, its atomic file helpers, and push/pull through a real Hub-compatible server.

Nothing is mocked: a ``hub_server`` listens on 127.0.0.1 over a temporary "remote" directory and
the unmodified huggingface_hub client talks HTTP to it, exactly as it would to the real Hub.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from adbench import fileio, hub
from adbench.errors import AdbenchError
from adbench.hub_server import HubHTTPServer, serve

DATASET_ID = "ad-bench/darkroom"
MODEL_ID = "ad-bench/darkroom-ad"
CLOSED_PORT_ENDPOINT = "http://127.0.0.1:9"  # discard port: nothing listens there

README = """---
license: apache-2.0
pretty_name: Darkroom learning histories
tags:
- reinforcement-learning
---
# Darkroom

Learning histories of UCB on the darkroom grid.
"""


# --------------------------------------------------------------------------- fixtures


@pytest.fixture(autouse=True)
def _isolated_hub_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """No ambient hub settings may leak in: every test passes its hub and endpoint."""
    import huggingface_hub.constants

    for name in ("ADBENCH_HUB", "HF_ENDPOINT"):
        monkeypatch.delenv(name, raising=False)
    # hf_xet (used by upload_folder) writes its logs under HF_HOME, read when it starts.
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf-home"))
    # An offline-mode variable on the machine would make huggingface_hub refuse every request.
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", False)


@pytest.fixture
def remote(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[HubHTTPServer]:
    """A hub server on a free port of 127.0.0.1, serving an empty temporary directory."""
    from huggingface_hub import close_session

    # A proxy configured on the machine must not intercept requests to the local server; the
    # shared client reads the proxy settings when it is created, hence the fresh session.
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    monkeypatch.setenv("no_proxy", "127.0.0.1,localhost")
    close_session()
    server, thread = serve(tmp_path / "remote", "127.0.0.1", 0)
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def _rows() -> dict[str, list]:
    return {
        "episode": [0, 0, 1, 1, 2],
        "step": [0, 1, 0, 1, 0],
        "reward": [0.0, 1.0, 0.5, 0.25, 1.0],
        "action": [3, 1, 4, 1, 5],
    }


def _make_dataset_repo(hub_dir: Path) -> Path:
    """A small dataset repo: README with YAML front matter, a parquet file, a nested file."""
    repo = hub.local_repo_dir(DATASET_ID, "dataset", hub_dir)
    (repo / "data").mkdir(parents=True)
    (repo / "README.md").write_text(README)
    pq.write_table(pa.table(_rows()), repo / "data" / "train-00000-of-00001.parquet")
    (repo / "meta" / "sources").mkdir(parents=True)
    (repo / "meta" / "sources" / "ucb.json").write_text(json.dumps({"source": "ucb", "c": 2.0}))
    return repo


def _make_model_repo(hub_dir: Path) -> Path:
    """A small model repo: safetensors weights and a config.json."""
    from safetensors.numpy import save_file

    repo = hub.local_repo_dir(MODEL_ID, "model", hub_dir)
    repo.mkdir(parents=True)
    rng = np.random.default_rng(0)
    save_file(
        {
            "embed.weight": rng.standard_normal((16, 8)).astype(np.float32),
            "head.bias": np.arange(5, dtype=np.float32),
        },
        repo / "model.safetensors",
    )
    (repo / "config.json").write_text(json.dumps({"model_type": "ad", "n_embd": 8}, indent=2))
    return repo


def _tree_bytes(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in root.rglob("*") if p.is_file()}


def _http(
    server: HubHTTPServer, method: str, path: str, body: bytes | None = None
) -> tuple[int, dict[str, str], bytes]:
    request = urllib.request.Request(f"{server.url}{path}", data=body, method=method)
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers), error.read()


# --------------------------------------------------------------------------- fileio


def test_atomic_writes_write_whole_files(tmp_path: Path) -> None:
    target = tmp_path / "deep" / "dir" / "out.json"
    fileio.atomic_write_json(target, {"b": 1, "a": [1, 2]})
    assert target.read_text() == '{\n  "a": [\n    1,\n    2\n  ],\n  "b": 1\n}\n'
    fileio.atomic_write_text(target, "héllo")
    assert target.read_text(encoding="utf-8") == "héllo"
    fileio.atomic_write_bytes(target, b"\x00\x01")
    assert target.read_bytes() == b"\x00\x01"
    # Permissions follow the umask like a plain open() would, not mkstemp's private 0600.
    plain = tmp_path / "plain"
    plain.write_bytes(b"")
    assert target.stat().st_mode & 0o777 == plain.stat().st_mode & 0o777
    assert sorted(p.name for p in target.parent.iterdir()) == ["out.json"]


def test_failed_atomic_write_keeps_old_file_and_leaves_no_temp(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = tmp_path / "results.json"
    fileio.atomic_write_json(target, {"score": 1})
    before = target.read_bytes()

    with pytest.raises(TypeError):
        fileio.atomic_write_json(target, {"score": object()})  # not serialisable

    def failing_fsync(fd: int) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(fileio.os, "fsync", failing_fsync)
    with pytest.raises(OSError, match="No space left"):
        fileio.atomic_write_bytes(target, b"x" * 10_000)
    monkeypatch.undo()

    assert target.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["results.json"]


def test_sha256_file_streams(tmp_path: Path) -> None:
    data = os.urandom(3 * fileio.HASH_CHUNK_BYTES + 17)
    path = tmp_path / "blob"
    path.write_bytes(data)
    assert fileio.sha256_file(path) == hashlib.sha256(data).hexdigest()


def test_atomic_directory_replaces_on_success_only(tmp_path: Path) -> None:
    final = tmp_path / "repo"
    with fileio.atomic_directory(final) as staging:
        (staging / "a.txt").write_text("one")
    assert _tree_bytes(final) == {"a.txt": b"one"}

    with pytest.raises(RuntimeError), fileio.atomic_directory(final) as staging:
        (staging / "b.txt").write_text("two")
        raise RuntimeError("build failed half-way")
    assert _tree_bytes(final) == {"a.txt": b"one"}

    with fileio.atomic_directory(final) as staging:
        (staging / "b.txt").write_text("two")
    assert _tree_bytes(final) == {"b.txt": b"two"}
    assert [p.name for p in tmp_path.iterdir()] == ["repo"]  # no temp or old dirs left


# --------------------------------------------------------------------------- local hub


@pytest.mark.parametrize(
    "repo_id", ["ad-bench/darkroom", "a/b", "Org_1/name.v2", "x9/" + "n" * 96, "a.b/c-d_e"]
)
def test_valid_repo_ids(repo_id: str) -> None:
    assert hub.validate_repo_id(repo_id) == tuple(repo_id.split("/"))


@pytest.mark.parametrize(
    "repo_id",
    [
        "a",
        "",
        "a/b/c",
        "../x",
        "a/..",
        "/a",
        "a/",
        "./a",
        "a/b c",
        "a--b/c",
        "a/b..c",
        "a/b.",
        "a/b-",
        "-a/b",
        ".a/b",
        "a/" + "n" * 97,
        "a\\b/c",
        "a/b\n",
    ],
)
def test_invalid_repo_ids_say_the_rule(repo_id: str) -> None:
    with pytest.raises(AdbenchError) as excinfo:
        hub.validate_repo_id(repo_id)
    message = str(excinfo.value)
    assert "ad-bench/darkroom" in message and "org/name" in message
    assert "\n" not in message.replace(repr(repo_id), "")


def test_local_repo_dir_layout_and_traversal_guard(tmp_path: Path) -> None:
    assert hub.local_repo_dir("o/n", "dataset", tmp_path) == tmp_path / "datasets" / "o" / "n"
    assert hub.local_repo_dir("o/n", "model", tmp_path) == tmp_path / "models" / "o" / "n"
    with pytest.raises(AdbenchError):
        hub.local_repo_dir("../../etc", "dataset", tmp_path)
    with pytest.raises(AdbenchError, match="'dataset' or 'model'"):
        hub.local_repo_dir("o/n", "space", tmp_path)  # type: ignore[arg-type]


def test_hub_root_precedence(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.delenv("XDG_CACHE_HOME", raising=False)
    assert hub.hub_root() == tmp_path / "home" / ".cache" / "adbench" / "hub"
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert hub.hub_root() == tmp_path / "xdg" / "adbench" / "hub"
    monkeypatch.setenv("ADBENCH_HUB", str(tmp_path / "env-hub"))
    assert hub.hub_root() == tmp_path / "env-hub"
    assert hub.hub_root(tmp_path / "arg-hub") == tmp_path / "arg-hub"
    assert hub.hub_root(str(tmp_path / "arg-hub")) == tmp_path / "arg-hub"


def test_repo_revision_tracks_content_and_ignores_temp_files(tmp_path: Path) -> None:
    repo = _make_dataset_repo(tmp_path)
    revision = hub.repo_revision(repo)
    assert len(revision) == 40 and int(revision, 16) >= 0
    (repo / (fileio.TEMP_PREFIX + "half-written")).write_bytes(b"junk")
    assert hub.repo_revision(repo) == revision
    (repo / "meta" / "sources" / "ucb.json").write_text("{}")
    assert hub.repo_revision(repo) != revision


def test_list_repos(tmp_path: Path) -> None:
    repo = _make_dataset_repo(tmp_path)
    _make_model_repo(tmp_path)
    (tmp_path / "datasets" / "ad-bench" / "empty").mkdir()
    (tmp_path / "datasets" / "ad-bench" / (fileio.TEMP_PREFIX + "x")).mkdir()
    [info] = hub.list_repos("dataset", tmp_path)
    assert (info.repo_id, info.repo_type, info.path, info.num_files) == (
        DATASET_ID,
        "dataset",
        repo,
        3,
    )
    assert info.size_bytes == sum(len(b) for b in _tree_bytes(repo).values())
    assert info.revision == hub.repo_revision(repo)
    assert [i.repo_id for i in hub.list_repos("model", tmp_path)] == [MODEL_ID]
    assert hub.list_repos("dataset", tmp_path / "nowhere") == []


# --------------------------------------------------------------------------- push / pull


def _assert_same_repo(source: Path, pulled: Path) -> None:
    assert _tree_bytes(pulled) == _tree_bytes(source)
    assert hub.repo_revision(pulled) == hub.repo_revision(source)
    assert not (pulled / ".cache").exists()  # no huggingface_hub download metadata
    leftovers = [p for p in pulled.parent.iterdir() if fileio.is_temp_name(p.name)]
    assert leftovers == []


def test_push_then_pull_dataset_is_byte_identical(remote: HubHTTPServer, tmp_path: Path) -> None:
    source = _make_dataset_repo(tmp_path / "hub-a")
    result = hub.push_repo(DATASET_ID, "dataset", hub=tmp_path / "hub-a", endpoint=remote.url)
    assert result.revision == hub.repo_revision(source)
    assert result.commit == result.revision  # the server's commit sha is the content revision
    assert result.repo_url == f"{remote.url}/datasets/{DATASET_ID}"

    pulled = hub.pull_repo(DATASET_ID, "dataset", hub=tmp_path / "hub-b", endpoint=remote.url)
    assert pulled == hub.local_repo_dir(DATASET_ID, "dataset", tmp_path / "hub-b")
    _assert_same_repo(source, pulled)


def test_push_then_pull_model_is_byte_identical(remote: HubHTTPServer, tmp_path: Path) -> None:
    from safetensors.numpy import load_file

    source = _make_model_repo(tmp_path / "hub-a")
    hub.push_repo(MODEL_ID, "model", hub=tmp_path / "hub-a", endpoint=remote.url)
    pulled = hub.pull_repo(MODEL_ID, "model", hub=tmp_path / "hub-b", endpoint=remote.url)
    _assert_same_repo(source, pulled)
    np.testing.assert_array_equal(
        load_file(pulled / "model.safetensors")["head.bias"], np.arange(5, dtype=np.float32)
    )


def test_push_mirrors_deletions_and_pull_replaces_local_copy(
    remote: HubHTTPServer, tmp_path: Path
) -> None:
    source = _make_dataset_repo(tmp_path / "hub-a")
    hub.push_repo(DATASET_ID, "dataset", hub=tmp_path / "hub-a", endpoint=remote.url)
    hub.pull_repo(DATASET_ID, "dataset", hub=tmp_path / "hub-b", endpoint=remote.url)

    (source / "meta" / "sources" / "ucb.json").unlink()
    (source / "data" / "extra.csv").write_text("a,b\n1,2\n")
    hub.push_repo(DATASET_ID, "dataset", hub=tmp_path / "hub-a", endpoint=remote.url)
    pulled = hub.pull_repo(DATASET_ID, "dataset", hub=tmp_path / "hub-b", endpoint=remote.url)
    _assert_same_repo(source, pulled)
    assert not (pulled / "meta").exists()
    # Pushing unchanged content is a no-op that reports the same revision.
    again = hub.push_repo(DATASET_ID, "dataset", hub=tmp_path / "hub-a", endpoint=remote.url)
    assert again.commit == hub.repo_revision(source)


def test_push_of_missing_local_repo_is_a_clear_error(remote: HubHTTPServer, tmp_path: Path) -> None:
    with pytest.raises(AdbenchError, match="nothing to push") as excinfo:
        hub.push_repo(DATASET_ID, "dataset", hub=tmp_path / "empty-hub", endpoint=remote.url)
    assert str(tmp_path / "empty-hub") in str(excinfo.value)


def test_resolve_repo_prefers_local(tmp_path: Path) -> None:
    local = _make_dataset_repo(tmp_path / "hub")
    # The endpoint is dead: finding the repo locally must not need it.
    found = hub.resolve_repo(
        DATASET_ID, "dataset", hub=tmp_path / "hub", endpoint=CLOSED_PORT_ENDPOINT
    )
    assert found == local
    revision = hub.repo_revision(local)
    pinned = hub.resolve_repo(
        DATASET_ID,
        "dataset",
        hub=tmp_path / "hub",
        endpoint=CLOSED_PORT_ENDPOINT,
        revision=revision,
    )
    assert pinned == local


def test_resolve_repo_pulls_when_not_local(remote: HubHTTPServer, tmp_path: Path) -> None:
    source = _make_dataset_repo(tmp_path / "hub-a")
    hub.push_repo(DATASET_ID, "dataset", hub=tmp_path / "hub-a", endpoint=remote.url)
    found = hub.resolve_repo(DATASET_ID, "dataset", hub=tmp_path / "hub-b", endpoint=remote.url)
    assert found == hub.local_repo_dir(DATASET_ID, "dataset", tmp_path / "hub-b")
    _assert_same_repo(source, found)


def test_resolve_repo_via_hf_endpoint_env(
    remote: HubHTTPServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    source = _make_model_repo(tmp_path / "hub-a")
    monkeypatch.setenv("HF_ENDPOINT", remote.url)
    monkeypatch.setenv("ADBENCH_HUB", str(tmp_path / "hub-a"))
    hub.push_repo(MODEL_ID, "model")
    monkeypatch.setenv("ADBENCH_HUB", str(tmp_path / "hub-b"))
    _assert_same_repo(source, hub.resolve_repo(MODEL_ID, "model"))


def test_resolve_repo_missing_everywhere_names_both_places(
    remote: HubHTTPServer, tmp_path: Path
) -> None:
    with pytest.raises(AdbenchError) as excinfo:
        hub.resolve_repo("ad-bench/nope", "dataset", hub=tmp_path / "hub", endpoint=remote.url)
    message = str(excinfo.value)
    assert "\n" not in message
    assert str(hub.local_repo_dir("ad-bench/nope", "dataset", tmp_path / "hub")) in message
    assert remote.url in message
    assert "has no such repo" in message
    assert "adbench datasets build" in message and "--hub" in message
    assert not (tmp_path / "hub").exists()  # a failed pull creates nothing


def test_resolve_repo_unknown_revision(remote: HubHTTPServer, tmp_path: Path) -> None:
    _make_dataset_repo(tmp_path / "hub-a")
    hub.push_repo(DATASET_ID, "dataset", hub=tmp_path / "hub-a", endpoint=remote.url)
    with pytest.raises(AdbenchError, match="no revision 'deadbeef'") as excinfo:
        hub.resolve_repo(
            DATASET_ID, "dataset", hub=tmp_path / "hub-a", endpoint=remote.url, revision="deadbeef"
        )
    assert "at revision" in str(excinfo.value)  # the local copy exists, at another revision


def test_unreachable_endpoint_fails_fast_and_clearly(tmp_path: Path) -> None:
    _make_dataset_repo(tmp_path / "hub-a")
    started = time.monotonic()
    with pytest.raises(AdbenchError) as excinfo:
        hub.resolve_repo(
            DATASET_ID, "dataset", hub=tmp_path / "hub-b", endpoint=CLOSED_PORT_ENDPOINT
        )
    with pytest.raises(AdbenchError) as push_excinfo:
        hub.push_repo(DATASET_ID, "dataset", hub=tmp_path / "hub-a", endpoint=CLOSED_PORT_ENDPOINT)
    assert time.monotonic() - started < 5
    for message in (str(excinfo.value), str(push_excinfo.value)):
        assert "\n" not in message
        assert CLOSED_PORT_ENDPOINT in message and "cannot be reached" in message
    assert str(hub.local_repo_dir(DATASET_ID, "dataset", tmp_path / "hub-b")) in str(excinfo.value)


def test_invalid_endpoint_is_a_user_error(tmp_path: Path) -> None:
    with pytest.raises(AdbenchError, match="http"):
        hub.resolve_repo(DATASET_ID, "dataset", hub=tmp_path, endpoint="ftp://example")


def test_load_dataset_on_pulled_repo(remote: HubHTTPServer, tmp_path: Path) -> None:
    import datasets

    _make_dataset_repo(tmp_path / "hub-a")
    hub.push_repo(DATASET_ID, "dataset", hub=tmp_path / "hub-a", endpoint=remote.url)
    pulled = hub.pull_repo(DATASET_ID, "dataset", hub=tmp_path / "hub-b", endpoint=remote.url)
    loaded = datasets.load_dataset(str(pulled), split="train", cache_dir=str(tmp_path / "ds-cache"))
    assert loaded.to_dict() == _rows()


# --------------------------------------------------------------------------- server protocol


def test_server_speaks_the_client_protocol(remote: HubHTTPServer, tmp_path: Path) -> None:
    from huggingface_hub import HfApi, hf_hub_download
    from huggingface_hub.errors import EntryNotFoundError, RepositoryNotFoundError

    source = _make_dataset_repo(tmp_path / "hub-a")
    hub.push_repo(DATASET_ID, "dataset", hub=tmp_path / "hub-a", endpoint=remote.url)
    api = HfApi(endpoint=remote.url, token=False)

    info = api.dataset_info(DATASET_ID)
    assert info.sha == hub.repo_revision(source)
    assert sorted(s.rfilename for s in info.siblings or []) == hub.repo_files(source)
    assert api.list_repo_files(DATASET_ID, repo_type="dataset") == hub.repo_files(source)
    top = {e.path for e in api.list_repo_tree(DATASET_ID, repo_type="dataset")}
    assert top == {"README.md", "data", "meta"}
    nested = {e.path for e in api.list_repo_tree(DATASET_ID, "meta", repo_type="dataset")}
    assert nested == {"meta/sources"}

    path = hf_hub_download(
        DATASET_ID,
        "meta/sources/ucb.json",
        repo_type="dataset",
        endpoint=remote.url,
        token=False,
        cache_dir=tmp_path / "hf-cache",
    )
    assert Path(path).read_bytes() == (source / "meta" / "sources" / "ucb.json").read_bytes()

    with pytest.raises(RepositoryNotFoundError):
        api.dataset_info("ad-bench/absent")
    with pytest.raises(RepositoryNotFoundError):
        api.model_info(DATASET_ID)  # repo types are separate namespaces
    with pytest.raises(EntryNotFoundError):
        hf_hub_download(
            DATASET_ID,
            "absent.txt",
            repo_type="dataset",
            endpoint=remote.url,
            token=False,
            cache_dir=tmp_path / "hf-cache",
        )


def test_download_headers_keep_client_off_xet(remote: HubHTTPServer, tmp_path: Path) -> None:
    source = _make_dataset_repo(tmp_path / "hub-a")
    hub.push_repo(DATASET_ID, "dataset", hub=tmp_path / "hub-a", endpoint=remote.url)
    status, headers, body = _http(remote, "HEAD", f"/datasets/{DATASET_ID}/resolve/main/README.md")
    assert status == 200 and body == b""
    assert headers["X-Repo-Commit"] == hub.repo_revision(source)
    assert headers["Content-Length"] == str(len(README.encode()))
    assert headers["ETag"].strip('"') == hub.file_digest(source / "README.md").git_oid
    assert not any(k.lower().startswith("x-xet") for k in headers) and "Link" not in headers

    request = urllib.request.Request(
        f"{remote.url}/datasets/{DATASET_ID}/resolve/main/README.md", headers={"Range": "bytes=4-"}
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        assert response.status == 206
        assert response.read() == README.encode()[4:]


@pytest.mark.parametrize(
    "path",
    [
        f"/datasets/{DATASET_ID}/resolve/main/..%2F..%2F..%2Fetc%2Fpasswd",
        f"/datasets/{DATASET_ID}/resolve/main/data/../../darkroom/README.md",
        f"/datasets/{DATASET_ID}/resolve/main/%2Fetc%2Fpasswd",
        "/datasets/ad-bench/..%2F..%2Fx/resolve/main/README.md",
        "/api/datasets/../../tree/main",
        "/api/datasets/ad-bench/..%2Fdarkroom",
    ],
)
def test_server_rejects_path_traversal(remote: HubHTTPServer, tmp_path: Path, path: str) -> None:
    _make_dataset_repo(tmp_path / "hub-a")
    hub.push_repo(DATASET_ID, "dataset", hub=tmp_path / "hub-a", endpoint=remote.url)
    status, headers, _ = _http(remote, "GET", path)
    assert status == 400, headers.get("X-Error-Message")


def test_failed_commit_changes_nothing(remote: HubHTTPServer, tmp_path: Path) -> None:
    source = _make_dataset_repo(tmp_path / "hub-a")
    hub.push_repo(DATASET_ID, "dataset", hub=tmp_path / "hub-a", endpoint=remote.url)
    served = remote.root / "datasets" / DATASET_ID
    before = _tree_bytes(served)
    lines = [
        {"key": "header", "value": {"summary": "bad", "description": ""}},
        {"key": "file", "value": {"path": "new.txt", "content": "aGk=", "encoding": "base64"}},
        {"key": "deletedFile", "value": {"path": "README.md"}},
        {"key": "lfsFile", "value": {"path": "big.bin", "algo": "sha256", "oid": "0" * 64}},
    ]
    body = b"".join(json.dumps(line).encode() + b"\n" for line in lines)
    status, headers, _ = _http(remote, "POST", f"/api/datasets/{DATASET_ID}/commit/main", body)
    assert status == 400 and "inline" in headers["X-Error-Message"]

    bad_path = [lines[0], {"key": "file", "value": {"path": "../escape.txt", "content": "aGk="}}]
    body = b"".join(json.dumps(line).encode() + b"\n" for line in bad_path)
    status, _, _ = _http(remote, "POST", f"/api/datasets/{DATASET_ID}/commit/main", body)
    assert status == 400

    assert _tree_bytes(served) == before == _tree_bytes(source)
    assert not (remote.root / "datasets" / "escape.txt").exists()
    assert [p.name for p in served.parent.iterdir()] == ["darkroom"]


def test_raw_commit_round_trip(remote: HubHTTPServer) -> None:
    status, _, _ = _http(
        remote,
        "POST",
        "/api/repos/create",
        json.dumps({"name": "raw", "organization": "ad-bench", "type": "model"}).encode(),
    )
    assert status == 200
    lines = [
        {"key": "header", "value": {"summary": "add", "description": ""}},
        {
            "key": "file",
            "value": {"path": "a/b.txt", "content": base64.b64encode(b"hi").decode()},
        },
    ]
    body = b"".join(json.dumps(line).encode() + b"\n" for line in lines)
    status, _, answer = _http(remote, "POST", "/api/models/ad-bench/raw/commit/main", body)
    assert status == 200
    sha = json.loads(answer)["commitOid"]
    status, headers, content = _http(remote, "GET", f"/ad-bench/raw/resolve/{sha}/a/b.txt")
    assert (status, content, headers["X-Repo-Commit"]) == (200, b"hi", sha)
    status, headers, _ = _http(remote, "GET", f"/ad-bench/raw/resolve/{'0' * 40}/a/b.txt")
    assert (status, headers["X-Error-Code"]) == (404, "RevisionNotFound")


def test_read_only_server_refuses_push(tmp_path: Path) -> None:
    _make_dataset_repo(tmp_path / "hub-a")
    server, thread = serve(tmp_path / "remote", read_only=True)
    try:
        with pytest.raises(AdbenchError, match="HTTP 403") as excinfo:
            hub.push_repo(DATASET_ID, "dataset", hub=tmp_path / "hub-a", endpoint=server.url)
        assert "\n" not in str(excinfo.value)
    finally:
        server.shutdown()
        server.server_close()
        thread.join()
    assert not (tmp_path / "remote" / "datasets").exists()


def test_create_commit_path_with_readme_validation(remote: HubHTTPServer, tmp_path: Path) -> None:
    """``create_commit`` (used by ``upload_file``, and by ``upload_folder`` without hf_xet)
    validates README metadata with the server first, then commits; deletions work too."""
    from huggingface_hub import CommitOperationAdd, CommitOperationDelete, HfApi

    api = HfApi(endpoint=remote.url, token=False)
    api.create_repo(MODEL_ID, repo_type="model", exist_ok=True)
    api.create_repo(MODEL_ID, repo_type="model", exist_ok=True)  # exists already: fine
    api.create_commit(
        MODEL_ID,
        [
            CommitOperationAdd("README.md", README.encode()),
            CommitOperationAdd("weights/w.bin", b"\x00" * 1000),
        ],
        commit_message="first",
    )
    info = api.upload_file(path_or_fileobj=b"{}", path_in_repo="config.json", repo_id=MODEL_ID)
    api.create_commit(MODEL_ID, [CommitOperationDelete("weights/")], commit_message="drop")
    assert api.list_repo_files(MODEL_ID) == ["README.md", "config.json"]
    assert info.oid != api.model_info(MODEL_ID).sha
    pulled = hub.pull_repo(MODEL_ID, "model", hub=tmp_path / "hub", endpoint=remote.url)
    assert _tree_bytes(pulled) == {"README.md": README.encode(), "config.json": b"{}"}


# --------------------------------------------------------------------------- revisions


def _publish_tiny_model(tmp_path: Path, hub_dir: Path, seed: int) -> tuple[str, str]:
    """Publish an untrained bandit AD model (seed ``seed``) as MODEL_ID; its revision and
    the sha256 of its weights."""
    from conftest import tiny_bandit_model

    from adbench.models.publishing import publish_model

    saved = tmp_path / f"model-{seed}"
    tiny_bandit_model(seed).save_pretrained(saved)
    target = publish_model(saved, MODEL_ID, hub=hub_dir)
    return hub.repo_revision(target), fileio.sha256_file(saved / "model.safetensors")


def test_an_older_model_revision_is_evaluated_by_sha_after_the_repo_was_updated(
    tmp_path: Path,
) -> None:
    from conftest import run_cli_here

    hub_dir = tmp_path / "hub"
    first, first_weights = _publish_tiny_model(tmp_path, hub_dir, seed=0)
    second, second_weights = _publish_tiny_model(tmp_path, hub_dir, seed=1)
    assert first != second and first_weights != second_weights
    main = hub.local_repo_dir(MODEL_ID, "model", hub_dir)
    assert hub.repo_revision(main) == second  # main moved on
    older = hub.resolve_repo(MODEL_ID, "model", hub=hub_dir, revision=first[:12])
    assert hub.repo_revision(older) == first and older != main
    assert fileio.sha256_file(older / "model.safetensors") == first_weights
    # Unchanged files are stored once: the two revisions share their config-free files.
    from adbench.hub_revisions import OBJECTS_DIR, revisions

    recorded = revisions(MODEL_ID, "model", hub_dir)
    assert [r.sha for r in recorded] == [second, first] and recorded[0].parent == first
    contents = {d.sha256 for r in recorded for d in r.files.values()}
    assert len(list((hub_dir / OBJECTS_DIR).rglob("*"))) - len(
        list((hub_dir / OBJECTS_DIR).glob("*"))
    ) == len(contents)
    out = tmp_path / "results"
    run = run_cli_here(
        "evaluate", "--model", MODEL_ID, "--revision", first[:12], "--hub", str(hub_dir),
        "--benchmark", "bandit", "--episodes", "1", "--seeds", "1", "--output", str(out),
    )  # fmt: skip
    assert run.returncode == 0, run.stderr
    (summary_path,) = (out / "bandit").glob("*.json")
    summary = json.loads(summary_path.read_text())
    assert summary["model"]["revision"] == first
    assert summary["model"]["weights_sha256"] == first_weights
    unknown = run_cli_here(
        "evaluate", "--model", MODEL_ID, "--revision", "0123456789ab", "--hub", str(hub_dir),
        "--benchmark", "bandit", "--episodes", "1", "--seeds", "1", "--output", str(out),
    )  # fmt: skip
    assert unknown.returncode == 2 and "0123456789ab" in unknown.stderr


def test_the_stock_clients_list_and_read_older_revisions_from_the_server(
    remote: HubHTTPServer, tmp_path: Path
) -> None:
    """huggingface_hub's HfApi, datasets.load_dataset and transformers' from_pretrained,
    unmodified, against `adbench hub serve` after a repo was updated."""
    import subprocess
    import sys

    from huggingface_hub import HfApi, hf_hub_download

    local = tmp_path / "local"
    first, _ = _publish_tiny_model(tmp_path, local, seed=0)
    hub.push_repo(MODEL_ID, "model", hub=local, endpoint=remote.url)
    second, _ = _publish_tiny_model(tmp_path, local, seed=1)
    hub.push_repo(MODEL_ID, "model", hub=local, endpoint=remote.url)
    _make_dataset_repo(local)
    hub.push_repo(DATASET_ID, "dataset", hub=local, endpoint=remote.url)

    api = HfApi(endpoint=remote.url, token=False)
    commits = api.list_repo_commits(MODEL_ID)
    assert [c.commit_id for c in commits] == [second, first]
    assert commits[0].title.startswith("adbench push model")
    refs = api.list_repo_refs(MODEL_ID)
    assert [(b.name, b.target_commit) for b in refs.branches] == [("main", second)]
    assert [(m.id, m.sha) for m in api.list_models()] == [(MODEL_ID, second)]
    assert [d.id for d in api.list_datasets(search="dark")] == [DATASET_ID]
    assert list(api.list_datasets(author="nobody")) == []
    assert api.model_info(MODEL_ID, revision=first[:10]).sha == first
    config = hf_hub_download(
        MODEL_ID, "config.json", revision=first, endpoint=remote.url, cache_dir=tmp_path / "c"
    )
    assert json.loads(Path(config).read_text()) == json.loads(
        (tmp_path / "model-0" / "config.json").read_text()
    )

    # pull --revision of an older sha: it joins the local hub's revisions, main stays.
    mirror = tmp_path / "mirror"
    hub.pull_repo(MODEL_ID, "model", hub=mirror, endpoint=remote.url)
    older = hub.pull_repo(MODEL_ID, "model", hub=mirror, endpoint=remote.url, revision=first)
    assert hub.repo_revision(older) == first
    assert hub.repo_revision(hub.local_repo_dir(MODEL_ID, "model", mirror)) == second

    # datasets and transformers in a fresh process whose HF_ENDPOINT is the server.
    hub.push_repo(DATASET_ID, "dataset", hub=local, endpoint=remote.url)
    dataset_first = api.dataset_info(DATASET_ID).sha
    repo = hub.local_repo_dir(DATASET_ID, "dataset", local)
    pq.write_table(
        pa.table({k: v[:2] for k, v in _rows().items()}),
        repo / "data" / "train-00000-of-00001.parquet",
    )
    hub.push_repo(DATASET_ID, "dataset", hub=local, endpoint=remote.url)
    assert api.dataset_info(DATASET_ID).sha != dataset_first
    script = (
        "import sys, datasets, transformers\n"
        "import adbench.models\n"
        f"old = datasets.load_dataset({DATASET_ID!r}, revision={dataset_first!r}, split='train')\n"
        f"new = datasets.load_dataset({DATASET_ID!r}, split='train')\n"
        f"config = transformers.AutoConfig.from_pretrained({MODEL_ID!r}, revision={first!r})\n"
        "print(len(old), len(new), config.model_type)\n"
    )
    env = {**os.environ, "HF_ENDPOINT": remote.url, "HF_HOME": str(tmp_path / "fresh-hf"),
           "NO_PROXY": "127.0.0.1", "HF_HUB_DISABLE_TELEMETRY": "1"}  # fmt: skip
    env.pop("HF_HUB_OFFLINE", None)
    env.pop("HF_DATASETS_OFFLINE", None)
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=300
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.split() == ["5", "2", "adbench_ad"]
