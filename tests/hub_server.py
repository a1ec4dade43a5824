"""A stand-in Hugging Face Hub on 127.0.0.1 for tests (the real one can't be reached here).

It speaks the HTTP routes huggingface_hub itself calls for what the product uses, so the
real client code runs end to end: repo info / revision resolution, the file tree, file
downloads (HEAD + GET with the Hub's headers), repo creation, pre-upload and commit.
Failure modes (private repos, server errors, truncated transfers) are switched on per test.
"""
from __future__ import annotations

import base64
import hashlib
import json
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import unquote, urlparse


@dataclass
class Repo:
    private: bool = False
    commits: dict[str, dict[str, bytes]] = field(default_factory=dict)  # sha -> {path: content}
    refs: dict[str, str] = field(default_factory=dict)                   # branch / tag -> sha

    def resolve(self, revision: str) -> str | None:
        if revision in self.commits:
            return revision
        return self.refs.get(revision)


class FakeHub:
    """State of the stand-in Hub; ``url`` is what HF_ENDPOINT points to."""

    def __init__(self, token: str = "hf_test_token"):
        self.token = token
        self.repos: dict[str, Repo] = {}
        self.fail_with_status: int | None = None   # answer every request with this status
        self.truncate_downloads = False             # send half of each file body, then hang up
        self.requests: list[str] = []
        self._server: ThreadingHTTPServer | None = None

    # -- content management (what a push would leave on the real Hub) --------------------
    def commit(self, repo_id: str, files: dict[str, bytes], branch: str = "main", private: bool = False) -> str:
        repo = self.repos.setdefault(repo_id, Repo(private=private))
        parent = repo.commits.get(repo.refs.get(branch, ""), {})
        content = {**parent, **files}
        sha = hashlib.sha1(json.dumps(sorted((k, hashlib.sha1(v).hexdigest()) for k, v in content.items())).encode()
                           + str(len(repo.commits)).encode()).hexdigest()
        repo.commits[sha] = content
        repo.refs[branch] = sha
        return sha

    # -- server lifecycle ----------------------------------------------------------------
    def start(self, port: int = 0) -> "FakeHub":
        ThreadingHTTPServer.allow_reuse_address = True  # restartable on the same port
        self._server = ThreadingHTTPServer(("127.0.0.1", port), _handler_for(self))
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        if self._server:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"


