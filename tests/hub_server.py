"""A stand-in Hugging Face Hub for tests: a real HTTP server on 127.0.0.1 that answers like the Hub.

It serves model repos stored under a temporary folder (one sub-folder per commit) and implements the parts of the
Hub API that `huggingface_hub` (and `transformers`) use to download and upload:

* ``HEAD/GET /{repo}/resolve/{rev}/{path}`` with ``X-Repo-Commit``, ``ETag`` (git-sha1, or sha256 for weight files,
  as the Hub does for LFS files), ``Content-Length`` and ``Range`` support;
* ``GET /api/models/{repo}[/revision/{rev}]`` and ``GET /api/models/{repo}/tree/{rev}[/{path}]?recursive=...``;
* errors with the Hub's ``X-Error-Code`` headers (``RepoNotFound``, ``RevisionNotFound``, ``EntryNotFound``,
  ``GatedRepo``): a missing or private repo answers 401 without a token, as the Hub does;
* uploads: ``POST /api/repos/create``, ``/api/validate-yaml``, ``/api/models/{repo}/preupload/{rev}`` (every file is
  ``regular``, so nothing goes through LFS or Xet) and ``/api/models/{repo}/commit/{rev}`` (NDJSON, base64 files).

Each commit gets a new 40-hex sha; branches point at commits; older commits stay resolvable. No ``X-Xet-*``
header is ever sent. Test hooks: ``requests`` (every request seen), ``truncate`` (fault injection: send only the
first N bytes of a file and drop the connection), ``on_request`` (a hook), ``tokens`` (accepted bearer tokens).

Use ``hub_environment(server, home)`` to point huggingface_hub/transformers at the server with a private cache.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import os
import shutil
import socket
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from unittest import mock
from urllib.parse import parse_qs, unquote, urlsplit

TOKEN = "hf_standin_write_token"
LFS_SUFFIXES = (".safetensors", ".bin", ".pt", ".ckpt")


def git_sha1(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


@dataclass
class Repo:
    private: bool = False
    gated: bool = False  # metadata is public, files need a token in `gated_tokens`
    gated_tokens: set = field(default_factory=set)
    refs: dict = field(default_factory=dict)  # branch -> commit sha
    commits: list = field(default_factory=list)  # commit shas, oldest first


class _Reply(Exception):
    """Raised inside a handler to answer with an error status."""

    def __init__(self, status: int, message: str, code: str | None = None, headers: dict | None = None, **body):
        super().__init__(message)
        self.status, self.message, self.code, self.headers, self.body = status, message, code, headers or {}, body


class HubServer:
    """The stand-in Hub. Use as a context manager, or call `start()`/`stop()`."""

    def __init__(self, root: str | os.PathLike):
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self.repos: dict[str, Repo] = {}
        self.tokens: set[str] = {TOKEN}
        self.requests: list[tuple[str, str]] = []  # (method, path with query) of every request received
        # fault injection: (repo_id, path) -> bytes of the file sent before dropping the connection
        self.truncate: dict[tuple[str, str], int] = {}
        self.on_request: Callable[[str, str], None] | None = None  # test hook, called before each request is served
        self._lock = threading.RLock()
        self._counter = 0
        self._conns: set[socket.socket] = set()
        self._httpd: ThreadingHTTPServer | None = None

    # ----------------------------------------------------------------------------------------------- life cycle
    @property
    def url(self) -> str:
        assert self._httpd is not None, "server not started"
        return f"http://127.0.0.1:{self._httpd.server_address[1]}"

    def start(self) -> HubServer:
        handler = type("Handler", (_Handler,), {"hub": self})
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self._httpd.daemon_threads = True
        threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
        return self

    def stop(self) -> None:
        """Stop listening and drop open keep-alive connections, so that nothing can be answered any more."""
        if self._httpd is None:
            return
        self._httpd.shutdown()
        self._httpd.server_close()
        with self._lock:
            for conn in list(self._conns):
                with contextlib.suppress(OSError):
                    conn.shutdown(socket.SHUT_RDWR)
        self._httpd = None

    def __enter__(self) -> HubServer:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    # ------------------------------------------------------------------------------------------- repo storage
    def create_repo(self, repo_id: str, *, private: bool = False, gated: bool = False) -> Repo:
        with self._lock:
            if repo_id not in self.repos:
                self.repos[repo_id] = Repo(private=private, gated=gated)
            return self.repos[repo_id]

    def commit(self, repo_id: str, files: dict, *, delete=(), branch: str = "main", message: str = "update") -> str:
        """Commit `files` ({path: bytes | str | Path}) on top of `branch`; `delete` lists paths or folders."""
        with self._lock:
            repo = self.create_repo(repo_id)
            parent = repo.refs.get(branch)
            self._counter += 1
            sha = hashlib.sha1(f"{repo_id}\n{parent}\n{message}\n{self._counter}".encode()).hexdigest()
            new = self.root / repo_id / sha
            if parent is not None:
                shutil.copytree(self.root / repo_id / parent, new)
            else:
                new.mkdir(parents=True)
            for path in delete:
                target = new / path
                shutil.rmtree(target) if target.is_dir() else target.unlink(missing_ok=True)
            for path, content in files.items():
                if isinstance(content, os.PathLike):
                    content = Path(content).read_bytes()
                elif isinstance(content, str):
                    content = content.encode()
                (new / path).parent.mkdir(parents=True, exist_ok=True)
                (new / path).write_bytes(content)
            repo.commits.append(sha)
            repo.refs[branch] = sha
            return sha

    def commit_folder(self, repo_id: str, folder: str | os.PathLike, **kwargs) -> str:
        folder = Path(folder)
        files = {p.relative_to(folder).as_posix(): p.read_bytes() for p in folder.rglob("*") if p.is_file()}
        return self.commit(repo_id, files, **kwargs)

    def head(self, repo_id: str, branch: str = "main") -> str:
        return self.repos[repo_id].refs[branch]

    def files(self, repo_id: str, revision: str = "main") -> dict[str, bytes]:
        """The files of `repo_id` at `revision` (branch or commit sha), as {path: bytes}."""
        folder = self.root / repo_id / self._resolve(self.repos[repo_id], revision)
        return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}

    def _resolve(self, repo: Repo, revision: str) -> str:
        if revision in repo.refs:
            return repo.refs[revision]
        if revision in repo.commits:
            return revision
        raise _Reply(404, f"Invalid rev id: {revision}", "RevisionNotFound")

    # --------------------------------------------------------------------------------------------- HTTP logic
    def check_read(self, repo_id: str, auth: str | None, *, files: bool = False) -> Repo:
        """Like the Hub: missing or private repos answer 401 without a token, 404 with one."""
        token = self.check_token(auth)
        repo = self.repos.get(repo_id)
        if repo is None or (repo.private and token is None):
            status = 401 if token is None else 404
            raise _Reply(status, "Repository not found", "RepoNotFound")
        if files and repo.gated and token not in repo.gated_tokens:
            raise _Reply(401 if token is None else 403, "Access to this model is restricted.", "GatedRepo")
        return repo

    def check_token(self, auth: str | None, *, required: bool = False) -> str | None:
        if not auth:
            if required:
                raise _Reply(401, "You must be authenticated to do this")
            return None
        token = auth.removeprefix("Bearer ").strip()
        if token not in self.tokens:
            raise _Reply(401, "Invalid credentials in Authorization header")
        return token

    def entries(self, repo_id: str, sha: str) -> dict[str, dict]:
        folder = self.root / repo_id / sha
        out = {}
        for p in sorted(folder.rglob("*")):
            if p.is_file():
                data = p.read_bytes()
                path = p.relative_to(folder).as_posix()
                entry = {"type": "file", "path": path, "size": len(data), "oid": git_sha1(data)}
                if p.name.endswith(LFS_SUFFIXES):
                    entry["lfs"] = {"oid": hashlib.sha256(data).hexdigest(), "size": len(data), "pointerSize": 134}
                out[entry["path"]] = entry
        return out

    def apply_commit(self, repo_id: str, revision: str, body: bytes, create_pr: bool) -> dict:
        repo = self.repos[repo_id]
        lines = [json.loads(line) for line in body.splitlines() if line.strip()]
        if not lines or lines[0].get("key") != "header":
            raise _Reply(400, "The commit payload must start with a header")
        header = lines[0]["value"]
        files, delete = {}, []
        for line in lines[1:]:
            key, value = line["key"], line["value"]
            if key == "file":
                files[value["path"]] = base64.b64decode(value["content"])
            elif key in ("deletedFile", "deletedFolder"):
                delete.append(value["path"])
            else:  # lfsFile and anything else: never announced by our preupload answer
                raise _Reply(400, f"Unsupported commit operation {key!r}: the stand-in takes regular files only")
        with self._lock:
            base = self._resolve(repo, revision)
            if header.get("parentCommit") not in (None, base):
                raise _Reply(412, "A commit has happened since. Please refresh and try again.")
            branch = revision if revision in repo.refs else None
            pr_url = None
            if create_pr:
                num = sum(ref.startswith("refs/pr/") for ref in repo.refs) + 1
                branch = f"refs/pr/{num}"
                repo.refs[branch] = base
                pr_url = f"{self.url}/{repo_id}/discussions/{num}"
            elif branch is None:
                raise _Reply(400, "Cannot commit on top of a commit sha, only on a branch")
            sha = self.commit(repo_id, files, delete=delete, branch=branch, message=header.get("summary", ""))
        return {"commitUrl": f"{self.url}/{repo_id}/commit/{sha}", "commitOid": sha, "pullRequestUrl": pr_url}


class _Handler(BaseHTTPRequestHandler):
    hub: HubServer
    protocol_version = "HTTP/1.1"

    def setup(self):
        super().setup()
        with self.hub._lock:
            self.hub._conns.add(self.connection)

    def finish(self):
        with contextlib.suppress(OSError):
            super().finish()
        with self.hub._lock:
            self.hub._conns.discard(self.connection)

    def log_message(self, *args):  # keep test output quiet
        pass

    def do_HEAD(self):
        self._dispatch("HEAD")

    def do_GET(self):
        self._dispatch("GET")

    def do_POST(self):
        self._dispatch("POST")

    # ----------------------------------------------------------------------------------------------- routing
    def _dispatch(self, method: str) -> None:
        self.hub.requests.append((method, self.path))
        if self.hub.on_request is not None:
            self.hub.on_request(method, self.path)
        length = int(self.headers.get("Content-Length") or 0)
        self.body = self.rfile.read(length) if length else b""
        parts = urlsplit(self.path)
        path, self.query = unquote(parts.path), parse_qs(parts.query)
        auth = self.headers.get("Authorization")
        try:
            if "/resolve/" in parts.path and method in ("GET", "HEAD"):
                repo_id, rest = parts.path.lstrip("/").split("/resolve/", 1)
                revision, _, filename = rest.partition("/")
                return self._resolve_file(method, unquote(repo_id), unquote(revision), unquote(filename), auth)
            if method == "POST" and path == "/api/repos/create":
                return self._create_repo(auth)
            if method == "POST" and path == "/api/validate-yaml":
                return self._json({"errors": [], "warnings": []})
            if path.startswith("/api/models/"):
                return self._model_api(method, parts.path[len("/api/models/") :], auth)
            raise _Reply(404, f"The stand-in Hub does not implement {method} {parts.path}")
        except _Reply as reply:
            self._error(reply)

    def _model_api(self, method: str, raw: str, auth: str | None) -> None:
        # raw: "{repo_id}[/revision/{rev}|/tree/{rev}[/{path}]|/preupload/{rev}|/commit/{rev}]", rev URL-quoted
        segments = raw.split("/")
        repo_id = "/".join(unquote(s) for s in segments[:2])
        action = segments[2] if len(segments) > 2 else None
        revision = unquote(segments[3]) if len(segments) > 3 else "main"
        if method == "GET" and action in (None, "revision"):
            repo = self.hub.check_read(repo_id, auth)
            sha = self.hub._resolve(repo, revision)
            siblings = [{"rfilename": p} for p in self.hub.entries(repo_id, sha)]
            return self._json(
                {
                    "id": repo_id,
                    "modelId": repo_id,
                    "sha": sha,
                    "private": repo.private,
                    "gated": "auto" if repo.gated else False,
                    "disabled": False,
                    "siblings": siblings,
                    "tags": [],
                    "downloads": 0,
                    "likes": 0,
                }
            )
        if method == "GET" and action == "tree":
            repo = self.hub.check_read(repo_id, auth)
            sha = self.hub._resolve(repo, revision)
            prefix = "/".join(unquote(s) for s in segments[4:]).strip("/")
            recursive = self.query.get("recursive", ["false"])[0].lower() in ("1", "true")
            listing = _tree_listing(self.hub.entries(repo_id, sha), prefix, recursive)
            if prefix and not listing:
                raise _Reply(404, f"{prefix} does not exist on {revision}", "EntryNotFound", {"X-Repo-Commit": sha})
            return self._json(listing)
        if method == "POST" and action == "preupload":
            self.hub.check_token(auth, required=True)
            repo = self.hub.check_read(repo_id, auth)
            existing = self.hub.entries(repo_id, self.hub._resolve(repo, revision))
            files = [
                {
                    "path": f["path"],
                    "uploadMode": "regular",
                    "shouldIgnore": False,
                    "oid": existing.get(f["path"], {}).get("oid"),
                }
                for f in json.loads(self.body)["files"]
            ]
            return self._json({"files": files, "commitOid": self.hub._resolve(repo, revision)})
        if method == "POST" and action == "commit":
            self.hub.check_token(auth, required=True)
            self.hub.check_read(repo_id, auth)
            create_pr = self.query.get("create_pr", ["0"])[0] == "1"
            return self._json(self.hub.apply_commit(repo_id, revision, self.body, create_pr))
        raise _Reply(404, f"The stand-in Hub does not implement {method} /api/models/{raw}")

    # --------------------------------------------------------------------------------------------- endpoints
    def _create_repo(self, auth: str | None) -> None:
        self.hub.check_token(auth, required=True)
        payload = json.loads(self.body)
        if payload.get("type", "model") != "model":
            raise _Reply(400, "The stand-in Hub only hosts model repos")
        repo_id = f"{payload['organization']}/{payload['name']}" if payload.get("organization") else payload["name"]
        with self.hub._lock:
            if repo_id in self.hub.repos:
                raise _Reply(409, "You already created this model repo", url=f"{self.hub.url}/{repo_id}")
            private = payload.get("visibility") == "private" or bool(payload.get("private"))
            self.hub.create_repo(repo_id, private=private)
            self.hub.commit(
                repo_id,
                {".gitattributes": "*.safetensors filter=lfs diff=lfs merge=lfs -text\n"},
                message="initial commit",
            )
        self._json({"url": f"{self.hub.url}/{repo_id}", "name": repo_id, "id": repo_id})

    def _resolve_file(self, method: str, repo_id: str, revision: str, filename: str, auth: str | None) -> None:
        repo = self.hub.check_read(repo_id, auth, files=True)
        sha = self.hub._resolve(repo, revision)
        file = self.hub.root / repo_id / sha / filename
        if not file.is_file():
            raise _Reply(404, "Entry not found", "EntryNotFound", headers={"X-Repo-Commit": sha})
        data = file.read_bytes()
        etag = hashlib.sha256(data).hexdigest() if filename.endswith(LFS_SUFFIXES) else git_sha1(data)
        start, end, status = 0, len(data), 200
        range_header = self.headers.get("Range")
        if range_header and range_header.startswith("bytes="):
            first, _, last = range_header[len("bytes=") :].partition("-")
            start, end, status = int(first or 0), (int(last) + 1 if last else len(data)), 206
        self.send_response(status)
        self.send_header("X-Repo-Commit", sha)
        self.send_header("ETag", f'"{etag}"')
        self.send_header("Accept-Ranges", "bytes")
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Length", str(end - start))
        if status == 206:
            self.send_header("Content-Range", f"bytes {start}-{end - 1}/{len(data)}")
        limit = self.hub.truncate.get((repo_id, filename))
        if limit is not None:  # fault injection: promise the whole body, send part of it, drop the connection
            self.close_connection = True
            self.send_header("Connection", "close")
        self.end_headers()
        if method == "GET":
            body = data[start:end]
            if limit is not None:
                body = body[:limit] if start == 0 else b""
            self.wfile.write(body)
            self.wfile.flush()
        if limit is not None and method == "GET":
            with contextlib.suppress(OSError):
                self.connection.shutdown(socket.SHUT_RDWR)

    # ---------------------------------------------------------------------------------------------- replies
    def _json(self, payload, status: int = 200) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    def _error(self, reply: _Reply) -> None:
        data = json.dumps({"error": reply.message, **reply.body}).encode()
        self.send_response(reply.status)
        if reply.code:
            self.send_header("X-Error-Code", reply.code)
        self.send_header("X-Error-Message", reply.message)
        for key, value in reply.headers.items():
            self.send_header(key, value)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)


def _tree_listing(entries: dict[str, dict], prefix: str, recursive: bool) -> list[dict]:
    """The Hub's /tree answer: files (and folders) under `prefix`, one level deep unless `recursive`."""
    out, folders = [], set()
    base = f"{prefix}/" if prefix else ""
    for path, entry in entries.items():
        if not path.startswith(base):
            continue
        rest = path[len(base) :].split("/")
        for depth in range(1, len(rest)):  # parent folders of this file, below prefix
            if not recursive and depth > 1:
                break
            folders.add(base + "/".join(rest[:depth]))
        if recursive or len(rest) == 1:
            out.append(entry)
    out += [{"type": "directory", "path": f, "oid": git_sha1(f.encode()), "size": 0} for f in sorted(folders)]
    return out


