"""A Hugging Face Hub-compatible HTTP server over a local hub directory.

``adbench hub serve`` shares a local hub on a network, and the tests push and pull through it
with the unmodified ``huggingface_hub`` client (``HF_ENDPOINT=http://host:port``). It speaks
exactly the part of the Hub API that client uses for ``create_repo``, ``upload_folder`` /
``create_commit``, ``repo_info``, ``list_repo_tree``, ``list_repo_commits``,
``list_repo_refs``, ``list_models``, ``list_datasets``, ``hf_hub_download`` and
``snapshot_download``, for model and dataset repos:

====================================================  =============================================
``POST /api/repos/create``                            create an empty repo (409 if it exists)
``GET  /api/{models,datasets}/<id>[/revision/<rev>]`` repo info: ``sha``, ``siblings``, ...
``GET  /api/{models,datasets}/<id>/tree/<rev>[/<p>]`` file and folder listing (``recursive=``)
``POST /api/{models,datasets}/<id>/preupload/<rev>``  upload mode of each file: always "regular"
``POST /api/{models,datasets}/<id>/commit/<rev>``     NDJSON commit (base64 files, deletions)
``GET  /api/{models,datasets}/<id>/commits/<rev>``   revisions up to ``<rev>``, newest first
``GET  /api/{models,datasets}/<id>/refs``            the branch ``main`` and its sha
``GET  /api/{models,datasets}``                      every repo (``search``, ``author``, ``limit``)
``POST /api/validate-yaml``, ``GET /api/whoami-v2``   accepted (no metadata checks, no accounts)
``HEAD|GET /[datasets/]<id>/resolve/<rev>/<path>``    file download with Hub headers
====================================================  =============================================

Design choices that keep the stock client on its plain HTTP path:

* preupload answers ``"regular"`` for every file, so file contents come inline (base64) in the
  commit. Answering ``"lfs"`` would send a client that has ``hf_xet`` installed (it is a
  dependency of huggingface_hub) to the Xet storage protocol, which this server does not speak;
  an ``lfsFile`` commit line is therefore refused with a clear 400.
* downloads never carry ``X-Xet-Hash`` or a ``Link: ...; rel="xet-auth"`` header and tree
  entries have no ``xetHash``, so the client downloads with a plain GET on ``/resolve``.
* the commit ``sha`` of a repo is its content revision (``adbench.hub.repo_revision``), so a
  pulled repo has the same revision locally as on the server. Only the branch ``main`` exists;
  ``<rev>`` may be ``main``, its sha, or the sha (or a 7+ character prefix) of any revision
  the hub recorded (:mod:`adbench.hub_revisions`); anything else is 404 RevisionNotFound.
* errors carry ``X-Error-Code`` (``RepoNotFound``, ``RevisionNotFound``, ``EntryNotFound``)
  and a JSON ``{"error": ...}`` body, which the client turns into its typed exceptions.

The repos themselves (snapshots at any revision, commits staged and swapped in, the
revision record) are :mod:`adbench.hub_store`; this module is the HTTP side only. It stays
over 500 lines on purpose: one request handler whose methods are the Hub's endpoints, with
the client-protocol notes they depend on beside them, and the bounded body reader. There is
no authentication; it binds to 127.0.0.1 unless told otherwise.

What a client can hold is bounded: every read waits at most ``read_timeout`` seconds (so an
idle or stalled connection is closed), a body must arrive at ``MIN_UPLOAD_BYTES_PER_S`` on
average, a body over ``max_body_bytes`` is refused with 413 before it is read, and a commit cut
off for any of these reasons removes its staging directory. Each connection has its own
thread, so a stalled client does not hold up the others.
"""

from __future__ import annotations

import contextlib
import functools
import json
import socket
import sys
import threading
import time
from collections.abc import Iterator
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import IO, Any
from urllib.parse import parse_qs, unquote, urlsplit