def _handler_for(hub: FakeHub):
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args) -> None:  # keep test output clean
            pass

        # -- plumbing ----------------------------------------------------------------------
        def _send(self, status: int, body: bytes = b"", headers: dict | None = None, head: bool = False) -> None:
            self.send_response(status)
            for key, value in (headers or {}).items():
                self.send_header(key, value)
            if "Content-Length" not in (headers or {}):
                self.send_header("Content-Length", str(len(body)))
            # No keep-alive: a pooled client connection must not outlive this server instance.
            self.send_header("Connection", "close")
            self.close_connection = True
            self.end_headers()
            if not head:
                self.wfile.write(body)

        def _json(self, status: int, payload, headers: dict | None = None) -> None:
            self._send(status, json.dumps(payload).encode(), {"Content-Type": "application/json", **(headers or {})})

        def _error(self, status: int, code: str, message: str) -> None:
            self._json(status, {"error": message}, {"X-Error-Code": code, "X-Error-Message": message})

        def _authorised(self, repo: Repo) -> bool:
            if not repo.private:
                return True
            return self.headers.get("Authorization") == f"Bearer {hub.token}"

        def _find(self, repo_id: str, revision: str | None):
            """(repo, sha) or None after sending the Hub's own error answer."""
            repo = hub.repos.get(repo_id)
            if repo is None or not self._authorised(repo):
                # The real Hub hides private repos: 401 + RepoNotFound without a valid token.
                self._error(401 if repo is not None else 404, "RepoNotFound", f"Repository {repo_id} not found")
                return None
            sha = repo.resolve(unquote(revision or "main"))
            if sha is None:
                self._error(404, "RevisionNotFound", f"Invalid rev id: {revision}")
                return None
            return repo, sha

        def _read_body(self) -> bytes:
            return self.rfile.read(int(self.headers.get("Content-Length", 0)))

        def _intercepted(self, head: bool = False) -> bool:
            hub.requests.append(f"{self.command} {self.path}")
            if hub.fail_with_status:
                self._send(hub.fail_with_status, b"stand-in hub failure", head=head)
                return True
            return False

        # -- routes ------------------------------------------------------------------------
        def do_HEAD(self) -> None:
            if not self._intercepted(head=True):
                self._resolve_file(head=True)

        def do_GET(self) -> None:
            if self._intercepted():
                return
            path = urlparse(self.path).path
            parts = path.strip("/").split("/")
            if parts[:2] == ["api", "models"] and len(parts) >= 5 and parts[4] == "revision":
                return self._model_info(f"{parts[2]}/{parts[3]}", "/".join(parts[5:]))
            if parts[:2] == ["api", "models"] and len(parts) == 4:
                return self._model_info(f"{parts[2]}/{parts[3]}", None)
            if parts[:2] == ["api", "models"] and len(parts) >= 6 and parts[4] == "tree":
                return self._tree(f"{parts[2]}/{parts[3]}", parts[5])
            return self._resolve_file(head=False)

        def do_POST(self) -> None:
            if self._intercepted():
                return
            parts = urlparse(self.path).path.strip("/").split("/")
            body = self._read_body()
            if parts == ["api", "validate-yaml"]:
                return self._validate_yaml(json.loads(body)["content"])
            if parts == ["api", "repos", "create"]:
                return self._create_repo(json.loads(body))
            if parts[:2] == ["api", "models"] and len(parts) >= 6 and parts[4] == "preupload":
                return self._preupload(f"{parts[2]}/{parts[3]}", json.loads(body))
            if parts[:2] == ["api", "models"] and len(parts) >= 6 and parts[4] == "commit":
                return self._commit(f"{parts[2]}/{parts[3]}", unquote(parts[5]), body)
            self._error(404, "EntryNotFound", f"no route {self.path}")

        def _model_info(self, repo_id: str, revision: str | None) -> None:
            found = self._find(repo_id, revision)
            if found:
                repo, sha = found
                self._json(200, {"id": repo_id, "modelId": repo_id, "sha": sha, "private": repo.private,
                                 "siblings": [{"rfilename": name} for name in sorted(repo.commits[sha])]})

        def _tree(self, repo_id: str, revision: str) -> None:
            found = self._find(repo_id, revision)
            if found:
                repo, sha = found
                self._json(200, [{"type": "file", "path": name, "size": len(data),
                                  "oid": hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()}
                                 for name, data in sorted(repo.commits[sha].items())])

        def _resolve_file(self, head: bool) -> None:
            # /{owner}/{name}/resolve/{revision}/{path}
            parts = urlparse(self.path).path.strip("/").split("/")
            if len(parts) < 5 or parts[2] != "resolve":
                return self._error(404, "EntryNotFound", f"no route {self.path}")
            found = self._find(f"{parts[0]}/{parts[1]}", parts[3])
            if not found:
                return
            repo, sha = found
            name = unquote("/".join(parts[4:]))
            data = repo.commits[sha].get(name)
            if data is None:
                return self._error(404, "EntryNotFound", f"{name} does not exist at {sha}")
            etag = hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()
            headers = {"X-Repo-Commit": sha, "ETag": f'"{etag}"', "Content-Length": str(len(data)),
                       "Content-Type": "application/octet-stream", "Accept-Ranges": "bytes"}
            if head:
                return self._send(200, b"", headers, head=True)
            if hub.truncate_downloads:
                self._send(200, data[: len(data) // 2], headers)
                return
            self._send(200, data, headers)

        def _validate_yaml(self, content: str) -> None:
            """The Hub checks a model card's front matter before accepting it."""
            import yaml

            try:
                front = content.split("---\n")[1] if content.startswith("---\n") else ""
                metadata = yaml.safe_load(front) or {}
                if not isinstance(metadata, dict):
                    raise ValueError("front matter is not a mapping")
            except (yaml.YAMLError, ValueError, IndexError) as error:
                return self._json(400, {"errors": [{"message": str(error)}]})
            warnings = [] if metadata else [{"message": "empty or missing yaml metadata in repo card"}]
            self._json(200, {"errors": [], "warnings": warnings})

        def _create_repo(self, payload: dict) -> None:
            repo_id = f"{payload['organization']}/{payload['name']}" if payload.get("organization") else payload["name"]
            if self.headers.get("Authorization") != f"Bearer {hub.token}":
                return self._error(401, "Unauthorized", "Invalid credentials in Authorization header")
            if repo_id in hub.repos:
                return self._error(409, "RepoExists", "You already created this model repo")
            private = bool(payload.get("private")) or payload.get("visibility") == "private"
            hub.repos[repo_id] = Repo(private=private)
            self._json(200, {"url": f"{hub.url}/{repo_id}", "name": repo_id, "id": repo_id})

        def _preupload(self, repo_id: str, payload: dict) -> None:
            if repo_id not in hub.repos:
                return self._error(404, "RepoNotFound", f"Repository {repo_id} not found")
            # "regular" uploads send file contents inline in the commit: no LFS / Xet server needed.
            self._json(200, {"files": [{"path": f["path"], "uploadMode": "regular", "shouldIgnore": False}
                                       for f in payload.get("files", [])]})

        def _commit(self, repo_id: str, branch: str, body: bytes) -> None:
            if self.headers.get("Authorization") != f"Bearer {hub.token}":
                return self._error(401, "Unauthorized", "Invalid credentials in Authorization header")
            files = {}
            for line in body.decode().splitlines():
                item = json.loads(line)
                if item["key"] == "file":
                    value = item["value"]
                    files[value["path"]] = base64.b64decode(value["content"])
            repo = hub.repos[repo_id]
            sha = hub.commit(repo_id, files, branch=branch, private=repo.private)
            self._json(200, {"commitUrl": f"{hub.url}/{repo_id}/commit/{sha}", "commitOid": sha,
                             "pullRequestUrl": None})

    return Handler
