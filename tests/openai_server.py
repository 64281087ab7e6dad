"""A real OpenAI-compatible HTTP server for tests (stdlib http.server on 127.0.0.1, a free port, in a thread).

Tests point the real `openai` client at it, so requests, retries and error handling go through the same HTTP
code path as against a real endpoint. It serves POST /v1/chat/completions. Each request is answered by the
next scripted `Reply` in `server.queue` if there is one, else by `server.responder(request) -> Reply | str`.
A `Reply` can be a normal answer, an HTTP error (500, 429 with Retry-After), or a malformed body.
Every request body and its Authorization header are recorded.
"""

from __future__ import annotations

import json
import threading
from collections import deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Callable

import pytest


@dataclass
class Reply:
    content: str | None = None     # the assistant message (status 200)
    status: int = 200
    raw: str | None = None         # a body sent verbatim instead of a completion (malformed answers)
    headers: dict[str, str] = field(default_factory=dict)


def ok(text: str) -> Reply:
    return Reply(content=text)


def server_error() -> Reply:
    return Reply(status=500, raw=json.dumps({"error": {"message": "internal error", "type": "server_error"}}))


def rate_limited(retry_after: float = 0.0) -> Reply:
    return Reply(status=429, raw=json.dumps({"error": {"message": "slow down", "type": "rate_limit"}}),
                 headers={"retry-after": str(retry_after)})


def malformed() -> Reply:
    """A 200 whose body is not a chat completion at all."""
    return Reply(status=200, raw="this is { not json")


Responder = Callable[[dict], "Reply | str"]


class LocalOpenAI:
    def __init__(self, responder: Responder | None = None):
        self.queue: deque[Reply | str] = deque()
        self.responder: Responder = responder or (lambda request: "ok")
        self.requests: list[dict] = []
        self.auth_headers: list[str | None] = []
        self._lock = threading.Lock()
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._thread = threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self._httpd.server_address[1]}/v1"

    @property
    def count(self) -> int:
        with self._lock:
            return len(self.requests)

    def script(self, *replies: Reply | str) -> None:
        self.queue.extend(replies)

    def start(self) -> LocalOpenAI:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(timeout=5)

    def _next(self, request: dict) -> Reply:
        with self._lock:
            self.requests.append(request)
            scripted = self.queue.popleft() if self.queue else None
        reply = scripted if scripted is not None else self.responder(request)
        return ok(reply) if isinstance(reply, str) else reply

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:  # keep test output clean
                pass

            def do_POST(self) -> None:
                if not self.path.rstrip("/").endswith("/chat/completions"):
                    self._send(404, json.dumps({"error": {"message": f"no route {self.path}"}}), {})
                    return
                length = int(self.headers.get("content-length", 0))
                request = json.loads(self.rfile.read(length) or b"{}")
                with server._lock:
                    server.auth_headers.append(self.headers.get("authorization"))
                reply = server._next(request)
                if reply.raw is not None:
                    self._send(reply.status, reply.raw, reply.headers)
                    return
                body = {
                    "id": f"chatcmpl-{len(server.requests)}", "object": "chat.completion", "created": 0,
                    "model": request.get("model", "local"),
                    "choices": [{"index": 0, "finish_reason": "stop",
                                 "message": {"role": "assistant", "content": reply.content}}],
                    "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
                }
                self._send(reply.status, json.dumps(body), reply.headers)

            def _send(self, status: int, body: str, headers: dict[str, str]) -> None:
                data = body.encode()
                self.send_response(status)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(data)))
                for k, v in headers.items():
                    self.send_header(k, v)
                self.end_headers()
                self.wfile.write(data)

        return Handler


@pytest.fixture
def openai_server():
    """A running LocalOpenAI; stopped after the test."""
    server = LocalOpenAI().start()
    try:
        yield server
    finally:
        server.stop()


def last_user_message(request: dict) -> str:
    return next((m["content"] for m in reversed(request.get("messages", [])) if m.get("role") == "user"), "")
