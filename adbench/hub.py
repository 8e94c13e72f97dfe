"""The local hub: datasets and models on disk, laid out like the Hugging Face Hub.

Layout: ``<root>/datasets/<org>/<name>/...`` and ``<root>/models/<org>/<name>/...``, each repo a
plain directory of files. Every stage reads repos through ``resolve_repo``, which looks in the
local hub first and otherwise downloads from a remote hub with the ordinary ``huggingface_hub``
client: the Hugging Face Hub itself, or a colleague's ``adbench hub serve`` (``HF_ENDPOINT``).
There is one code path for every endpoint; only the endpoint URL differs.

huggingface_hub is imported lazily, inside the remote functions, so that listing or serving a
local hub does not pay for (or depend on) the client.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import os
import re
import tempfile
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, cast

from adbench.errors import AdbenchError
from adbench.fileio import HASH_CHUNK_BYTES, atomic_directory, is_temp_name, remove_path

if TYPE_CHECKING:
    from huggingface_hub import HfApi

RepoType = Literal["dataset", "model"]
REPO_TYPES: tuple[RepoType, ...] = ("dataset", "model")
REPO_TYPE_DIRS: dict[RepoType, str] = {"dataset": "datasets", "model": "models"}

REPO_ID_EXAMPLE = "ad-bench/darkroom"
_REPO_PART = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,95}")
_REPO_ID_RULE = (
    "a repo id is 'org/name', each part 1-96 letters, digits, '.', '_' or '-', starting with a "
    "letter or digit, not ending with '.' or '-', without '--' or '..'"
)

# Folders huggingface_hub never uploads (``DEFAULT_IGNORE_PATTERNS``): leaving them out of a
# repo's file set keeps the local revision equal to the revision of what a push sends.
_SKIPPED_DIRS = frozenset({".git"})
_SKIPPED_NESTED_DIRS = frozenset({(".cache", "huggingface")})

# What push hands to ``upload_folder(ignore_patterns=...)`` so that half-written files of a
# concurrent writer are never uploaded (fnmatch's '*' also matches '/').
_TEMP_IGNORE_PATTERNS = [".adbench-tmp-*", "*/.adbench-tmp-*"]

# Seconds to wait for the remote hub to answer the first request of a push or pull. The
# shared huggingface_hub HTTP client has no timeout by default, so a silently dropped
# connection would otherwise hang forever; later requests then use huggingface_hub's own
# ``HF_HUB_ETAG_TIMEOUT``/``HF_HUB_DOWNLOAD_TIMEOUT`` (10 s by default).
REMOTE_TIMEOUT_S = 10.0

_FIX_HINTS: dict[RepoType, str] = {
    "dataset": (
        "build it with `adbench datasets build`, push it from a machine that has it with "
        "`adbench datasets push`, or pass --hub DIR / --endpoint URL for a hub that has it"
    ),
    "model": (
        "push it from a machine that has it with `adbench push`, or pass --hub DIR / "
        "--endpoint URL for a hub that has it"
    ),
}


# --------------------------------------------------------------------------- local layout


def hub_root(hub: str | Path | None = None) -> Path:
    """The local hub directory: ``hub`` > env ``ADBENCH_HUB`` > ``$XDG_CACHE_HOME/adbench/hub``
    > ``~/.cache/adbench/hub``. The directory need not exist yet."""
    if hub is not None and str(hub) != "":
        chosen = Path(hub)
    elif os.environ.get("ADBENCH_HUB"):
        chosen = Path(os.environ["ADBENCH_HUB"])
    elif os.environ.get("XDG_CACHE_HOME"):
        chosen = Path(os.environ["XDG_CACHE_HOME"]) / "adbench" / "hub"
    else:
        chosen = Path("~/.cache/adbench/hub")
    root = chosen.expanduser().absolute()
    if root.exists() and not root.is_dir():
        raise AdbenchError(
            f"the local hub {root} is a file: give a directory with --hub (or $ADBENCH_HUB)"
        )
    return root


def validate_repo_id(repo_id: str) -> tuple[str, str]:
    """Split ``org/name`` into its two parts, or raise AdbenchError saying what is wrong.

    Every repo id a user gives goes through here, which is also what keeps ids from escaping
    the hub directory ('..', absolute paths, extra slashes are all rejected).
    """
    if not isinstance(repo_id, str):
        raise AdbenchError(
            f"invalid repo id {repo_id!r}: expected a string; {_REPO_ID_RULE} "
            f"(for example {REPO_ID_EXAMPLE})"
        )
    parts = repo_id.split("/")
    if len(parts) != 2:
        problem = "it has no '/'" if len(parts) == 1 else f"it has {len(parts) - 1} '/'"
        raise AdbenchError(
            f"invalid repo id {repo_id!r}: {problem}; {_REPO_ID_RULE} "
            f"(for example {REPO_ID_EXAMPLE})"
        )
    for part in parts:
        problem = None
        if not _REPO_PART.fullmatch(part):
            problem = f"{part!r} is empty, too long or has a character that is not allowed"
        elif "--" in part or ".." in part:
            problem = f"{part!r} contains '--' or '..'"
        elif part.endswith((".", "-")):
            problem = f"{part!r} ends with '.' or '-'"
        if problem:
            raise AdbenchError(
                f"invalid repo id {repo_id!r}: {problem}; {_REPO_ID_RULE} "
                f"(for example {REPO_ID_EXAMPLE})"
            )
    return parts[0], parts[1]


def validate_repo_type(repo_type: str) -> RepoType:
    """Check that ``repo_type`` is 'dataset' or 'model'."""
    if repo_type not in REPO_TYPES:
        raise AdbenchError(f"invalid repo type {repo_type!r}: use 'dataset' or 'model'")
    return cast(RepoType, repo_type)


def local_repo_dir(repo_id: str, repo_type: RepoType, hub: str | Path | None = None) -> Path:
    """Where repo ``repo_id`` lives in the local hub, whether or not it exists."""
    org, name = validate_repo_id(repo_id)
    return hub_root(hub) / REPO_TYPE_DIRS[validate_repo_type(repo_type)] / org / name


def repo_files(path: str | Path) -> list[str]:
    """Relative POSIX paths of every file of a repo directory, sorted.

    Left out: temporary files of unfinished atomic writes, ``.git/`` and ``.cache/huggingface/``
    (never uploaded by huggingface_hub). Symlinked files are included, symlinked directories
    are not followed.
    """
    root = Path(path)
    found: list[str] = []
    for dirpath, dirnames, filenames in os.walk(root):
        rel_dir = Path(dirpath).relative_to(root)
        parent_name = rel_dir.name
        dirnames[:] = [
            d
            for d in dirnames
            if not is_temp_name(d)
            and d not in _SKIPPED_DIRS
            and (parent_name, d) not in _SKIPPED_NESTED_DIRS
        ]
        for filename in filenames:
            if is_temp_name(filename):
                continue
            full = Path(dirpath) / filename
            if full.is_file():
                found.append((rel_dir / filename).as_posix())
    return sorted(found)


def is_repo_dir(path: str | Path) -> bool:
    """Whether ``path`` is a directory holding at least one repo file."""
    return Path(path).is_dir() and bool(repo_files(path))


@dataclass(frozen=True)
class FileDigest:
    """Size and content hashes of one file: sha256, and the git blob id the Hub calls ``oid``."""

    size: int
    sha256: str
    git_oid: str


# File content is identified by (device, inode, size, mtime): adbench never rewrites a file in
# place (atomic writes make a new inode), so a hit can be trusted and a hub full of large
# files is hashed once per process instead of on every revision or server request.
_DIGEST_CACHE: dict[tuple[int, int, int, int], FileDigest] = {}
_DIGEST_CACHE_MAX = 200_000
_DIGEST_LOCK = threading.Lock()


def file_digest(path: str | Path) -> FileDigest:
    """sha256 and git blob id of a file, cached on its (device, inode, size, mtime)."""
    stat = os.stat(path)
    key = (stat.st_dev, stat.st_ino, stat.st_size, stat.st_mtime_ns)
    with _DIGEST_LOCK:
        cached = _DIGEST_CACHE.get(key)
    if cached is not None:
        return cached
    sha256 = hashlib.sha256()
    git = hashlib.sha1(f"blob {stat.st_size}\0".encode(), usedforsecurity=False)
    size = 0
    with open(path, "rb") as handle:
        while chunk := handle.read(HASH_CHUNK_BYTES):
            sha256.update(chunk)
            git.update(chunk)
            size += len(chunk)
    digest = FileDigest(size=size, sha256=sha256.hexdigest(), git_oid=git.hexdigest())
    if size == stat.st_size:  # the file did not change while it was read
        with _DIGEST_LOCK:
            if len(_DIGEST_CACHE) >= _DIGEST_CACHE_MAX:
                _DIGEST_CACHE.clear()
            _DIGEST_CACHE[key] = digest
    return digest


def revision_of_digests(pairs: list[tuple[str, str]]) -> str:
    """The content revision of (relative path, file sha256) pairs; see ``repo_revision``."""
    total = hashlib.sha256()
    for rel_path, sha in sorted(pairs):
        total.update(f"{rel_path}\0{sha}\n".encode())
    return total.hexdigest()[:40]


def repo_revision(path: str | Path) -> str:
    """Content revision of a local repo: 40 hex chars identifying exactly its files.

    It is the sha256 over the sorted lines ``"<relative posix path>\\0<sha256 of file>\\n"`` of
    every file listed by ``repo_files``, truncated to 40 hex characters (the length of a git
    commit id, so a remote hub can use it as its commit ``sha``). Results files record it to say
    which exact data or model they used.
    """
    root = Path(path)
    if not root.is_dir():
        raise AdbenchError(f"cannot compute the revision of {root}: it is not a directory")
    return revision_of_digests([(rel, file_digest(root / rel).sha256) for rel in repo_files(root)])


@dataclass(frozen=True)
class RepoInfo:
    """One repo of the local hub. ``revision`` is computed (hashing every file) on first use."""

    repo_id: str
    repo_type: RepoType
    path: Path
    num_files: int
    size_bytes: int
    last_modified: datetime

    @functools.cached_property
    def revision(self) -> str:
        return repo_revision(self.path)


def _repo_info(repo_id: str, repo_type: RepoType, path: Path) -> RepoInfo | None:
    files = repo_files(path)
    if not files:
        return None
    stats = [(path / rel).stat() for rel in files]
    return RepoInfo(
        repo_id=repo_id,
        repo_type=repo_type,
        path=path,
        num_files=len(files),
        size_bytes=sum(s.st_size for s in stats),
        last_modified=datetime.fromtimestamp(max(s.st_mtime for s in stats), tz=UTC),
    )


def _iter_repo_dirs(type_dir: Path) -> Iterator[tuple[str, Path]]:
    if not type_dir.is_dir():
        return
    for org_dir in sorted(type_dir.iterdir()):
        if not org_dir.is_dir() or org_dir.name.startswith("."):
            continue
        for repo_dir in sorted(org_dir.iterdir()):
            if not repo_dir.is_dir() or repo_dir.name.startswith("."):
                continue
            repo_id = f"{org_dir.name}/{repo_dir.name}"
            try:
                validate_repo_id(repo_id)
            except AdbenchError:
                continue  # a stray folder someone made by hand is not a repo
            yield repo_id, repo_dir


def list_repos(repo_type: RepoType, hub: str | Path | None = None) -> list[RepoInfo]:
    """Every non-empty repo of one type in the local hub, sorted by id."""
    type_dir = hub_root(hub) / REPO_TYPE_DIRS[validate_repo_type(repo_type)]
    infos = []
    for repo_id, repo_dir in _iter_repo_dirs(type_dir):
        try:
            info = _repo_info(repo_id, repo_type, repo_dir)
        except FileNotFoundError:
            continue  # replaced by a concurrent atomic write while we listed it
        if info is not None:
            infos.append(info)
    return infos


# --------------------------------------------------------------------------- remote hub


@dataclass(frozen=True)
class PushResult:
    """What ``push_repo`` sent where: the remote repo URL and the commit it made."""

    repo_url: str
    commit_url: str
    commit: str
    revision: str
    """Content revision (``repo_revision``) of the local repo that was pushed."""


class _RemoteUnavailable(AdbenchError):
    """The remote hub does not have the repo, or cannot be reached; ``reason`` says which."""

    def __init__(self, message: str, reason: str) -> None:
        super().__init__(message)
        self.reason = reason


def remote_endpoint(endpoint: str | None = None) -> str:
    """The remote hub URL: ``endpoint`` > env ``HF_ENDPOINT`` > huggingface_hub's default."""
    chosen = endpoint or os.environ.get("HF_ENDPOINT")
    if not chosen:
        from huggingface_hub import constants

        chosen = constants.ENDPOINT
    chosen = chosen.strip().rstrip("/")
    if not chosen.startswith(("http://", "https://")):
        raise AdbenchError(
            f"invalid hub endpoint {chosen!r}: it must be an http:// or https:// URL "
            "(for example http://127.0.0.1:8080 for `adbench hub serve`)"
        )
    return chosen


