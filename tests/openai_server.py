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
    tool_calls: list[dict] | None = None   # [{"name": ..., "arguments": dict | str}]
    logprobs: list[dict[str, float]] | None = None  # per generated token: {token: logprob}, first = sampled


def ok(text: str) -> Reply:
    return Reply(content=text)


def tool_call(name: str, arguments: dict | str, content: str | None = None) -> Reply:
    """An assistant turn that calls one tool (arguments may be a malformed string on purpose)."""
    return Reply(content=content, tool_calls=[{"name": name, "arguments": arguments}])


def with_logprobs(top: dict[str, float], content: str | None = None) -> Reply:
    """A one-token answer whose top logprobs are `top` (the answer is the likeliest token unless given)."""
    return Reply(content=content if content is not None else max(top, key=top.get), logprobs=[top])


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
                message: dict = {"role": "assistant", "content": reply.content}
                if reply.tool_calls:
                    message["tool_calls"] = [
                        {"id": f"call_{len(server.requests)}_{i}", "type": "function",
                         "function": {"name": c["name"], "arguments": c["arguments"] if isinstance(c["arguments"], str)
                                      else json.dumps(c["arguments"])}}
                        for i, c in enumerate(reply.tool_calls)]
                choice: dict = {"index": 0, "message": message,
                                "finish_reason": "tool_calls" if reply.tool_calls else "stop"}
                if reply.logprobs is not None:
                    choice["logprobs"] = {"content": [
                        {"token": max(top, key=top.get), "logprob": max(top.values()), "bytes": None,
                         "top_logprobs": [{"token": t, "logprob": lp, "bytes": None} for t, lp in top.items()]}
                        for top in reply.logprobs]}
                body = {
                    "id": f"chatcmpl-{len(server.requests)}", "object": "chat.completion", "created": 0,
                    "model": request.get("model", "local"), "choices": [choice],
                    "usage": {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15},
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