from adbench.errors import AdbenchError
from adbench.fileio import (
    HASH_CHUNK_BYTES,
    remove_path,
)
from adbench.hub import (
    REPO_TYPE_DIRS,
    FileDigest,
    RepoType,
    hub_root,
)
from adbench.hub_store import (
    MAIN_BRANCH,
    HubHTTPError,
    RepoSnapshot,
    RepoStore,
    apply_deletion,
    apply_file,
    bad_request,
    folder_oid,
    now_iso,
    validate_repo_path,
)

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8080

_PLURAL_TO_TYPE: dict[str, RepoType] = {plural: t for t, plural in REPO_TYPE_DIRS.items()}
_MAX_JSON_BODY = 64 * 1024 * 1024
DEFAULT_READ_TIMEOUT_S = 60.0
"""Seconds a client may stay silent mid-request (or idle between keep-alive requests)
before its connection is closed and whatever it was writing is removed."""
DEFAULT_MAX_BODY_BYTES = 16 * 2**30
"""The largest request body (a commit carries its files inline, base64)."""
MIN_UPLOAD_BYTES_PER_S = 64 * 1024
"""A body must arrive at least this fast on average (plus one read timeout of slack):
a client trickling a byte per timeout cannot hold a connection and a staging folder."""


class HubHTTPServer(ThreadingHTTPServer):
    """Serves the local hub at ``root``; one lock orders reads of a repo against commit swaps."""

    daemon_threads = True

    def __init__(
        self,
        address: tuple[str, int],
        root: Path,
        *,
        read_only: bool = False,
        log_requests: bool = False,
        read_timeout: float = DEFAULT_READ_TIMEOUT_S,
        max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
    ) -> None:
        if read_timeout <= 0 or max_body_bytes < 1:
            raise AdbenchError("the read timeout and the body size limit must be positive")
        self.root = Path(root).absolute()
        self.read_only = read_only
        self.log_requests = log_requests
        self.read_timeout = read_timeout
        self.max_body_bytes = max_body_bytes
        self.store = RepoStore(self.root)
        super().__init__(address, HubRequestHandler)

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        host_text = f"[{host}]" if ":" in str(host) else str(host)
        return f"http://{host_text}:{port}"


class _BodyReader:
    """Reads exactly Content-Length bytes of a request body, line by line or whole, by a
    deadline for the whole body. It reads at most one socket receive at a time and gives
    each receive only the time left, so a client that trickles bytes (each receive just
    within the socket timeout) is cut off at the deadline too."""

    _CHUNK = 1 << 20

    def __init__(
        self, stream: IO[bytes], length: int, deadline: float, sock: socket.socket | None
    ) -> None:
        self.stream = stream
        self._unreceived = length
        self._buffer = bytearray()
        self._scanned = 0  # bytes of the buffer known to hold no newline
        self.deadline = deadline
        self.sock = sock
        self._timeout = sock.gettimeout() if sock is not None else None

    @property
    def remaining(self) -> int:
        """Bytes of the body not yet returned to the caller."""
        return self._unreceived + len(self._buffer)

    def _receive(self) -> None:
        left = self.deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError("request body arrived too slowly")
        if self.sock is not None:
            self.sock.settimeout(left if self._timeout is None else min(self._timeout, left))
        read1 = getattr(self.stream, "read1", self.stream.read)
        data = read1(min(self._unreceived, self._CHUNK))
        if not data:
            raise bad_request("request body ended before its Content-Length")
        self._unreceived -= len(data)
        self._buffer += data
        if self._unreceived == 0:
            self.restore_timeout()  # the answer is sent with the usual timeout

    def readline(self) -> bytes:
        while True:
            end = self._buffer.find(b"\n", self._scanned)
            if end >= 0 or self._unreceived <= 0:
                cut = end + 1 if end >= 0 else len(self._buffer)
                line = bytes(self._buffer[:cut])
                del self._buffer[:cut]
                self._scanned = 0
                return line
            self._scanned = len(self._buffer)
            self._receive()

    def read_all(self) -> bytes:
        while self._unreceived > 0:
            self._receive()
        data = bytes(self._buffer)
        self._buffer.clear()
        self._scanned = 0
        return data

    def restore_timeout(self) -> None:
        if self.sock is not None:
            self.sock.settimeout(self._timeout)