def _token_for(endpoint: str, token: str | None) -> str | bool | None:
    """The token argument to give huggingface_hub for ``endpoint``.

    Left alone (None), huggingface_hub sends the user's stored huggingface.co token to whatever
    endpoint it talks to, and may even refresh it over the network first. A team hub served
    with ``adbench hub serve`` must not receive it, so the stored token is only used for the
    Hugging Face Hub itself; any other endpoint gets a token only when one is passed.
    """
    if token is not None:
        return token
    from huggingface_hub import constants

    official = {
        constants._HF_DEFAULT_ENDPOINT.rstrip("/"),
        constants._HF_DEFAULT_STAGING_ENDPOINT.rstrip("/"),
    }
    return None if endpoint in official else False


def _one_line(text: str, limit: int = 300) -> str:
    flat = " ".join(str(text).split())
    return flat if len(flat) <= limit else flat[: limit - 3] + "..."


def _transport_error_types() -> tuple[type[BaseException], ...]:
    """Exception types meaning 'could not talk to the endpoint at all'."""
    from huggingface_hub.errors import LocalEntryNotFoundError, OfflineModeIsEnabled

    types: list[type[BaseException]] = [
        ConnectionError,
        TimeoutError,
        OfflineModeIsEnabled,
        LocalEntryNotFoundError,
    ]
    # huggingface_hub 1.x talks through httpx, 2.x through its fork httpx2.
    for module_name in ("httpx2", "httpx"):
        try:
            module = __import__(module_name)
        except ImportError:
            continue
        types.append(module.TransportError)
    return tuple(types)


