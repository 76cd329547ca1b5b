"""Fixtures for the source tests: a real HTTP server on 127.0.0.1 whose answers the test
changes (ETag, 304, 5xx, 429)."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest


@dataclass
class Resource:
    """What the server answers; mutate it between polls."""

    body: bytes = b"v1"
    content_type: str = "text/plain"
    etag: str | None = None
    last_modified: str | None = None
    plan: list[tuple[int, dict[str, str]]] = field(default_factory=list)
    """Answers served first, in order: (status, headers), with an empty body."""
    requests: list[dict[str, str]] = field(default_factory=list)
    bodies_sent: int = 0
    bytes_sent: int = 0


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        resource = self.server.resource
        with self.server.lock:
            resource.requests.append({k.lower(): v for k, v in self.headers.items()})
            planned = resource.plan.pop(0) if resource.plan else None
            body, etag, modified = resource.body, resource.etag, resource.last_modified
            content_type = resource.content_type
        if planned is not None:
            status, headers = planned
            self.send_response(status)
            for name, value in headers.items():
                self.send_header(name, value)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        fresh = (etag is not None and self.headers.get("If-None-Match") == etag) or (
            etag is None
            and modified is not None
            and self.headers.get("If-Modified-Since") == modified
        )
        if fresh:
            self.send_response(304)
            if etag:
                self.send_header("ETag", etag)
            self.end_headers()
            return
        self.send_response(200)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        if etag:
            self.send_header("ETag", etag)
        if modified:
            self.send_header("Last-Modified", modified)
        self.end_headers()
        # Counted before the write: once the client has the body, the count is already there.
        with self.server.lock:
            resource.bodies_sent += 1
            resource.bytes_sent += len(body)
        self.wfile.write(body)


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, resource: Resource) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.resource = resource
        self.lock = threading.Lock()


@contextmanager
def serve(resource: Resource) -> Iterator[str]:
    """Serve ``resource`` on a free port; yields the base URL."""
    server = _Server(resource)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.daemon = True
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


@pytest.fixture
def http_resource() -> Iterator[tuple[Resource, str]]:
    """A :class:`Resource` served on 127.0.0.1; yields (resource, url of /resource)."""
    resource = Resource()
    with serve(resource) as base:
        yield resource, f"{base}/resource"