class HubRequestHandler(BaseHTTPRequestHandler):
    """One request against the hub API; see the module docstring for the routes."""

    server: HubHTTPServer
    # Keep-alive: huggingface_hub reuses one connection for its many small requests.
    protocol_version = "HTTP/1.1"
    server_version = "adbench-hub"

    # ----------------------------------------------------------------- plumbing

    def log_message(self, format: str, *args: Any) -> None:
        if self.server.log_requests:
            super().log_message(format, *args)

    def do_GET(self) -> None:
        self._handle("GET")

    def do_HEAD(self) -> None:
        self._handle("HEAD")

    def do_POST(self) -> None:
        self._handle("POST")

    def do_PUT(self) -> None:
        self._handle("PUT")

    def do_DELETE(self) -> None:
        self._handle("DELETE")

    def setup(self) -> None:
        # StreamRequestHandler puts this timeout on the socket: every read of a request
        # line, a header or the body waits at most this long.
        self.timeout = self.server.read_timeout
        super().setup()

    def send_response(self, code: int, message: str | None = None) -> None:
        self._response_started = True
        super().send_response(code, message)

    def _handle(self, method: str) -> None:
        self._response_started = False
        length = self._content_length()
        deadline = time.monotonic() + self.server.read_timeout + length / MIN_UPLOAD_BYTES_PER_S
        self._body = _BodyReader(self.rfile, length, deadline, self.connection)
        head = method == "HEAD"
        try:
            if length > self.server.max_body_bytes:
                self.close_connection = True
                raise HubHTTPError(
                    HTTPStatus.REQUEST_ENTITY_TOO_LARGE,
                    f"request body of {length} bytes is over this hub's limit of "
                    f"{self.server.max_body_bytes} bytes",
                )
            self._route(method)
        except HubHTTPError as error:
            self._fail(error, head)
        except AdbenchError as error:  # an invalid repo id
            self._fail(bad_request(str(error)), head)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True  # the client went away mid-answer
        except TimeoutError as error:
            # A stalled client: its staging folder is already removed (every writer cleans
            # up on any exception); close the connection rather than wait for it.
            self.log_error("closing a stalled connection on %s %s: %s", method, self.path, error)
            self.close_connection = True
        except Exception as error:  # a bug: answer rather than drop the connection
            self.log_error("internal error on %s %s: %r", method, self.path, error)
            self._fail(
                HubHTTPError(HTTPStatus.INTERNAL_SERVER_ERROR, f"internal error: {error!r}"), head
            )
        self._body.restore_timeout()  # the next request on this connection starts afresh
        if self._body.remaining:
            # The unread rest of the body would be parsed as the next request on this
            # keep-alive connection.
            self.close_connection = True

    def _content_length(self) -> int:
        if self.headers.get("Transfer-Encoding"):
            self.close_connection = True
            return 0
        try:
            return max(0, int(self.headers.get("Content-Length", "0")))
        except ValueError:
            self.close_connection = True
            return 0

    def _base_url(self) -> str:
        host = self.headers.get("Host")
        return f"http://{host}" if host else self.server.url

    def _send_json(
        self,
        payload: Any,
        status: HTTPStatus = HTTPStatus.OK,
        headers: dict[str, str] | None = None,
    ) -> None:
        body = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.end_headers()
        self.wfile.write(body)

    def _fail(self, error: HubHTTPError, head: bool) -> None:
        if self._response_started:
            # Too late for an error status: cutting the connection is the only signal left.
            self.close_connection = True
            return
        self._send_error(error, head)

    def _send_error(self, error: HubHTTPError, head: bool) -> None:
        body = json.dumps({**error.extra_body, "error": error.message}).encode()
        # Header values must be latin-1 and on one line.
        header_message = " ".join(error.message.split()).encode("ascii", "replace").decode()
        self.send_response(error.status)
        self.send_header("Content-Type", "application/json; charset=utf-8")
        self.send_header("Content-Length", "0" if head else str(len(body)))
        self.send_header("X-Error-Message", header_message)
        if error.code:
            self.send_header("X-Error-Code", error.code)
        for key, value in error.extra_headers.items():
            self.send_header(key, value)
        self.end_headers()
        if not head:
            self.wfile.write(body)

    def _read_json(self) -> Any:
        if self._body.remaining > _MAX_JSON_BODY:
            self.close_connection = True
            raise HubHTTPError(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, "JSON body too large")
        raw = self._body.read_all()
        try:
            return json.loads(raw or b"null")
        except json.JSONDecodeError as error:
            raise bad_request(f"invalid JSON body: {error}") from error

    def _require_writable(self) -> None:
        if self.server.read_only:
            raise HubHTTPError(HTTPStatus.FORBIDDEN, "this hub is served read-only")

    # ----------------------------------------------------------------- routing

    def _route(self, method: str) -> None:
        split = urlsplit(self.path)
        # Split before unquoting: the client quotes a revision as one segment ('refs%2Fpr%2F1')
        # and a file path with its '/' kept.
        segments = [unquote(s) for s in split.path.split("/")[1:]]
        query = parse_qs(split.query)
        if segments and segments[0] == "api":
            self._route_api(method, segments[1:], query)
        else:
            self._route_resolve(method, segments)

    def _route_api(self, method: str, segs: list[str], query: dict[str, list[str]]) -> None:
        if segs == ["whoami-v2"] and method == "GET":
            return self._send_json(_WHOAMI)
        if segs == ["validate-yaml"] and method == "POST":
            self._read_json()
            return self._send_json({"errors": [], "warnings": []})
        if segs == ["repos", "create"] and method == "POST":
            return self._create_repo()
        if len(segs) == 1 and segs[0] in _PLURAL_TO_TYPE and method == "GET":
            return self._list_repos(_PLURAL_TO_TYPE[segs[0]], query)
        if len(segs) >= 3 and segs[0] in _PLURAL_TO_TYPE:
            repo_type = _PLURAL_TO_TYPE[segs[0]]
            repo_id = f"{segs[1]}/{segs[2]}"
            action = segs[3] if len(segs) > 3 else None
            rest = segs[4:]
            match (method, action):
                case ("GET", "commits") if len(rest) == 1:
                    return self._commits(repo_type, repo_id, rest[0])
                case ("GET", "refs") if not rest:
                    return self._refs(repo_type, repo_id)
                case ("GET", None):
                    return self._repo_info(repo_type, repo_id, MAIN_BRANCH)
                case ("GET", "revision") if len(rest) == 1:
                    return self._repo_info(repo_type, repo_id, rest[0])
                case ("GET", "tree") if rest:
                    recursive = query.get("recursive", ["false"])[0].lower() in ("1", "true")
                    return self._tree(repo_type, repo_id, rest[0], "/".join(rest[1:]), recursive)
                case ("POST", "preupload") if len(rest) == 1:
                    return self._preupload(repo_type, repo_id, rest[0])
                case ("POST", "commit") if len(rest) == 1:
                    return self._commit(repo_type, repo_id, rest[0], query)
        raise HubHTTPError(
            HTTPStatus.NOT_FOUND,
            f"{method} {urlsplit(self.path).path} is not an endpoint of this adbench hub server",
        )

    def _route_resolve(self, method: str, segs: list[str]) -> None:
        if method not in ("GET", "HEAD"):
            raise HubHTTPError(HTTPStatus.METHOD_NOT_ALLOWED, f"{method} is not allowed here")
        # '/datasets/<org>/<name>/resolve/<rev>/<path>' or '/<org>/<name>/resolve/<rev>/<path>'.
        if len(segs) >= 6 and segs[0] == "datasets" and segs[3] == "resolve":
            repo_type: RepoType = "dataset"
            repo_id, rest = f"{segs[1]}/{segs[2]}", segs[4:]
        elif len(segs) >= 5 and segs[2] == "resolve":
            repo_type = "model"
            repo_id, rest = f"{segs[0]}/{segs[1]}", segs[3:]
        else:
            raise HubHTTPError(HTTPStatus.NOT_FOUND, f"no such page: {urlsplit(self.path).path}")
        self._resolve(method, repo_type, repo_id, rest[0], "/".join(rest[1:]))

    # ----------------------------------------------------------------- read endpoints

    def _repo_info(self, repo_type: RepoType, repo_id: str, revision: str) -> None:
        store = self.server.store
        with store.lock:
            snap = store.snapshot(repo_type, repo_id, revision)
        self._send_json(_repo_json(repo_type, repo_id, snap))

    def _list_repos(self, repo_type: RepoType, query: dict[str, list[str]]) -> None:
        """``HfApi.list_models`` / ``list_datasets``: every repo, one page."""
        search = query.get("search", [None])[0]
        author = query.get("author", [None])[0]
        limit = query.get("limit", [None])[0]
        found = self.server.store.repos(repo_type, search=search, author=author)
        if limit is not None and limit.isdigit():
            found = found[: int(limit)]
        self._send_json([_repo_json(repo_type, repo_id, snap) for repo_id, snap in found])

    def _commits(self, repo_type: RepoType, repo_id: str, revision: str) -> None:
        """``HfApi.list_repo_commits``: the revisions up to ``revision``, newest first."""
        self._send_json(
            [
                {
                    "id": r.sha,
                    "authors": [{"user": "adbench"}],
                    "date": now_iso(r.created_at),
                    "title": r.message.split("\n")[0],
                    "message": r.message,
                }
                for r in self.server.store.commits(repo_type, repo_id, revision)
            ]
        )

    def _refs(self, repo_type: RepoType, repo_id: str) -> None:
        """``HfApi.list_repo_refs``: the one branch, ``main``."""
        store = self.server.store
        with store.lock:
            _, head = store.head(repo_type, repo_id)
        main = {"name": MAIN_BRANCH, "ref": f"refs/heads/{MAIN_BRANCH}", "targetCommit": head.sha}
        self._send_json({"branches": [main], "converts": [], "tags": [], "pullRequests": []})

    def _tree(
        self, repo_type: RepoType, repo_id: str, revision: str, path: str, recursive: bool
    ) -> None:
        store = self.server.store
        with store.lock:
            snap = store.snapshot(repo_type, repo_id, revision)
        base = validate_repo_path(path) if path else ""
        folders = snap.folders()
        if base and base not in folders:
            error = HubHTTPError(
                HTTPStatus.NOT_FOUND, f"Entry not found: no folder {base!r}", "EntryNotFound"
            )
            error.extra_headers["X-Repo-Commit"] = snap.sha
            raise error
        prefix = f"{base}/" if base else ""

        def wanted(rel: str) -> bool:
            if not rel.startswith(prefix):
                return False
            return recursive or "/" not in rel[len(prefix) :]

        entries: list[dict[str, Any]] = [
            {"type": "directory", "oid": folder_oid(snap, folder), "size": 0, "path": folder}
            for folder in sorted(folders)
            if wanted(folder)
        ]
        entries += [
            {"type": "file", "oid": d.git_oid, "size": d.size, "path": rel}
            for rel, d in sorted(snap.files.items())
            if wanted(rel)
        ]
        self._send_json(entries)

    def _resolve(
        self, method: str, repo_type: RepoType, repo_id: str, revision: str, path: str
    ) -> None:
        store = self.server.store
        with store.lock:
            snap = store.snapshot(repo_type, repo_id, revision)
            rel = validate_repo_path(path)
            digest = snap.files.get(rel)
            if digest is None:
                error = HubHTTPError(
                    HTTPStatus.NOT_FOUND,
                    f"Entry not found: {rel!r} is not in {repo_type} repo {repo_id!r}.",
                    "EntryNotFound",
                )
                error.extra_headers["X-Repo-Commit"] = snap.sha
                raise error
            # Opened under the lock: the open handle keeps this version's bytes readable even
            # if a commit swaps the directory while they are sent.
            handle = open(snap.paths[rel], "rb")  # noqa: SIM115 (closed below)
        with handle:
            self._send_file(method, handle, digest, snap.sha)

    def _send_file(self, method: str, handle: IO[bytes], digest: FileDigest, sha: str) -> None:
        start, end = 0, digest.size - 1
        status = HTTPStatus.OK
        range_header = self.headers.get("Range")
        if range_header and method == "GET" and digest.size > 0:
            parsed = _parse_range(range_header, digest.size)
            if parsed is None:
                error = HubHTTPError(
                    HTTPStatus.REQUESTED_RANGE_NOT_SATISFIABLE, f"bad range {range_header!r}"
                )
                error.extra_headers["Content-Range"] = f"bytes */{digest.size}"
                raise error
            start, end = parsed
            status = HTTPStatus.PARTIAL_CONTENT
        length = max(0, end - start + 1)
        self.send_response(status)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Length", str(length))
        self.send_header("Accept-Ranges", "bytes")
        # Regular (non-LFS) Hub files have their git blob id as ETag; huggingface_hub needs
        # ETag and X-Repo-Commit to accept a download at all.
        self.send_header("ETag", f'"{digest.git_oid}"')
        self.send_header("X-Repo-Commit", sha)
        if status == HTTPStatus.PARTIAL_CONTENT:
            self.send_header("Content-Range", f"bytes {start}-{end}/{digest.size}")
        self.end_headers()
        if method == "HEAD":
            return
        handle.seek(start)
        remaining = length
        while remaining > 0:
            chunk = handle.read(min(HASH_CHUNK_BYTES, remaining))
            if not chunk:
                break
            self.wfile.write(chunk)
            remaining -= len(chunk)
        if remaining:
            # The file shrank under us (edited outside adbench): the client must not take the
            # short body for the whole file.
            self.close_connection = True

    # ----------------------------------------------------------------- write endpoints

    def _create_repo(self) -> None:
        self._require_writable()
        body = self._read_json()
        if not isinstance(body, dict) or not isinstance(body.get("name"), str):
            raise bad_request("expected a JSON object with 'name' (and 'organization', 'type')")
        repo_type_name = body.get("type") or "model"
        if repo_type_name not in REPO_TYPE_DIRS:
            raise bad_request(f"this hub stores models and datasets only, not {repo_type_name!r}")
        repo_type: RepoType = repo_type_name
        organization = body.get("organization")
        if not organization:
            raise bad_request(
                "a repo id must be 'org/name': this hub has no user accounts to default to"
            )
        repo_id = f"{organization}/{body['name']}"
        url = f"{self._base_url()}/{_url_prefix(repo_type)}{repo_id}"
        if not self.server.store.create(repo_type, repo_id):
            error = HubHTTPError(
                HTTPStatus.CONFLICT, f"You already created this {repo_type} repo: {repo_id}"
            )
            # create_repo(exist_ok=True) reads the existing repo's URL from the 409 body.
            error.extra_body["url"] = url
            raise error
        self._send_json({"url": url, "name": repo_id, "id": repo_id})

    def _preupload(self, repo_type: RepoType, repo_id: str, revision: str) -> None:
        self._require_writable()
        body = self._read_json()
        files = body.get("files") if isinstance(body, dict) else None
        if not isinstance(files, list):
            raise bad_request("expected a JSON object with a 'files' list")
        store = self.server.store
        with store.lock:
            snap = store.snapshot(repo_type, repo_id, revision)
        answers = []
        for item in files:
            if not isinstance(item, dict) or not isinstance(item.get("path"), str):
                raise bad_request("each entry of 'files' needs a 'path'")
            rel = validate_repo_path(item["path"])
            existing = snap.files.get(rel)
            answers.append(
                {
                    "path": item["path"],
                    # Always inline: see the module docstring for why never "lfs".
                    "uploadMode": "regular",
                    "shouldIgnore": False,
                    # The git blob id of the file already there lets the client skip unchanged
                    # files.
                    "oid": existing.git_oid if existing else None,
                }
            )
        self._send_json({"files": answers, "commitOid": snap.sha})

    def _commit(
        self, repo_type: RepoType, repo_id: str, revision: str, query: dict[str, list[str]]
    ) -> None:
        self._require_writable()
        if query.get("create_pr", ["0"])[0] not in ("0", "false", ""):
            raise bad_request("this hub has no pull requests: commit to 'main' directly")
        header = self._read_commit_header()
        store = self.server.store
        staging, base = store.stage_commit(repo_type, repo_id, revision, header.get("parentCommit"))
        try:
            # The slow part (decoding and writing new files) runs without the lock.
            self._apply_operations(staging)
            message = str(header.get("summary") or "commit")
            if header.get("description"):
                message += "\n\n" + str(header["description"])
            new = store.finish_commit(repo_type, repo_id, staging, base, message)
        except BaseException:
            remove_path(staging)
            raise
        commit_url = f"{self._base_url()}/{_url_prefix(repo_type)}{repo_id}/commit/{new.sha}"
        self._send_json(
            {"success": True, "commitOid": new.sha, "commitUrl": commit_url, "hookOutput": ""}
        )

    def _read_commit_header(self) -> dict[str, Any]:
        if self._body.remaining <= 0:
            raise bad_request("empty commit body: expected NDJSON starting with a header line")
        first = _parse_ndjson_line(self._body.readline())
        if (
            first is None
            or first.get("key") != "header"
            or not isinstance(first.get("value"), dict)
        ):
            raise bad_request("a commit body must start with a {'key': 'header', ...} line")
        return first["value"]

    def _apply_operations(self, staging: Path) -> None:
        """Apply the NDJSON operations that follow the header, streaming, to ``staging``."""
        while self._body.remaining > 0:
            item = _parse_ndjson_line(self._body.readline())
            if item is None:
                continue
            key, value = item.get("key"), item.get("value")
            if not isinstance(value, dict) or not isinstance(value.get("path"), str):
                raise bad_request(f"commit line {key!r} has no 'path'")
            if key == "file":
                apply_file(staging, value)
            elif key in ("deletedFile", "deletedFolder"):
                apply_deletion(staging, value["path"], folder=key == "deletedFolder")
            elif key == "lfsFile":
                raise bad_request(
                    "this hub takes file contents inline only (upload mode 'regular'); LFS and "
                    "Xet uploads are not supported"
                )
            else:
                raise bad_request(f"unsupported commit operation {key!r}")


