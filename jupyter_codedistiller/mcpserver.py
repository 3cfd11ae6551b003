"""The library for coding agents: an MCP server (official ``mcp`` SDK) with the people's policy.

As thin as the CLI: each tool checks its arguments, calls the library and
answers JSON. The same server runs over stdio (``codedistiller mcp``) and,
mounted under the Jupyter server, over streamable HTTP behind Jupyter's
authentication (``server/mcphandler.py``). Nothing imports this module but
those two; the core never imports ``mcp``.

Policy: ``provenance.insert_blockers`` decides, as for a person's insert.
Under the team policy ``validated`` or ``reviewed`` an agent never receives
code a person would need ``--force`` for: such snippets are left out of
search results and ``get_snippet`` refuses them with a one-line tool error.
Under ``open`` the agent gets the code with badges and the reasons a person
would be asked to confirm (``needs_force``).
"""

from __future__ import annotations

import functools
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import anyio.to_thread
from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.exceptions import ResourceError, ToolError
from mcp_types import ToolAnnotations

from . import textindex
from .badges import badges
from .library import Library, LibraryError, SearchResult
from .model import FLAG_KINDS, Snippet
from .people import acting_person
from .provenance import cell_metadata, cell_source, insert_blockers, insert_warnings, marker_line, source_record
from .settings import SettingsError, load_settings
from .titles import headline

T = TypeVar("T")

SERVER_NAME = "codedistiller"
MAX_QUERY = 500
MAX_LIMIT = 50
DEFAULT_LIMIT = 10
MAX_REASON = 2000
MAX_PACKAGE = 200
PREVIEW_LINES = 12
PREVIEW_CHARS = 800
MAX_PAGES = 5  # a strict policy may hide results: ask the library for at most this many pages
SNIPPET_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,79}")
_UNPRINTABLE = re.compile("[\x00-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")

INSTRUCTIONS = (
    "A local library of code examples distilled from scientific repositories, each executed in a "
    "sandbox and carrying its provenance. Prefer these examples over writing analysis code from memory: "
    "search_snippets, then get_snippet for the code. Insert the code exactly as given, provenance marker "
    "line first; when you insert into a Jupyter notebook, put `cell_metadata` into the cell's "
    "metadata under `codedistiller`. If a snippet fails for you, report it with flag_snippet."
)


@dataclass
class Host:
    """What the server stands on: the library, a way to run blocking calls, and who the agent acts for.

    ``run(fn)`` runs ``fn()`` off the event loop; ``person(ctx)`` names the
    person the agent acts for (the Jupyter user over HTTP), or None to let
    ``people.acting_person`` decide (the local user over stdio).
    """

    library: Callable[[], Library]
    run: Callable[[Callable[[], Any]], Awaitable[Any]]
    person: Callable[[Context], str | None]


def stdio_host(library: Library) -> Host:
    """The host for ``codedistiller mcp``: one open library, calls on anyio's worker threads."""
    return Host(library=lambda: library, run=anyio.to_thread.run_sync, person=lambda ctx: None)


# ---------------------------------------------------------------- small checks


