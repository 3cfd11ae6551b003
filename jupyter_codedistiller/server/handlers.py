"""The REST API under ``/codedistiller/api/``: one small authenticated handler per endpoint.

Handlers parse and check input, call the library (on a thread pool, through
``LibraryService``) and answer JSON. Errors of every kind become
``{"message": "..."}`` with a 4xx/5xx status in one place: ``errors_as_json``.
The contract is ``openapi.yaml`` beside this file.
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Awaitable, Callable
from dataclasses import asdict
from typing import Any

from jupyter_server.base.handlers import APIHandler
from jupyter_server.utils import url_path_join
from tornado import web

from ..badges import badges
from ..figures import is_digest
from ..library import Library, LibraryError, NotFound, SearchResult
from ..model import (
    ORIGIN_KINDS,
    REVIEW_STATUSES,
    VALIDATION_STATUSES,
    RecordError,
    Snippet,
)
from ..provenance import cell_metadata, cell_source, insert_blockers, insert_warnings, marker_line
from ..schema import check
from ..settings import SettingsError, load_settings
from ..textview import building_note, history_events, provenance_rows, status_line, validation_note
from ..titles import headline
from . import API_PREFIX
from .bodies import FlagBody, RefreshBody, ResolveBody, ReviewBody, SourceBody
from .service import LibraryService, ServiceError

MAX_QUERY = 500
MAX_LIMIT = 100
MAX_OFFSET = 10_000
DEFAULT_LIMIT = 20
SNIPPET_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,79}")
# Query arguments Jupyter itself may add to any request.
JUPYTER_ARGS = frozenset({"token", "_xsrf", "no_track_activity"})
# JupyterLab's ServerConnection appends a bare timestamp (``?1732520000000``) to GETs.
CACHE_BUSTER = re.compile(r"[0-9]{1,20}")
_ANONYMOUS_ID = re.compile(r"[0-9a-f]{32}")


class ApiError(web.HTTPError):
    """An answer with a status and a one-line message for a person."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(status, "%s", message)
        self.message = message


def errors_as_json(
    method: Callable[..., Awaitable[None]],
) -> Callable[..., Awaitable[None]]:
    """Translate library and service errors into JSON answers: the one place that does it."""

    @functools.wraps(method)
    async def wrapper(self: BaseHandler, *args: Any, **kwargs: Any) -> None:
        try:
            await method(self, *args, **kwargs)
        except NotFound as exc:
            raise ApiError(404, str(exc)) from None
        except ServiceError as exc:
            raise ApiError(exc.status, exc.message) from None
        except (LibraryError, RecordError, SettingsError) as exc:
            raise ApiError(400, str(exc)) from None

    return wrapper


# ---------------------------------------------------------------- JSON shapes


def snippet_json(s: Snippet) -> dict[str, Any]:
    """The snippet record plus what every view shows: badges, link, where it came from."""
    data = s.to_dict()
    data["badges"] = [b.to_dict() for b in badges(s)]
    data["link"] = s.source.link()
    data["where"] = s.package_or_repository
    data["headline"] = headline(s).to_dict()  # title, API, summary: what every view shows
    # The phrases of textview, finished here so that the panel shows them as they are.
    data["provenance"] = [asdict(row) for row in provenance_rows(s)]
    data["history"] = [asdict(e) for e in history_events(s)]
    data["validation_note"] = validation_note(s)
    return data


def result_json(r: SearchResult) -> dict[str, Any]:
    data = snippet_json(r.snippet)
    data["rank"] = r.rank
    data["score"] = round(r.score, 6)
    data["missing"] = list(r.missing)
    return data


def detail_json(s: Snippet, policy: str = "open") -> dict[str, Any]:
    """A snippet as the panel inserts it: marker, cell source, cell metadata, insert checks.

    ``insert_blockers`` are what would make the magic and the CLI ask for
    ``--force`` under the team ``policy``; the panel asks "insert anyway?".
    """
    data = snippet_json(s)
    data["marker"] = marker_line(s)
    data["cell_source"] = cell_source(s)
    data["cell_metadata"] = cell_metadata(s)
    data["policy"] = policy
    data["insert_blockers"] = insert_blockers(s, policy)
    data["insert_warnings"] = insert_warnings(s)
    return data


# ---------------------------------------------------------------- input checks


