"""A Hugging Face cache laid out by hand, exactly as huggingface_hub writes one, and a local stand-in for the Hub.

Cache layout: <cache>/models--org--name/{blobs/<etag>, snapshots/<commit>/<file> -> ../../blobs/<etag>, refs/main},
where a file's ETag (its blob name) is the sha256 of its content for Git LFS files (weights) and the git blob sha1
for small files stored in git (JSON).
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

COMMIT = "0123456789abcdef0123456789abcdef01234567"
CHECKPOINT_FILES = ("config.json", "model.safetensors", "backbones.json")


def registry_name(folder: Path) -> str:
    """The published model a fixture folder is made like (same heads and similarity recipe)."""
    config = json.loads((folder / "config.json").read_text())
    if config["sim_agg_heads"] == 2:
        return "sound-language"
    return "sound" if config["sim_use_cls"] else "language"


def git_blob_sha1(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def lay_out_hf_cache(cache: Path, repo_id: str, folder: Path, *, files: tuple[str, ...] = CHECKPOINT_FILES) -> Path:
    """Copy a checkpoint folder's `files` into `cache` as huggingface_hub would have downloaded them.

    Returns the snapshot folder."""
    repo_dir = cache / ("models--" + repo_id.replace("/", "--"))
    snapshot = repo_dir / "snapshots" / COMMIT
    snapshot.mkdir(parents=True)
    (repo_dir / "blobs").mkdir(exist_ok=True)
    (repo_dir / "refs").mkdir(exist_ok=True)
    (repo_dir / "refs" / "main").write_text(COMMIT)
    for name in files:
        if not (folder / name).exists():
            continue
        data = (folder / name).read_bytes()
        etag = hashlib.sha256(data).hexdigest() if name.endswith(".safetensors") else git_blob_sha1(data)
        (repo_dir / "blobs" / etag).write_bytes(data)
        os.symlink(Path("..", "..", "blobs", etag), snapshot / name)
    return snapshot


class RecordingHub:
    """An HTTP server on 127.0.0.1 that answers every request with 503 and records it: a Hub that is down.

    Use as a context manager; `endpoint` goes into HF_ENDPOINT, `requests` lists "METHOD path" lines."""

    def __init__(self) -> None:
        self.requests: list[str] = []
        record = self.requests

        class Handler(BaseHTTPRequestHandler):
            def _answer(self) -> None:
                record.append(f"{self.command} {self.path}")
                self.send_response(503)
                self.send_header("Content-Length", "0")
                self.end_headers()

            do_GET = do_HEAD = do_POST = _answer

            def log_message(self, format: str, *args: object) -> None:  # keep test output clean
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.endpoint = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def __enter__(self) -> RecordingHub:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()


def closed_port() -> int:
    """A local TCP port nothing listens on (connections are refused at once)."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])
