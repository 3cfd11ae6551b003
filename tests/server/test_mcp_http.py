"""The MCP server mounted under a real jupyter_server (pytest-jupyter), through the SDK's own client.

The client speaks streamable HTTP to ``/codedistiller/mcp`` with the Jupyter
token; without it the server refuses before the MCP layer is reached.
"""

from __future__ import annotations

import io
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import anyio
import pytest

pytest.importorskip("mcp")

import httpx2  # noqa: E402
from mcp import Client  # noqa: E402
from mcp.client.streamable_http import streamable_http_client  # noqa: E402
from mcp_types import Implementation  # noqa: E402

from jupyter_codedistiller import cli  # noqa: E402
from jupyter_codedistiller.library import Library  # noqa: E402
from jupyter_codedistiller.provenance import marker_line  # noqa: E402
from jupyter_codedistiller.settings import set_setting  # noqa: E402

from . import test_server  # noqa: E402

# The REST API tests' server configuration and library, shared.
jp_server_config = test_server.jp_server_config
identity = test_server.identity
fixture_library = test_server.fixture_library

AGENT = Implementation(name="jupyter-ai", version="3.0")
INITIALIZE = {"jsonrpc": "2.0", "id": 1, "method": "initialize",
              "params": {"protocolVersion": "2025-06-18", "capabilities": {},
                         "clientInfo": {"name": "sneaky", "version": "0"}}}


@pytest.fixture
def mcp_url(jp_serverapp: Any, http_server_client: Any, jp_http_port: int, jp_base_url: str) -> str:
    """The endpoint of the running server (``http_server_client`` makes it listen)."""
    return f"http://127.0.0.1:{jp_http_port}{jp_base_url}codedistiller/mcp"


@asynccontextmanager
async def agent(url: str, token: str | None, **options: Any) -> AsyncIterator[Client]:
    headers = {"Authorization": f"token {token}"} if token else {}
    async with (httpx2.AsyncClient(headers=headers, timeout=60) as http,
                Client(streamable_http_client(url, http_client=http), client_info=AGENT, **options) as client):
        yield client


def data(result: Any) -> dict[str, Any]:
    assert not result.is_error, result.content
    return result.structured_content


def error_text(result: Any) -> str:
    assert result.is_error, result
    text = result.content[0].text
    assert "\n" not in text and "Traceback" not in text
    return text


@pytest.mark.parametrize("mode", ["auto", "legacy"])
async def test_list_search_get_flag_over_http(mcp_url, jp_serverapp, fixture_library, home, mode):
    sid = fixture_library["km"]
    with anyio.fail_after(120):
        async with agent(mcp_url, jp_serverapp.identity_provider.token, mode=mode) as client:
            tools = {t.name for t in (await client.list_tools()).tools}
            found = data(await client.call_tool("search_snippets", {"query": "kaplan meier", "limit": 5}))
            got = data(await client.call_tool("get_snippet", {"id": sid}))
            flagged = data(await client.call_tool("flag_snippet", {"id": sid, "reason": "NameError: df",
                                                                   "kind": "incorrect"}))
            bad = error_text(await client.call_tool("get_snippet", {"id": "../../etc/passwd"}))
            missing = error_text(await client.call_tool("get_snippet", {"id": "cd-0000000000000000"}))
            hostile = await client.call_tool("search_snippets", {"query": 'NEAR("x" "y") OR * \u202e'})
    assert {"search_snippets", "get_snippet", "flag_snippet"} <= tools
    assert sid in [r["id"] for r in found["results"]]
    assert all(r["badges"] and "preview" in r for r in found["results"])
    with Library.open(home) as lib:
        s = lib.get(sid)
    assert got["code"].splitlines()[0] == marker_line(s)
    assert got["cell_metadata"]["agent"] == {"client": "jupyter-ai 3.0", "via": "mcp"}
    # a shared token names nobody: the server's acting person, as for the REST API
    assert flagged["flag"]["by"] == "jupyter-ai 3.0 (MCP agent for tester)"
    assert [f.by for f in s.open_flags] == ["jupyter-ai 3.0 (MCP agent for tester)"]
    assert "not a snippet id" in bad and "no snippet 'cd-0000000000000000'" in missing
    assert not hostile.is_error and isinstance(hostile.structured_content["results"], list)