def checked_fields(body: dict[str, Any], record: type) -> dict[str, Any]:
    """``body`` checked against the declared request ``record`` (``bodies.py``): no unknown
    fields, required ones present, types and limits right; null counts as not given."""
    names = record.__dataclass_fields__
    named = sorted((set(body) & IDENTITY_FIELDS) - set(names))
    if named:
        raise ApiError(400, f"field {named[0]!r} is not accepted: the acting person is the "
                            "signed-in Jupyter user")
    try:
        return check(record, body, refuse_unknown=True, null_is_absent=True,
                     label=lambda path: f"field {path!r}", whole="request body")
    except RecordError as exc:
        raise ApiError(400, str(exc)) from None


# Who flags, resolves or reviews is the authenticated Jupyter user (``acting_person``),
# never a field of the request: a client naming someone else is refused.
IDENTITY_FIELDS = frozenset({"by", "user", "reviewer", "resolved_by"})

SEARCH_ARGS: dict[str, tuple[str, ...]] = {
    "q": (),
    "limit": (),
    "offset": (),
    "package": (),
    "validation": VALIDATION_STATUSES,
    "review": REVIEW_STATUSES,
    "origin": ORIGIN_KINDS,
    "license": (),
    "tag": (),
    "source": (),
    "include_retired": ("true", "false"),
}


def _whole_number(name: str, text: str | None, default: int, low: int, high: int) -> int:
    if text is None or text == "":
        return default
    if not re.fullmatch(r"[0-9]{1,7}", text):
        raise ApiError(400, f"{name} must be a whole number from {low} to {high}")
    value = int(text)
    if not low <= value <= high:
        raise ApiError(400, f"{name} must be a whole number from {low} to {high}")
    return value


# ---------------------------------------------------------------- handlers


