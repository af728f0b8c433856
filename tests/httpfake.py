"""A scripted HTTP server on 127.0.0.1 for the provider tests.

Each route answers with its queued replies in order, the last one repeating. A reply can
be slow (`delay_s`) or drop the connection without answering (`drop`). Every request is
recorded, so tests can count calls and read the headers and query that were sent.
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

# The providers' documented example bodies (copied from the shared reference data).
API_EXAMPLES = Path(__file__).parent / "data" / "api"


def example(name: str) -> bytes:
    """The bytes of one of the documented example bodies."""
    return (API_EXAMPLES / name).read_bytes()


@dataclass(frozen=True)
class Reply:
    """One scripted answer: a status, a body (bytes, text or JSON-able), headers."""

    status: int = 200
    body: Any = b""
    headers: dict[str, str] = field(default_factory=dict)
    delay_s: float = 0.0
    drop: bool = False

    def payload(self) -> bytes:
        if isinstance(self.body, bytes):
            return self.body
        if isinstance(self.body, str):
            return self.body.encode()
        return json.dumps(self.body).encode()


@dataclass(frozen=True)
class Seen:
    """One request the server received."""

    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]


class FakeServer:
    """An HTTP server in a thread on 127.0.0.1, port chosen by the system."""

    def __init__(self) -> None:
        self.routes: dict[str, list[Reply]] = {}
        self.requests: list[Seen] = []
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._httpd.daemon_threads = True
        self._httpd.handle_error = lambda request, address: None  # type: ignore[method-assign]
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.01}, daemon=True
        )

    @property
    def url(self) -> str:
        host, port = self._httpd.server_address[:2]
        return f"http://{host!s}:{port}"

    def route(self, path: str, *replies: Reply) -> None:
        """Answer `path` (exact, or a prefix when it ends with `*`) with `replies`."""
        self.routes[path] = list(replies)

    def paths(self) -> list[str]:
        """The paths requested so far, in order."""
        return [seen.path for seen in self.requests]

    def start(self) -> FakeServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopping.set()
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(timeout=5)

    def _next(self, path: str) -> Reply:
        with self._lock:
            replies = self.routes.get(path)
            if replies is None:
                prefixes = [
                    p for p in self.routes if p.endswith("*") and path.startswith(p[:-1])
                ]
                replies = self.routes[max(prefixes, key=len)] if prefixes else None
            if not replies:
                return Reply(404, {"error": f"no route for {path}"})
            return replies.pop(0) if len(replies) > 1 else replies[0]

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self) -> None:
                parts = urlsplit(self.path)
                with server._lock:
                    server.requests.append(
                        Seen(parts.path, parse_qs(parts.query), dict(self.headers.items()))
                    )
                reply = server._next(parts.path)
                if reply.delay_s:
                    server._stopping.wait(reply.delay_s)
                if reply.drop:
                    self.close_connection = True
                    return
                body = reply.payload()
                self.send_response(reply.status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                for name, value in reply.headers.items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        return Handler