def one_line(text: Any, limit: int = 200) -> str:
    """``text`` on one line without control characters, at most ``limit`` characters."""
    flat = " ".join(_UNPRINTABLE.sub(" ", str(text if text is not None else "")).split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


def client_name(ctx: Context | None) -> str:
    """The agent's name as its MCP client gave it (``clientInfo``), cleaned; the client says it, so it
    is a label, never an identity."""
    try:
        info = ctx.session.client_params.client_info  # type: ignore[union-attr]
        name, version = one_line(info.name, 80), one_line(info.version or "", 40)
    except AttributeError:
        return "an unnamed MCP client"
    if not name:
        return "an unnamed MCP client"
    return f"{name} {version}".strip() if version else name


def _check_id(raw: Any) -> str:
    if not isinstance(raw, str) or not SNIPPET_ID.fullmatch(raw):
        raise ToolError(f"not a snippet id: {one_line(repr(raw), 60)}; ids look like cd-0123456789abcdef")
    return raw


def _check_text(name: str, value: Any, limit: int, *, blank_ok: bool = True) -> str:
    if not isinstance(value, str):
        raise ToolError(f"{name} must be a string")
    if len(value) > limit:
        raise ToolError(f"{name} is longer than {limit} characters")
    if "\x00" in value:
        raise ToolError(f"{name} holds a NUL character")
    if not blank_ok and not value.strip():
        raise ToolError(f"{name} must not be blank")
    return value


_PYDANTIC_DETAIL = re.compile(r"\s*\[type=.*$")  # "[type=..., input_value=..., input_type=...]": echoes the input


def error_line(text: str) -> str:
    """A failed tool call's message on one line: the SDK's argument validation errors span
    several lines and echo the (hostile) input; keep the field names and what was wrong."""
    lines = [ln.strip() for ln in text.splitlines()
             if ln.strip() and not ln.strip().startswith("For further information")]
    if len(lines) <= 1:
        return one_line(text, 300)
    head, rest = lines[0], lines[1:]
    if "validation error" in head:
        prefix = head.split(": ", 1)[0] + ": " if head.startswith("Error executing tool") else ""
        pairs = [f"{rest[i]}: {_PYDANTIC_DETAIL.sub('', rest[i + 1])}" for i in range(0, len(rest) - 1, 2)]
        return one_line(prefix + "invalid arguments: " + "; ".join(pairs), 300)
    return one_line(" ".join(lines), 300)


async def one_line_tool_errors(ctx: Any, call_next: Callable[[Any], Awaitable[Any]]) -> Any:
    """Server middleware: every failed ``tools/call`` answers with a one-line message."""
    result = await call_next(ctx)
    if ctx.method == "tools/call" and isinstance(result, dict) and result.get("isError"):
        for item in result.get("content") or []:
            if isinstance(item, dict) and item.get("type") == "text":
                item["text"] = error_line(str(item.get("text", "")))
    return result


def tool_errors(fn: Callable[..., Awaitable[T]]) -> Callable[..., Awaitable[T]]:
    """Library, settings and argument errors become tool errors with a one-line message."""

    @functools.wraps(fn)
    async def wrapper(*args: Any, **kwargs: Any) -> T:
        try:
            return await fn(*args, **kwargs)
        except ToolError:
            raise
        except (LibraryError, SettingsError, ValueError) as exc:
            raise ToolError(one_line(exc, 300)) from None

    return wrapper


# ---------------------------------------------------------------- what agents receive


def api_names(s: Snippet, limit: int = 12) -> list[str]:
    """The APIs the snippet shows: the one it documents first, then the qualified names its code calls."""
    names = dict.fromkeys([s.api] if s.api else [])
    names.update(dict.fromkeys(textindex.api_names(s.code)))
    return list(names)[:limit]


def preview(code: str) -> str:
    """The first lines of ``code``, cut to ``PREVIEW_LINES`` lines and ``PREVIEW_CHARS`` characters."""
    lines = code.rstrip("\n").splitlines()
    text = "\n".join(lines[:PREVIEW_LINES])[:PREVIEW_CHARS]
    return text + ("\n…" if len(lines) > PREVIEW_LINES or len(text) == PREVIEW_CHARS else "")


def _badges(s: Snippet) -> list[dict[str, str]]:
    return [b.to_dict() for b in badges(s)]


def _flags(s: Snippet) -> list[dict[str, Any]]:
    return [{"id": f.id, "kind": f.kind, "reason": f.reason, "by": f.by, "when": f.when} for f in s.open_flags]


def result_entry(r: SearchResult, policy: str) -> dict[str, Any]:
    """One search hit as an agent sees it: title, APIs, badges, a short preview."""
    s = r.snippet
    head = headline(s)
    return {
        "rank": r.rank,
        "id": s.id,
        "revision": s.revision,
        "title": head.title,
        "summary": head.summary,
        "apis": api_names(s),
        "package": s.package_or_repository,
        "badges": _badges(s),
        "validation": s.validation.status,
        "review": s.review.status,
        "origin": s.origin.kind,
        "open_flags": len(s.open_flags),
        "license": s.source.license,
        "preview": preview(s.code),
        "needs_force": insert_blockers(s, policy),
        "missing": list(r.missing),
    }


def search_payload(lib: Library, query: str, package: str | None, validated_only: bool, limit: int,
                   policy: str) -> dict[str, Any]:
    """Ranked results under ``policy``: a strict policy leaves out what a person would need ``--force`` for."""
    filters: dict[str, str] = {}
    if package:
        filters["package"] = package
    if validated_only or policy == "validated":
        filters["validation"] = "passed"
    if policy == "reviewed":
        filters["review"] = "approved"
    strict = policy in ("validated", "reviewed")
    kept: list[dict[str, Any]] = []
    withheld = 0
    offset = 0
    notice = None
    for n in range(MAX_PAGES):
        page = lib.search(query, limit=limit * 2 if strict else limit, offset=offset, **filters)
        if n == 0:
            notice = page.notice
        for r in page:
            if strict and insert_blockers(r.snippet, policy):
                withheld += 1
                continue
            if len(kept) < limit:
                kept.append(result_entry(r, policy))
        offset += len(page)
        if not strict or len(kept) >= limit or not page:
            break
    for i, entry in enumerate(kept, 1):
        entry["rank"] = i
    note = ""
    if withheld:
        note = (f"{withheld} matching snippet(s) left out: the team policy is {policy!r} and a person "
                "would need --force to insert them")
    return {"query": query, "policy": policy, "notice": notice, "results": kept, "withheld": withheld,
            "note": note}


def snippet_payload(s: Snippet, policy: str, agent: dict[str, str]) -> dict[str, Any]:
    """The snippet an agent may insert: code with its marker, requirements, validation, license,
    review, open flags and the cell metadata to record; refused under a strict policy when blocked."""
    blockers = insert_blockers(s, policy)
    if blockers and policy in ("validated", "reviewed"):
        raise ToolError(f"{s.id} is withheld: {'; '.join(blockers)}; only a person can insert it (with --force)")
    v = s.validation
    head = headline(s)
    return {
        "id": s.id,
        "revision": s.revision,
        "title": head.title,
        "api": head.api,
        "summary": head.summary,
        "apis": api_names(s),
        "code": cell_source(s),
        "marker": marker_line(s),
        "requirements": dict(s.requirements),
        "license": s.source.license,
        "source": source_record(s),
        "origin": {"kind": s.origin.kind, "model": s.origin.model, "prompt_version": s.origin.prompt_version},
        "validation": {
            "status": v.status, "reason": v.reason, "when": v.when, "interpreter": v.interpreter,
            "python_version": v.python_version, "packages": dict(v.packages), "isolation": v.isolation,
            "exit_code": v.exit_code, "duration": v.duration,
        },
        "review": {"status": s.review.status,
                   "by": next((e.by for e in reversed(s.review.history) if e.revision == s.revision), None)},
        "open_flags": _flags(s),
        "badges": _badges(s),
        "lifecycle": s.lifecycle,
        "policy": policy,
        "needs_force": blockers,
        "warnings": insert_warnings(s),
        "outputs": outputs_entries(s),
        "output_uri": output_uri(s.id) if printed_output(s) else None,
        "cell_metadata": cell_metadata(s, agent=agent),
    }


def outputs_entries(s: Snippet) -> list[dict[str, Any]]:
    """What the snippet's validation run showed, each figure with the resource URI that serves it."""
    out: list[dict[str, Any]] = []
    figure = 0
    for o in s.validation.outputs:
        entry: dict[str, Any] = {"kind": o.kind, "label": o.label}
        if o.kind == "figure" and o.sha256:
            figure += 1
            entry.update(uri=figure_uri(s.id, figure), mime_type="image/png", width=o.width, height=o.height,
                         size=o.size)
        else:
            entry.update(text=o.text, truncated=o.truncated)
        out.append(entry)
    return out


def figure_uri(sid: str, n: int) -> str:
    return f"codedistiller://snippets/{sid}/figures/{n}"


def output_uri(sid: str) -> str:
    return f"codedistiller://snippets/{sid}/output"


def printed_output(s: Snippet) -> str:
    """The text a validation run showed: the captured results, then the tail of what it printed."""
    parts = [f"{o.label}:\n{o.text}" if o.label else o.text for o in s.validation.outputs
             if o.kind == "text" and o.text]
    if s.validation.stdout_tail:
        parts.append("standard output (tail):\n" + s.validation.stdout_tail.rstrip("\n"))
    return "\n\n".join(parts)


# ---------------------------------------------------------------- the server


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("jupyter-codedistiller")
    except PackageNotFoundError:
        return "0"


def build_server(host: Host) -> MCPServer:
    """The MCP server with the tools ``search_snippets``, ``get_snippet``, ``flag_snippet``."""
    server = MCPServer(SERVER_NAME, title="jupyter-codedistiller", version=_version(),
                       instructions=INSTRUCTIONS, log_level="WARNING")
    server.middleware.append(one_line_tool_errors)
    reading = ToolAnnotations(read_only_hint=True, open_world_hint=False)

    def policy_of(lib: Library) -> str:
        return load_settings(lib.path.parent).policy

    def agent_record(ctx: Context) -> dict[str, str]:
        record = {"client": client_name(ctx), "via": "mcp"}
        person = host.person(ctx)
        if person:
            record["for"] = one_line(person, 100)
        return record

    @server.tool(annotations=reading,
                 description="Search the validated example library. Returns ranked snippets with title, "
                             "APIs used, badges (validation, review, origin, flags) and a short code preview. "
                             "`package` limits to one package; `validated_only` to examples that ran.")
    @tool_errors
    async def search_snippets(query: str, package: str | None = None, validated_only: bool = False,
                              limit: int = DEFAULT_LIMIT) -> dict[str, Any]:
        _check_text("query", query, MAX_QUERY)
        if package is not None:
            _check_text("package", package, MAX_PACKAGE)
        if not isinstance(limit, int) or isinstance(limit, bool) or not 1 <= limit <= MAX_LIMIT:
            raise ToolError(f"limit must be a whole number from 1 to {MAX_LIMIT}")

        def search() -> dict[str, Any]:
            lib = host.library()
            return search_payload(lib, query, package or None, bool(validated_only), limit, policy_of(lib))

        return await host.run(search)

    @server.tool(annotations=reading,
                 description="One snippet to use: the code (first line is its provenance marker; keep it), "
                             "requirements, the validation record, license, review, open flags, and "
                             "`cell_metadata` to store under metadata.codedistiller when inserting into a notebook.")
    @tool_errors
    async def get_snippet(id: str, ctx: Context) -> dict[str, Any]:  # noqa: A002 - the tool's argument name
        sid = _check_id(id)
        agent = agent_record(ctx)

        def get() -> dict[str, Any]:
            lib = host.library()
            return snippet_payload(lib.get(sid), policy_of(lib), agent)

        return await host.run(get)

    @server.tool(annotations=ToolAnnotations(read_only_hint=False, destructive_hint=False, open_world_hint=False),
                 description="Report a snippet that failed or misled you, for a person to resolve. "
                             f"kind is one of {', '.join(FLAG_KINDS)}; reason says what went wrong.")
    @tool_errors
    async def flag_snippet(id: str, reason: str, ctx: Context, kind: str = "incorrect") -> dict[str, Any]:  # noqa: A002
        sid = _check_id(id)
        _check_text("reason", reason, MAX_REASON, blank_ok=False)
        if kind not in FLAG_KINDS:
            raise ToolError(f"kind must be one of {', '.join(FLAG_KINDS)}; got {one_line(repr(kind), 40)}")
        agent = agent_record(ctx)

        def flag() -> dict[str, Any]:
            person = agent.get("for") or acting_person()
            by = f"{agent['client']} (MCP agent for {person})"
            f = host.library().flag(sid, reason, kind=kind, by=by)
            return {"flag": {"id": f.id, "snippet_id": sid, "kind": f.kind, "reason": f.reason, "by": f.by,
                             "when": f.when, "resolved": f.resolved},
                    "note": "recorded as an open flag for a person to resolve"}

        return await host.run(flag)

    def allowed(lib: Library, sid: str) -> Snippet:
        try:
            s = lib.get(sid)
        except LibraryError as exc:
            raise ResourceError(one_line(exc, 300)) from None
        policy = policy_of(lib)
        blockers = insert_blockers(s, policy)
        if blockers and policy in ("validated", "reviewed"):
            raise ResourceError(f"{s.id} is withheld: {'; '.join(blockers)}")
        return s

    def resource_id(raw: str) -> str:
        if not SNIPPET_ID.fullmatch(raw):
            raise ResourceError(f"not a snippet id: {one_line(repr(raw), 60)}")
        return raw

    @server.resource("codedistiller://snippets/{id}/figures/{n}", name="snippet-figure", mime_type="image/png",
                     description="A figure the snippet drew when it was validated (PNG; see get_snippet's outputs).")
    async def snippet_figure(id: str, n: str) -> bytes:  # noqa: A002
        sid = resource_id(id)
        if not re.fullmatch(r"[1-9][0-9]{0,3}", n):
            raise ResourceError("figure number must be a whole number from 1")

        def read() -> bytes:
            lib = host.library()
            figures = allowed(lib, sid).validation.figures
            if int(n) > len(figures):
                raise ResourceError(f"{sid} has {len(figures)} figure(s), not {n}")
            data = lib.figures.get(figures[int(n) - 1].sha256)
            if data is None:
                raise ResourceError(f"figure {n} of {sid} is not in this library's figure store")
            return data

        return await host.run(read)

    @server.resource("codedistiller://snippets/{id}/output", name="snippet-output", mime_type="text/plain",
                     description="What the snippet printed and showed when it was validated (plain text).")
    async def snippet_output(id: str) -> str:  # noqa: A002
        sid = resource_id(id)

        def read() -> str:
            text = printed_output(allowed(host.library(), sid))
            if not text:
                raise ResourceError(f"{sid} showed no output when it was validated")
            return text

        return await host.run(read)

    return server