def _describe_remote_error(exc: BaseException, revision: str | None) -> str | None:
    """Why a remote call failed, as a clause following the endpoint URL ("<url> has no such
    repo"), or None if the failure is a bug rather than something the user can fix."""
    from huggingface_hub.errors import (
        GatedRepoError,
        HfHubHTTPError,
        OfflineModeIsEnabled,
        RepositoryNotFoundError,
        RevisionNotFoundError,
    )

    if isinstance(exc, OfflineModeIsEnabled):
        return "was not asked: HF_HUB_OFFLINE is set, so huggingface_hub makes no request"
    if isinstance(exc, RevisionNotFoundError):
        return f"has the repo but no revision {revision!r}"
    if isinstance(exc, GatedRepoError):
        return "has the repo but gates it, and this token has no access"
    if isinstance(exc, RepositoryNotFoundError):
        return "has no such repo (or it is private and no valid token was given)"
    if isinstance(exc, _transport_error_types()):
        return f"cannot be reached ({type(exc).__name__}: {_one_line(str(exc), 150)})"
    if isinstance(exc, HfHubHTTPError):
        status = exc.response.status_code if exc.response is not None else "?"
        server = exc.server_message or str(exc).splitlines()[0]
        return f"answered HTTP {status} ({_one_line(server, 150)})"
    return None


