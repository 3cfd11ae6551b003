"""A scripted OpenAI-compatible chat-completions server on 127.0.0.1, for tests.

It speaks the real protocol over real HTTP, so the real ``openai`` client
talks to it: ``POST /v1/chat/completions`` answers with a ``chat.completion``
body (id, object, created, model, choices, usage) or an OpenAI-style error.
Answers come from a queue the test fills (``reply``, ``error``, ``slow``);
every request received is recorded (path, headers, JSON body). With the
queue empty it answers 500, so a test that under-scripts fails loudly.

    with OpenAIStub() as stub:
        stub.reply({"purpose": "..."})
        os.environ["OPENAI_BASE_URL"] = stub.base_url
"""

from __future__ import annotations

import json
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class Scripted:
    """One scripted answer: a completion, or an HTTP error, possibly after a delay."""

    content: str | None = None
    refusal: str | None = None
    status: int = 200
    error: dict[str, Any] | None = None
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0
    usage: tuple[int, int] | None = (100, 50)
    finish_reason: str = "stop"
    model: str | None = None


@dataclass
class Received:
    """One request the stub received."""

    path: str
    headers: dict[str, str]
    body: dict[str, Any]
    answered: int = 0  # HTTP status sent back

    @property
    def messages(self) -> list[dict[str, Any]]:
        return list(self.body.get("messages") or [])

    @property
    def text(self) -> str:
        """All message contents, joined: what the model was shown."""
        return "\n".join(str(m.get("content") or "") for m in self.messages)


class OpenAIStub:
    """The server; ``base_url`` ends in ``/v1`` like the OpenAI client expects."""

    def __init__(self, model: str = "stub-model") -> None:
        self.model = model
        # POST /v1/embeddings answers with embed_with(text) for each input (None: 404).
        self.embed_with: Callable[[str], list[float]] | None = None
        self.queue: deque[Scripted] = deque()
        self.requests: list[Received] = []
        self._lock = threading.Lock()
        self._closing = threading.Event()
        self._counter = 0
        stub = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:  # keep test output quiet
                pass

            def do_GET(self) -> None:
                if self.path.rstrip("/") == "/v1/models":
                    self._send(200, {"object": "list", "data": [
                        {"id": stub.model, "object": "model", "created": 0, "owned_by": "stub"}]})
                else:
                    self._send(404, {"error": {"message": f"no route {self.path}", "type": "not_found"}})

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length) if length else b""
                try:
                    body = json.loads(raw or b"{}")
                except ValueError:
                    body = {"_raw": raw.decode("utf-8", "replace")}
                record = Received(path=self.path, headers={k.lower(): v for k, v in self.headers.items()},
                                  body=body)
                with stub._lock:
                    stub.requests.append(record)
                    scripted = stub.queue.popleft() if stub.queue else None
                if self.path.rstrip("/") == "/v1/embeddings" and stub.embed_with is not None:
                    texts = body.get("input") or []
                    texts = [texts] if isinstance(texts, str) else texts
                    record.answered = 200
                    self._send(200, {"object": "list", "model": body.get("model"),
                                     "data": [{"object": "embedding", "index": i,
                                               "embedding": stub.embed_with(t)} for i, t in enumerate(texts)],
                                     "usage": {"prompt_tokens": len(texts), "total_tokens": len(texts)}})
                    return
                if self.path.rstrip("/") != "/v1/chat/completions":
                    record.answered = 404
                    self._send(404, {"error": {"message": f"no route {self.path}", "type": "not_found"}})
                    return
                if scripted is None:
                    record.answered = 500
                    self._send(500, {"error": {"message": "stub: no scripted answer left",
                                               "type": "server_error"}})
                    return
                if scripted.delay:
                    stub._closing.wait(scripted.delay)
                record.answered = scripted.status
                if scripted.status != 200:
                    error = scripted.error or {"message": f"stub error {scripted.status}",
                                               "type": "server_error", "code": None}
                    self._send(scripted.status, {"error": error}, scripted.headers)
                    return
                self._send(200, stub._completion(scripted, body), scripted.headers)

            def _send(self, status: int, payload: dict[str, Any], headers: dict[str, str] | None = None) -> None:
                data = json.dumps(payload).encode()
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(data)))
                    for key, value in (headers or {}).items():
                        self.send_header(key, value)
                    self.end_headers()
                    self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):  # the client gave up (timeout)
                    pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, name="openai-stub",
                                        daemon=True)

    # ------------------------------------------------------------ lifecycle

    @property
    def base_url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}/v1"

    def start(self) -> OpenAIStub:
        self._thread.start()
        return self

    def close(self) -> None:
        self._closing.set()
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    def __enter__(self) -> OpenAIStub:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------ scripting

    def push(self, scripted: Scripted) -> None:
        with self._lock:
            self.queue.append(scripted)

    def reply(self, content: Any, **kw: Any) -> None:
        """Answer with ``content``: a dict is sent as its JSON text, a string as it is."""
        text = content if isinstance(content, str) else json.dumps(content)
        self.push(Scripted(content=text, **kw))

    def refuse(self, refusal: str, **kw: Any) -> None:
        """Answer with ``message.refusal`` set and no content."""
        self.push(Scripted(content=None, refusal=refusal, **kw))

    def error(self, status: int, message: str = "", *, headers: dict[str, str] | None = None,
              code: str | None = None, delay: float = 0.0) -> None:
        kind = "rate_limit_error" if status == 429 else "invalid_request_error" if status < 500 else "server_error"
        self.push(Scripted(status=status, headers=headers or {}, delay=delay,
                           error={"message": message or f"stub error {status}", "type": kind, "code": code}))

    def slow(self, delay: float, content: Any) -> None:
        """Answer ``content`` only after ``delay`` seconds (or when the stub closes)."""
        text = content if isinstance(content, str) else json.dumps(content)
        self.push(Scripted(content=text, delay=delay))

    @property
    def pending(self) -> int:
        with self._lock:
            return len(self.queue)

    def completions(self) -> list[Received]:
        """The chat-completion requests received, in order."""
        return [r for r in self.requests if r.path.rstrip("/") == "/v1/chat/completions"]

    # ------------------------------------------------------------ the protocol

    def _completion(self, scripted: Scripted, body: dict[str, Any]) -> dict[str, Any]:
        with self._lock:
            self._counter += 1
            n = self._counter
        message: dict[str, Any] = {"role": "assistant", "content": scripted.content}
        if scripted.refusal is not None:
            message["refusal"] = scripted.refusal
        payload: dict[str, Any] = {
            "id": f"chatcmpl-stub-{n}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": scripted.model or body.get("model") or self.model,
            "choices": [{"index": 0, "message": message, "finish_reason": scripted.finish_reason,
                         "logprobs": None}],
            "system_fingerprint": "stub",
        }
        if scripted.usage is not None:
            prompt, completion = scripted.usage
            payload["usage"] = {"prompt_tokens": prompt, "completion_tokens": completion,
                                "total_tokens": prompt + completion}
        return payload