def _repo_json(repo_type: RepoType, repo_id: str, snap: RepoSnapshot) -> dict[str, Any]:
    """A repo as the Hub's API describes it (``ModelInfo`` / ``DatasetInfo`` fields)."""
    org, name = repo_id.split("/")
    siblings = [
        {"rfilename": rel, "size": d.size, "blobId": d.git_oid}
        for rel, d in sorted(snap.files.items())
    ]
    return {
        "_id": snap.sha[:24],
        "id": repo_id,
        "author": org,
        "sha": snap.sha,
        "lastModified": now_iso(snap.last_modified),
        "private": False,
        "gated": False,
        "disabled": False,
        "downloads": 0,
        "likes": 0,
        "tags": [],
        "siblings": siblings,
        "usedStorage": sum(d.size for d in snap.files.values()),
        **({"modelId": repo_id} if repo_type == "model" else {}),
        **({"name": name} if repo_type == "dataset" else {}),
    }


def _url_prefix(repo_type: RepoType) -> str:
    return "datasets/" if repo_type == "dataset" else ""


def _parse_ndjson_line(line: bytes) -> dict[str, Any] | None:
    line = line.strip()
    if not line:
        return None
    try:
        item = json.loads(line)
    except json.JSONDecodeError as error:
        raise bad_request(f"invalid NDJSON line in commit: {error}") from error
    if not isinstance(item, dict):
        raise bad_request("each NDJSON line of a commit must be a JSON object")
    return item