@contextlib.contextmanager
def hub_environment(server: HubServer, home: str | os.PathLike):
    """Point huggingface_hub (and transformers, if imported) at `server`, with a private HF_HOME under `home`.

    huggingface_hub reads its environment variables once, at import, so besides the variables (for code that reads
    them later, e.g. subprocesses) this patches the module constants derived from them. All is restored on exit.
    """
    from huggingface_hub import constants

    home = Path(home)
    cache = home / "hub"
    env = {
        "HF_ENDPOINT": server.url,
        "HF_HOME": str(home),
        "HF_HUB_CACHE": str(cache),
        "HF_HUB_DISABLE_XET": "1",
        "HF_HUB_DISABLE_TELEMETRY": "1",
        "HF_HUB_DISABLE_PROGRESS_BARS": "1",
        "HF_HUB_OFFLINE": "0",
    }
    patches = {
        "ENDPOINT": server.url,
        "HUGGINGFACE_CO_URL_TEMPLATE": server.url + "/{repo_id}/resolve/{revision}/{filename}",
        "HF_HOME": str(home),
        "HF_HUB_CACHE": str(cache),
        "HF_HUB_OFFLINE": False,
        "HF_HUB_DISABLE_XET": True,
        "HF_HUB_DISABLE_TELEMETRY": True,
        "HF_TOKEN_PATH": str(home / "token"),
        "HF_STORED_TOKENS_PATH": str(home / "stored_tokens"),
    }
    with contextlib.ExitStack() as stack:
        stack.enter_context(mock.patch.dict(os.environ, env))
        for var in ("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN", "TRANSFORMERS_OFFLINE", "HF_HUB_ENABLE_HF_TRANSFER"):
            os.environ.pop(var, None)
        for name, value in patches.items():
            stack.enter_context(mock.patch.object(constants, name, value))
        # transformers keeps one HfApi, built with the endpoint of its first use: start and end without one
        if "transformers.utils.hub" in sys.modules:
            stack.enter_context(mock.patch.object(sys.modules["transformers.utils.hub"], "_hf_api", None))
        else:
            stack.callback(lambda: setattr(sys.modules.get("transformers.utils.hub", mock.Mock()), "_hf_api", None))
        yield cache
