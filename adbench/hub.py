"""The local hub: datasets and models on disk, laid out like the Hugging Face Hub.

Layout: ``<root>/datasets/<org>/<name>/...`` and ``<root>/models/<org>/<name>/...``, each repo a
plain directory of files (its ``main``; :mod:`adbench.hub_storage`), with every revision it
published kept beside them (:mod:`adbench.hub_revisions`). This module is the client side:
every stage reads repos through ``resolve_repo``, which looks in the
local hub first and otherwise downloads from a remote hub with the ordinary ``huggingface_hub``
client: the Hugging Face Hub itself, or a colleague's ``adbench hub serve`` (``HF_ENDPOINT``).
There is one code path for every endpoint; only the endpoint URL differs.

huggingface_hub is imported lazily, inside the remote functions, so that listing or serving a
local hub does not pay for (or depend on) the client.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from adbench.errors import AdbenchError
from adbench.fileio import atomic_directory, remove_path, temp_dir_beside
from adbench.hub_revisions import find_revision, record_published, record_revision, revision_dir
from adbench.hub_storage import (  # re-exported: the hub's public API
    REPO_ID_EXAMPLE,
    REPO_TYPE_DIRS,
    REPO_TYPES,
    FileDigest,
    RepoInfo,
    RepoType,
    file_digest,
    hub_root,
    is_repo_dir,
    list_repos,
    local_repo_dir,
    repo_files,
    repo_revision,
    revision_of_digests,
    validate_repo_id,
    validate_repo_type,
)

if TYPE_CHECKING:
    from huggingface_hub import HfApi

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
    """Download a repo from the remote hub into the local hub; returns its directory.

    The remote's ``main`` (no ``revision``, or the sha of its main) replaces the local copy;
    an older revision is added to the local hub's revisions (:mod:`adbench.hub_revisions`)
    and leaves the local ``main`` as it is. The files are downloaded into a temporary
    directory and published only once complete, so an interrupted pull never leaves a
    partial repo behind.
    """
    from huggingface_hub import snapshot_download

    validate_repo_id(repo_id)
    repo_type = validate_repo_type(repo_type)
    url = remote_endpoint(endpoint)
    final_dir = local_repo_dir(repo_id, repo_type, hub)
    api, hf_token = _make_api(url, token)
    recorded = None
    try:
        # Resolving the revision first, with a timeout, fails fast and clearly when the endpoint
        # is down or lacks the repo; pinning the download to the resolved commit then keeps
        # every file of the snapshot from the same version even if someone pushes meanwhile.
        info = api.repo_info(
            repo_id, repo_type=repo_type, revision=revision, timeout=REMOTE_TIMEOUT_S
        )
        if not info.sha:
            raise AdbenchError(f"{url} did not report a commit for {repo_type} repo {repo_id!r}")
        is_main = revision is None or (
            api.repo_info(repo_id, repo_type=repo_type, timeout=REMOTE_TIMEOUT_S).sha == info.sha
        )
        if is_main:
            record_published(final_dir)  # the local main it replaces stays resolvable
        # A throwaway cache keeps huggingface_hub from writing refs into ~/.cache/huggingface.
        with (
            tempfile.TemporaryDirectory(prefix="adbench-pull-") as scratch_cache,
            atomic_directory(final_dir) if is_main else _scratch_dir(final_dir) as download_dir,
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
            if not is_main:
                recorded = record_revision(
                    download_dir, repo_id, repo_type, hub, f"pulled from {url} at {info.sha}"
                )
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
    if not is_main:
        if recorded is None:
            raise AdbenchError(
                f"{url} sent no files for {repo_type} repo {repo_id!r} at {info.sha}"
            )
        return revision_dir(repo_id, repo_type, recorded, hub)
    record_published(final_dir, f"pulled from {url} at {info.sha}")
    return final_dir


@contextlib.contextmanager
def _scratch_dir(beside: Path) -> Iterator[Path]:
    """A temporary directory beside ``beside`` (same file system: the revision store links
    its files), removed afterwards."""
    scratch = temp_dir_beside(beside)
    try:
        yield scratch
    finally:
        remove_path(scratch)


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

    With ``revision`` (a sha or a prefix of 7+ characters), the local copy is used if its
    content revision (``repo_revision``) starts with it; else a revision of the local hub's
    record (:mod:`adbench.hub_revisions`) that does; otherwise that revision is pulled from
    the remote hub.
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
    if revision is not None:
        recorded = find_revision(repo_id, repo_type, revision, hub)
        if recorded is not None:
            return revision_dir(repo_id, repo_type, recorded, hub)
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


__all__ = [
    "REPO_ID_EXAMPLE",
    "REPO_TYPES",
    "REPO_TYPE_DIRS",
    "FileDigest",
    "PushResult",
    "RepoInfo",
    "RepoType",
    "file_digest",
    "hub_root",
    "is_repo_dir",
    "list_repos",
    "local_repo_dir",
    "pull_repo",
    "push_folder",
    "push_repo",
    "remote_endpoint",
    "repo_files",
    "repo_revision",
    "resolve_repo",
    "revision_of_digests",
    "validate_repo_id",
    "validate_repo_type",
]