def _parse_range(header: str, size: int) -> tuple[int, int] | None:
    """(first, last) byte of a single 'bytes=a-b' / 'bytes=a-' / 'bytes=-n' range, or None."""
    unit, _, spec = header.partition("=")
    if unit.strip().lower() != "bytes" or "," in spec:
        return None
    first_text, _, last_text = spec.strip().partition("-")
    try:
        if first_text == "":
            suffix = int(last_text)
            if suffix <= 0:
                return None
            return max(0, size - suffix), size - 1
        first = int(first_text)
        last = int(last_text) if last_text else size - 1
    except ValueError:
        return None
    if first >= size or last < first:
        return None
    return first, min(last, size - 1)


_WHOAMI = {
    "type": "user",
    "id": "adbench",
    "name": "adbench",
    "fullname": "adbench local hub (no accounts)",
    "orgs": [],
    "auth": {"type": "access_token", "accessToken": {"displayName": "none", "role": "write"}},
}


def serve(
    root: Path,
    host: str = DEFAULT_HOST,
    port: int = 0,
    *,
    read_only: bool = False,
    log_requests: bool = False,
    read_timeout: float = DEFAULT_READ_TIMEOUT_S,
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
) -> tuple[HubHTTPServer, threading.Thread]:
    """Start serving ``root`` in a background thread; port 0 picks a free port.

    Returns the server (its ``url`` is the endpoint to give huggingface_hub) and the thread.
    Stop with ``server.shutdown(); server.server_close(); thread.join()``.
    """
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    server = HubHTTPServer(
        (host, port),
        root,
        read_only=read_only,
        log_requests=log_requests,
        read_timeout=read_timeout,
        max_body_bytes=max_body_bytes,
    )
    thread = threading.Thread(
        # A short poll interval makes shutdown() return quickly (the default waits up to 0.5 s).
        target=functools.partial(server.serve_forever, poll_interval=0.05),
        name=f"adbench-hub-server-{server.server_address[1]}",
    )
    thread.daemon = True
    thread.start()
    return server, thread