def _make_api(endpoint: str, token: str | None) -> tuple[HfApi, str | bool | None]:
    from huggingface_hub import HfApi

    hf_token = _token_for(endpoint, token)
    return HfApi(endpoint=endpoint, token=hf_token), hf_token


def _remove_download_metadata(repo_dir: Path) -> None:
    """Drop what ``snapshot_download(local_dir=...)`` leaves beside the files it downloaded."""
    cache_dir = repo_dir / ".cache"
    remove_path(cache_dir / "huggingface")
    if cache_dir.is_dir() and not any(cache_dir.iterdir()):
        cache_dir.rmdir()


def pull_repo(
    repo_id: str,
    repo_type: RepoType,
    hub: str | Path | None = None,
    endpoint: str | None = None,
    revision: str | None = None,
    token: str | None = None,
) -> Path:
    """Download a repo from the remote hub into the local hub, replacing any local copy.

    The files are downloaded into a temporary directory beside the repo dir and swapped in only
    once complete, so an interrupted pull never leaves a partial repo behind.
    """
    from huggingface_hub import snapshot_download

    validate_repo_id(repo_id)
    repo_type = validate_repo_type(repo_type)
    url = remote_endpoint(endpoint)
    final_dir = local_repo_dir(repo_id, repo_type, hub)
    api, hf_token = _make_api(url, token)
    try:
        # Resolving the revision first, with a timeout, fails fast and clearly when the endpoint
        # is down or lacks the repo; pinning the download to the resolved commit then keeps
        # every file of the snapshot from the same version even if someone pushes meanwhile.
        info = api.repo_info(
            repo_id, repo_type=repo_type, revision=revision, timeout=REMOTE_TIMEOUT_S
        )
        if not info.sha:
            raise AdbenchError(f"{url} did not report a commit for {repo_type} repo {repo_id!r}")
        # A throwaway cache keeps huggingface_hub from writing refs into ~/.cache/huggingface.
        with (
            tempfile.TemporaryDirectory(prefix="adbench-pull-") as scratch_cache,
            atomic_directory(final_dir) as download_dir,
        ):
            snapshot_download(
                repo_id,
                repo_type=repo_type,
                revision=info.sha,
                endpoint=url,
                token=hf_token,
                local_dir=download_dir,
                cache_dir=scratch_cache,
                etag_timeout=REMOTE_TIMEOUT_S,
            )
            _remove_download_metadata(download_dir)
    except AdbenchError:
        raise
    except Exception as exc:
        reason = _describe_remote_error(exc, revision)
        if reason is None:
            raise
        raise _RemoteUnavailable(
            f"cannot pull {repo_type} repo {repo_id!r}: {url} {reason}; check the repo id, "
            "the endpoint (--endpoint or HF_ENDPOINT; start one with `adbench hub serve`) and "
            "the token",
            reason,
        ) from exc
    return final_dir