@pytest.mark.parametrize("identity", ["Maria Curie"])
async def test_the_agent_acts_for_the_signed_in_jupyter_user(mcp_url, jp_serverapp, jp_fetch, jp_root_dir,
                                                            fixture_library, home, identity):
    sid = fixture_library["km"]
    with anyio.fail_after(120):
        async with agent(mcp_url, jp_serverapp.identity_provider.token) as client:
            got = data(await client.call_tool("get_snippet", {"id": sid}))
            flagged = data(await client.call_tool("flag_snippet", {"id": sid, "reason": "wrong", "kind": "other"}))
    assert got["cell_metadata"]["agent"] == {"client": "jupyter-ai 3.0", "via": "mcp", "for": "Maria Curie"}
    assert flagged["flag"]["by"] == "jupyter-ai 3.0 (MCP agent for Maria Curie)"

    # The agent inserts through Jupyter (the contents API), as an agent's notebook tool does ...
    notebook = {"nbformat": 4, "nbformat_minor": 5, "metadata": {}, "cells": [
        {"cell_type": "code", "id": "c1", "source": got["code"], "metadata": {"codedistiller": got["cell_metadata"]},
         "outputs": [], "execution_count": None}]}
    r = await jp_fetch("api", "contents", "agent.ipynb", method="PUT",
                       body=json.dumps({"type": "notebook", "format": "json", "content": notebook}))
    assert r.code in (200, 201)
    # ... and the audit of that notebook says where the cell came from and that an agent put it there.
    out = io.StringIO()
    assert cli.main(["--home", str(home), "audit", str(jp_root_dir / "agent.ipynb")], out=out) == 0
    report = out.getvalue()
    assert sid in report and "edited | now" in report
    assert "inserted by a coding agent (jupyter-ai 3.0 via mcp, for Maria Curie)" in report
    assert "1 cell(s) were inserted by a coding agent (jupyter-ai 3.0)" in report


async def test_policy_refusals_are_tool_errors_over_http(mcp_url, jp_serverapp, fixture_library, home):
    set_setting(home, "policy", "validated")
    with anyio.fail_after(120):
        async with agent(mcp_url, jp_serverapp.identity_provider.token) as client:
            found = data(await client.call_tool("search_snippets", {"query": "", "limit": 20}))
            refusal = error_text(await client.call_tool("get_snippet", {"id": fixture_library["scanpy"]}))
    assert fixture_library["scanpy"] not in [r["id"] for r in found["results"]]
    assert {r["validation"] for r in found["results"]} == {"passed"}
    assert "the team policy is 'validated' and its validation is failed" in refusal
    assert "only a person can insert it (with --force)" in refusal


async def test_unauthenticated_requests_are_refused(mcp_url, jp_serverapp, fixture_library, home):
    before = [s.to_dict() for s in Library.open(home).all()]
    headers = {"Content-Type": "application/json", "Accept": "application/json, text/event-stream"}
    async with httpx2.AsyncClient(timeout=30) as http:
        for extra in ({}, {"Authorization": "token wrong"}, {"Authorization": "Bearer not-the-token"}):
            r = await http.post(mcp_url, content=json.dumps(INITIALIZE), headers={**headers, **extra})
            assert r.status_code == 403, (extra, r.status_code, r.text)
            assert "mcp-session-id" not in r.headers
        r = await http.get(mcp_url, headers={"Accept": "text/event-stream"})
        assert r.status_code == 403
    with pytest.raises(Exception):  # noqa: B017 - the SDK's client gives up on the refused handshake
        with anyio.fail_after(60):
            async with agent(mcp_url, None, mode="legacy") as client:
                await client.list_tools()
    assert [s.to_dict() for s in Library.open(home).all()] == before


async def test_oversized_and_malformed_bodies_are_refused(mcp_url, jp_serverapp, fixture_library):
    headers = {"Authorization": f"token {jp_serverapp.identity_provider.token}",
               "Content-Type": "application/json", "Accept": "application/json, text/event-stream"}
    async with httpx2.AsyncClient(timeout=30) as http:
        big = await http.post(mcp_url, content=b"[" * (70 * 1024), headers=headers)
        assert big.status_code == 413 and "larger than" in big.json()["message"]
        junk = await http.post(mcp_url, content=b"{not json", headers=headers)
        assert 400 <= junk.status_code < 500
        # the server is still there for a well-formed client
        ok = await http.post(mcp_url, content=json.dumps(INITIALIZE), headers=headers)
        assert ok.status_code == 200 and ok.headers.get("mcp-session-id")