@web.stream_request_body
class BaseHandler(APIHandler):
    """Common ground: the service, JSON bodies, the acting person, JSON error answers.

    Bodies are bounded before they are read: the handler streams its body
    (``stream_request_body``), so tornado hands it over only after ``prepare``
    and in chunks, and the connection's body limit is ``max_body_bytes``
    from the start. A request that is not authenticated is answered 403 before
    a byte of its body is read; one declaring a larger ``Content-Length`` is
    answered 413 and its connection closed unread; a chunked body is cut off
    at the limit.
    """

    def initialize(self) -> None:
        self._body_parts: list[bytes] = []
        self._body_size = 0
        connection = self.request.connection
        if hasattr(connection, "set_max_body_size"):  # HTTP/1 (tornado's only server protocol)
            connection.set_max_body_size(self.service.max_body_bytes)

    async def prepare(self) -> None:
        await super().prepare()  # identity, XSRF and Origin checks
        if self.request.method in ("GET", "HEAD", "OPTIONS"):
            return
        if not self.current_user:
            raise ApiError(403, "not signed in to Jupyter")
        declared = self.request.headers.get("Content-Length", "")
        limit = self.service.max_body_bytes
        if declared.isdigit() and int(declared) > limit:
            raise ApiError(413, f"request body is larger than {limit} bytes")

    def data_received(self, chunk: bytes) -> None:
        self._body_size += len(chunk)
        if self._body_size <= self.service.max_body_bytes:
            self._body_parts.append(chunk)

    @property
    def service(self) -> LibraryService:
        return self.settings["codedistiller"]

    def library(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Awaitable[Any]:
        """Run ``fn(library, ...)`` off the event loop."""
        return self.service.call(fn, *args, **kwargs)

    def body_bytes(self) -> bytes:
        """The request body as received (handlers stream it; ``request.body`` stays empty)."""
        limit = self.service.max_body_bytes
        if self._body_size > limit:
            raise ApiError(413, f"request body is larger than {limit} bytes")
        return b"".join(self._body_parts)

    def json_body(self, record: type) -> dict[str, Any]:
        """The request body as a checked JSON object (an empty body is an empty object)."""
        body = self.body_bytes()
        if not body.strip():
            data: Any = {}
        else:
            try:
                data = json.loads(body)
            except (ValueError, UnicodeDecodeError, RecursionError):  # RecursionError: [[[[...
                raise ApiError(400, "request body is not valid JSON") from None
        if not isinstance(data, dict):
            raise ApiError(400, "request body must be a JSON object")
        return checked_fields(data, record)

    def snippet_id(self, raw: str) -> str:
        if not SNIPPET_ID.fullmatch(raw):
            raise ApiError(400, "not a snippet id")
        return raw

    def acting_person(self) -> str | None:
        """The authenticated Jupyter user's name; None (a shared token) lets the library
        decide (the server's own acting person). Never anything the request says."""
        user = self.current_user
        name = getattr(user, "name", None) or getattr(user, "username", None)
        if not isinstance(name, str) or not name.strip():
            return None
        username = getattr(user, "username", "")
        if name.startswith("Anonymous ") and _ANONYMOUS_ID.fullmatch(str(username)):
            return None  # a name Jupyter made up for a shared token: say nothing
        return name.strip()

    def reply(self, data: Any, status: int = 200) -> None:
        self.set_status(status)
        self.finish(json.dumps(data, ensure_ascii=False))

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        exc = (kwargs.get("exc_info") or (None, None, None))[1]
        if isinstance(exc, ApiError):
            self.set_header("Content-Type", "application/json")
            self.finish(json.dumps({"message": exc.message}, ensure_ascii=False))
            return
        super().write_error(status_code, **kwargs)


class SearchHandler(BaseHandler):
    """GET search?q=...: ranked snippets with badges."""

    @web.authenticated
    @errors_as_json
    async def get(self) -> None:
        args: dict[str, str] = {}
        for name, values in self.request.query_arguments.items():
            if name in JUPYTER_ARGS or (CACHE_BUSTER.fullmatch(name) and values == [b""]):
                continue
            if name not in SEARCH_ARGS:
                raise ApiError(400, f"unknown parameter {name!r}; expected {', '.join(SEARCH_ARGS)}")
            if len(values) != 1:
                raise ApiError(400, f"parameter {name!r} given more than once")
            try:
                value = values[0].decode("utf-8")
            except UnicodeDecodeError:
                raise ApiError(400, f"parameter {name!r} is not UTF-8 text") from None
            choices = SEARCH_ARGS[name]
            if value and choices and value not in choices:
                raise ApiError(400, f"{name} must be one of {', '.join(choices)}; got {value!r}")
            if len(value) > MAX_QUERY:
                raise ApiError(400, f"parameter {name!r} is longer than {MAX_QUERY} characters")
            args[name] = value
        query = args.pop("q", "")
        limit = _whole_number("limit", args.pop("limit", None), DEFAULT_LIMIT, 1, MAX_LIMIT)
        offset = _whole_number("offset", args.pop("offset", None), 0, 0, MAX_OFFSET)
        include_retired = args.pop("include_retired", "false") == "true"
        filters = {k: v for k, v in args.items() if v}

        def search(lib: Library) -> tuple[list[SearchResult], dict[str, int] | None]:
            found = lib.search(query, limit=limit + 1, offset=offset, include_retired=include_retired, **filters)
            return found, lib.building()

        results, progress = await self.library(search)
        self.reply({
            "query": query,
            "limit": limit,
            "offset": offset,
            "filters": filters,
            "has_more": len(results) > limit,
            "building": progress,
            "building_note": building_note(progress),
            "notice": getattr(results, "notice", None),
            "results": [result_json(r) for r in results[:limit]],
        })


class SnippetHandler(BaseHandler):
    """GET snippets/{id}: one snippet with its marker, cell source and cell metadata."""

    @web.authenticated
    @errors_as_json
    async def get(self, snippet_id: str) -> None:
        sid = self.snippet_id(snippet_id)

        def detail(lib: Library) -> dict[str, Any]:
            return detail_json(lib.get(sid), load_settings(lib.path.parent).policy)

        self.reply(await self.library(detail))


class FlagsHandler(BaseHandler):
    """POST snippets/{id}/flags: raise a flag."""

    @web.authenticated
    @errors_as_json
    async def post(self, snippet_id: str) -> None:
        sid = self.snippet_id(snippet_id)
        body = self.json_body(FlagBody)
        by = self.acting_person()

        def flag(lib: Library) -> dict[str, Any]:
            f = lib.flag(sid, body["reason"], kind=body["kind"], by=by)
            return {"flag": asdict(f), "snippet": snippet_json(lib.get(sid))}

        self.reply(await self.library(flag), status=201)


class ResolveFlagHandler(BaseHandler):
    """POST snippets/{id}/flags/{flag_id}/resolve: resolve an open flag with a note."""

    @web.authenticated
    @errors_as_json
    async def post(self, snippet_id: str, flag_id: str) -> None:
        sid = self.snippet_id(snippet_id)
        if not re.fullmatch(r"[1-9][0-9]{0,15}", flag_id):
            raise ApiError(400, "flag id must be a whole number of at least 1")
        body = self.json_body(ResolveBody)
        by = self.acting_person()

        def resolve(lib: Library) -> dict[str, Any]:
            f = lib.resolve_flag(sid, int(flag_id), note=body.get("note", ""), by=by)
            return {"flag": asdict(f), "snippet": snippet_json(lib.get(sid))}

        self.reply(await self.library(resolve))


class ReviewsHandler(BaseHandler):
    """POST snippets/{id}/reviews: approve or reject the current revision."""

    @web.authenticated
    @errors_as_json
    async def post(self, snippet_id: str) -> None:
        sid = self.snippet_id(snippet_id)
        body = self.json_body(ReviewBody)
        by = self.acting_person()

        def review(lib: Library) -> dict[str, Any]:
            e = lib.review(sid, body["status"], note=body.get("note", ""), by=by,
                           revision=body.get("revision"))
            return {"review": asdict(e), "snippet": snippet_json(lib.get(sid))}

        self.reply(await self.library(review), status=201)


class SourcesHandler(BaseHandler):
    """GET sources: the registered sources; POST sources: register one (child process)."""

    @web.authenticated
    @errors_as_json
    async def get(self) -> None:
        sources = await self.library(lambda lib: [s.to_dict() for s in lib.sources()])
        self.reply({"sources": sources})

    @web.authenticated
    @errors_as_json
    async def post(self) -> None:
        body = self.json_body(SourceBody)
        source = await self.service.add_source(body["source"], body.get("name"), body.get("ref"))
        self.reply({"source": source}, status=201)


class RefreshHandler(BaseHandler):
    """POST refresh: start ``codedistiller refresh`` in a child process; 202 Accepted."""

    @web.authenticated
    @errors_as_json
    async def post(self) -> None:
        body = self.json_body(RefreshBody)
        sources = list(dict.fromkeys(body.get("sources") or []))  # each checked by RefreshBody
        if sources:
            await self.library(lambda lib: [lib.source(s) for s in sources])
        job = await self.service.start_refresh(sources, validate=body.get("validate", True))
        self.reply({"job": job.to_dict()}, status=202)


class StatusHandler(BaseHandler):
    """GET status: library counts, sources, the distiller's progress, the API's refresh job."""

    @web.authenticated
    @errors_as_json
    async def get(self) -> None:
        job = self.service.refresh_job
        refresh = job.to_dict() if job else None

        def status_with_policy(lib: Library) -> dict[str, Any]:
            st = lib.status()
            return {**st.to_dict(), "policy": load_settings(lib.path.parent).policy,
                    "refresh": refresh, "status_line": status_line(st, refresh)}

        self.reply(await self.library(status_with_policy))


class FigureHandler(BaseHandler):
    """GET figures/{sha256}: a figure a validation run drew, as ``image/png``.

    Named by its content's digest, so it never changes: cacheable for a year (privately:
    it needs the same authentication as every endpoint), with the digest as ETag.
    """

    @web.authenticated
    @errors_as_json
    async def get(self, digest: str) -> None:
        digest = digest.removesuffix(".png")
        if not is_digest(digest):
            raise ApiError(400, "not a figure id (the SHA-256 of the PNG, 64 lower-case hex digits)")
        data = await self.library(lambda lib: lib.figures.get(digest))
        if data is None:
            raise ApiError(404, f"no figure {digest}")
        self.set_header("Cache-Control", "private, max-age=31536000, immutable")
        self.set_header("ETag", f'"{digest}"')
        self.set_header("X-Content-Type-Options", "nosniff")
        self.set_header("Content-Security-Policy", "default-src 'none'; sandbox")
        if self.request.headers.get("If-None-Match", "").strip() in (f'"{digest}"', digest):
            self.set_status(304)
            self.finish(set_content_type="image/png")
            return
        self.finish(data, set_content_type="image/png")


ROUTES: list[tuple[str, type[BaseHandler]]] = [
    ("search", SearchHandler),
    (r"snippets/([^/]+)", SnippetHandler),
    (r"snippets/([^/]+)/flags", FlagsHandler),
    (r"snippets/([^/]+)/flags/([^/]+)/resolve", ResolveFlagHandler),
    (r"snippets/([^/]+)/reviews", ReviewsHandler),
    ("sources", SourcesHandler),
    ("refresh", RefreshHandler),
    ("status", StatusHandler),
    (r"figures/([^/]+)", FigureHandler),
]


def handlers(base_url: str) -> list[tuple[str, type[BaseHandler]]]:
    """The URL patterns of the API under ``base_url``."""
    return [(url_path_join(base_url, API_PREFIX, pattern), cls) for pattern, cls in ROUTES]