def _matches_revision(local_revision: str, wanted: str) -> bool:
    return len(wanted) >= 7 and local_revision.startswith(wanted.lower())


def resolve_repo(
    repo_id: str,
    repo_type: RepoType,
    hub: str | Path | None = None,
    endpoint: str | None = None,
    revision: str | None = None,
    token: str | None = None,
) -> Path:
    """The local directory of a repo: from the local hub if it is there, else pulled from the
    remote endpoint into the local hub.

    With ``revision``, the local copy is used only if its content revision (``repo_revision``)
    starts with it; otherwise that revision is pulled from the remote hub.
    """
    repo_type = validate_repo_type(repo_type)
    local_dir = local_repo_dir(repo_id, repo_type, hub)
    local_revision: str | None = None
    if is_repo_dir(local_dir):
        if revision is None:
            return local_dir
        local_revision = repo_revision(local_dir)
        if _matches_revision(local_revision, revision):
            return local_dir
    try:
        return pull_repo(
            repo_id, repo_type, hub=hub, endpoint=endpoint, revision=revision, token=token
        )
    except _RemoteUnavailable as exc:
        if local_revision is not None:
            local_part = f"the local hub has it at {local_dir} but at revision {local_revision}"
        else:
            local_part = f"it is not in the local hub ({local_dir})"
        wanted = f" at revision {revision!r}" if revision is not None else ""
        raise AdbenchError(
            f"{repo_type} repo {repo_id!r}{wanted} not found: {local_part}, and the remote hub "
            f"{remote_endpoint(endpoint)} {exc.reason}; to fix it, {_FIX_HINTS[repo_type]}"
        ) from exc