@contextlib.contextmanager
def serving(
    root: Path, host: str = DEFAULT_HOST, port: int = 0, **options: Any
) -> Iterator[HubHTTPServer]:
    """``serve`` (with its keyword ``options``) as a context manager that stops the server
    on exit."""
    server, thread = serve(root, host, port, **options)
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def _is_loopback(host: str) -> bool:
    return host in ("localhost", "::1") or host.startswith("127.")


def serve_until_interrupted(
    hub: str | Path | None = None,
    host: str = DEFAULT_HOST,
    port: int = DEFAULT_PORT,
    *,
    read_only: bool = False,
    log_requests: bool = True,
    read_timeout: float = DEFAULT_READ_TIMEOUT_S,
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
) -> None:
    """``adbench hub serve``: serve the local hub ``hub`` until interrupted (Ctrl-C)."""
    if not 0 <= port <= 65535:
        raise AdbenchError(f"invalid --port {port}: use 0-65535 (0 picks a free port)")
    root = hub_root(hub)
    try:
        server, thread = serve(
            root,
            host,
            port,
            read_only=read_only,
            log_requests=log_requests,
            read_timeout=read_timeout,
            max_body_bytes=max_body_bytes,
        )
    except OSError as error:
        raise AdbenchError(
            f"cannot listen on {host}:{port} ({error.strerror or error}); pick another "
            "--port (0 picks a free one) or --host"
        ) from error
    mode = "read-only" if read_only else "read-write"
    if host in ("", "0.0.0.0", "::"):
        # Listening on every interface: tell colleagues a name they can actually connect to.
        shown_url = f"http://{socket.gethostname()}:{server.server_address[1]}"
    else:
        shown_url = server.url
    print(f"Serving hub {root} ({mode}) at {shown_url}", file=sys.stderr)
    print(
        f"Use it with: export HF_ENDPOINT={shown_url}  (or --endpoint {shown_url})",
        file=sys.stderr,
    )
    if not _is_loopback(host):
        print(
            "warning: no authentication; anyone who can reach this address can read"
            + ("" if read_only else " and overwrite")
            + " every repo",
            file=sys.stderr,
        )
    try:
        while thread.is_alive():
            thread.join(0.5)
    except KeyboardInterrupt:
        print("stopping", file=sys.stderr)
    finally:
        server.shutdown()
        server.server_close()
