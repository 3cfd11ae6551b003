"""The MCP server under the Jupyter server: streamable HTTP at ``/codedistiller/mcp``, behind Jupyter's login.

One authenticated tornado handler passes each request to the MCP SDK's
streamable-HTTP session manager (an ASGI application) and streams its answer
back, so agents reach the same tools as ``codedistiller mcp`` with the
Jupyter token (``Authorization: token ...`` or ``Bearer ...``). Jupyter
decides who may call (login, token, origin checks); the MCP layer never sees
the credential. Tools act for the signed-in Jupyter user, and each MCP
session belongs to the user that opened it. The SDK is imported, and the
session manager started, on the first request; without the ``mcp`` extra the
endpoint answers 501 saying how to install it.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

from tornado import web
from tornado.iostream import StreamClosedError

from .handlers import BaseHandler, errors_as_json
from .service import LibraryService, ServiceError

MCP_PATH = "codedistiller/mcp"
PERSON_KEY = "codedistiller.person"  # where the ASGI scope carries the Jupyter user's name
# Never handed to the MCP layer: Jupyter has already checked them.
HIDDEN_HEADERS = frozenset({"authorization", "cookie", "x-xsrftoken"})
# Tornado frames the answer itself.
FRAMING_HEADERS = frozenset({"content-length", "transfer-encoding", "connection"})


def _person_from_scope(ctx: Any) -> str | None:
    request = getattr(getattr(ctx, "request_context", None), "request", None)
    scope = getattr(request, "scope", None)
    person = scope.get(PERSON_KEY) if isinstance(scope, dict) else None
    return person if isinstance(person, str) and person else None


class McpMount:
    """The MCP server and its session manager: started on first use, stopped with the Jupyter server."""

    def __init__(self, service: LibraryService) -> None:
        self.service = service
        self._manager: Any = None
        self._lock = asyncio.Lock()
        self._stop: asyncio.Event | None = None
        self._task: asyncio.Task[None] | None = None

    async def manager(self) -> Any:
        """The running ``StreamableHTTPSessionManager``; raises ServiceError(501) without the SDK."""
        async with self._lock:
            if self._manager is None:
                self._manager = await self._start()
            return self._manager

    async def _start(self) -> Any:
        try:
            from mcp.server.transport_security import TransportSecuritySettings

            from ..mcpserver import Host, build_server
        except ImportError as exc:
            if (exc.name or "").split(".")[0] != "mcp":
                raise
            raise ServiceError(501, "the MCP server needs the mcp extra: "
                                    "pip install 'jupyter-codedistiller[mcp]'") from None

        def run(fn: Any) -> Any:
            return self.service.call(lambda _lib: fn())

        server = build_server(Host(library=self.service.library, run=run, person=_person_from_scope))
        # Jupyter checks host, origin and credentials before a request gets here.
        server.streamable_http_app(
            transport_security=TransportSecuritySettings(enable_dns_rebinding_protection=False),
            max_request_body_size=self.service.max_body_bytes,
        )
        manager = server.session_manager
        ready = asyncio.Event()
        self._stop = stop = asyncio.Event()

        async def serve() -> None:
            async with manager.run():
                ready.set()
                await stop.wait()

        self._task = task = asyncio.ensure_future(serve())
        waiter = asyncio.ensure_future(ready.wait())
        await asyncio.wait({task, waiter}, return_when=asyncio.FIRST_COMPLETED)
        if not ready.is_set():
            waiter.cancel()
            task.result()  # raises what stopped it
            raise ServiceError(500, "the MCP session manager stopped as it started")
        self.service.log.info("codedistiller: MCP server ready at /%s", MCP_PATH)
        return manager

    def shutdown(self) -> None:
        """Close every MCP session (called when the Jupyter server stops)."""
        if self._stop is not None:
            with contextlib.suppress(RuntimeError):  # the event loop is already closed
                self._stop.set()


class McpHandler(BaseHandler):
    """GET / POST / DELETE codedistiller/mcp: the MCP streamable-HTTP endpoint."""

    _gone: asyncio.Event | None = None

    @property
    def mount(self) -> McpMount:
        return self.settings["codedistiller_mcp"]

    def compute_etag(self) -> None:
        return None

    def on_connection_close(self) -> None:
        if self._gone is not None:
            self._gone.set()

    @web.authenticated
    @errors_as_json
    async def get(self) -> None:
        await self._bridge()

    @web.authenticated
    @errors_as_json
    async def post(self) -> None:
        await self._bridge()

    @web.authenticated
    @errors_as_json
    async def delete(self) -> None:
        await self._bridge()

    def _scope(self) -> dict[str, Any]:
        from mcp.server.auth.middleware.bearer_auth import AuthenticatedUser
        from mcp.server.auth.provider import AccessToken

        req = self.request
        person = self.acting_person()
        user = self.current_user
        owner = str(getattr(user, "username", "") or getattr(user, "name", "") or "jupyter")
        host, _, port = (req.host or "127.0.0.1").partition(":")
        return {
            "type": "http",
            "asgi": {"version": "3.0", "spec_version": "2.3"},
            "http_version": "1.1",
            "method": req.method,
            "scheme": req.protocol,
            "path": req.path,
            "raw_path": req.path.encode("latin-1", "replace"),
            "root_path": "",
            "query_string": (req.query or "").encode("latin-1", "replace"),
            "headers": [(k.lower().encode("latin-1"), v.encode("latin-1", "replace"))
                        for k, v in req.headers.get_all() if k.lower() not in HIDDEN_HEADERS],
            "client": (req.remote_ip or "", 0),
            "server": (host, int(port) if port.isdigit() else 0),
            # A session answers only the Jupyter user who opened it.
            "user": AuthenticatedUser(AccessToken(token="jupyter", client_id=f"jupyter:{owner}", scopes=[])),
            PERSON_KEY: person,
        }

    async def _bridge(self) -> None:
        body = self.body_bytes()  # streamed and bounded by BaseHandler
        manager = await self.mount.manager()
        self._gone = gone = asyncio.Event()
        if self.request.connection is None:
            gone.set()
        delivered = False

        async def receive() -> dict[str, Any]:
            nonlocal delivered
            if not delivered:
                delivered = True
                return {"type": "http.request", "body": body, "more_body": False}
            await gone.wait()
            return {"type": "http.disconnect"}

        async def send(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                self.set_status(message["status"])
                self.clear_header("Content-Type")
                for raw_name, raw_value in message.get("headers", []):
                    name = raw_name.decode("latin-1")
                    if name.lower() not in FRAMING_HEADERS:
                        self.set_header(name, raw_value.decode("latin-1"))
            elif message["type"] == "http.response.body" and not gone.is_set():
                chunk = message.get("body", b"")
                if chunk:
                    self.write(chunk)
                if message.get("more_body", False):
                    try:
                        await self.flush()
                    except StreamClosedError:
                        gone.set()

        try:
            await manager.handle_request(self._scope(), receive, send)
        finally:
            gone.set()
        if not self._finished:
            with contextlib.suppress(StreamClosedError):
                self.finish()


def mcp_handlers(base_url: str) -> list[tuple[str, type[McpHandler]]]:
    """The MCP endpoint's URL pattern under ``base_url``."""
    from jupyter_server.utils import url_path_join

    return [(url_path_join(base_url, MCP_PATH), McpHandler)]