def push_repo(
    repo_id: str,
    repo_type: RepoType,
    hub: str | Path | None = None,
    endpoint: str | None = None,
    token: str | None = None,
    private: bool = False,
    commit_message: str | None = None,
) -> PushResult:
    """Upload a local repo to the remote hub, so that the remote repo ends up with exactly the
    local files (remote files that are not in the local repo are deleted in the same commit).
    """
    validate_repo_id(repo_id)
    repo_type = validate_repo_type(repo_type)
    local_dir = local_repo_dir(repo_id, repo_type, hub)
    if not is_repo_dir(local_dir):
        raise AdbenchError(
            f"nothing to push: {repo_type} repo {repo_id!r} is not in the local hub ({local_dir}); "
            "build it first (`adbench datasets build`) or pass --hub DIR to use another local hub"
        )
    return push_folder(
        local_dir,
        repo_id,
        repo_type,
        endpoint=endpoint,
        token=token,
        private=private,
        commit_message=commit_message,
    )


def push_folder(
    local_dir: Path,
    repo_id: str,
    repo_type: RepoType,
    endpoint: str | None = None,
    token: str | None = None,
    private: bool = False,
    commit_message: str | None = None,
) -> PushResult:
    """Upload the files of ``local_dir`` as the whole content of the remote repo (see
    :func:`push_repo`); ``local_dir`` need not be in the local hub."""
    validate_repo_id(repo_id)
    repo_type = validate_repo_type(repo_type)
    url = remote_endpoint(endpoint)
    revision = repo_revision(local_dir)
    api, _ = _make_api(url, token)
    from huggingface_hub.errors import RepositoryNotFoundError

    try:
        # A quick request with a timeout first: create_repo has none, and would hang forever on
        # an endpoint that silently drops packets.
        with contextlib.suppress(RepositoryNotFoundError):  # then it is created just below
            api.repo_info(repo_id, repo_type=repo_type, timeout=REMOTE_TIMEOUT_S)
        repo_url = api.create_repo(repo_id, repo_type=repo_type, private=private, exist_ok=True)
        commit = api.upload_folder(
            repo_id=repo_id,
            repo_type=repo_type,
            folder_path=local_dir,
            commit_message=commit_message or f"adbench push {repo_type} {repo_id} @ {revision}",
            ignore_patterns=list(_TEMP_IGNORE_PATTERNS),
            # Mirror the local repo: files deleted locally must not survive remotely, or the
            # remote content (and a later pull) would differ from what was pushed.
            delete_patterns=["*"],
        )
    except AdbenchError:
        raise
    except Exception as exc:
        reason = _describe_remote_error(exc, None)
        if reason is None:
            raise
        raise AdbenchError(
            f"cannot push {repo_type} repo {repo_id!r}: {url} {reason}; check the endpoint "
            "(--endpoint or HF_ENDPOINT; start one with `adbench hub serve`) and that the token "
            "may write there"
        ) from exc
    commit_info: Any = commit
    return PushResult(
        repo_url=str(repo_url),
        commit_url=str(commit_info.commit_url),
        commit=str(commit_info.oid),
        revision=revision,
    )
