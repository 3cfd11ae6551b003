"""``codedistiller mcp``: the MCP SDK's own client talks to the real command over stdio.

Tools are listed and called as an agent would; policy refusals and hostile
arguments must come back as tool errors with one line, and the server must
keep answering afterwards.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import struct
import sys
import zlib
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import anyio
import pytest

pytest.importorskip("mcp")

from mcp import Client  # noqa: E402
from mcp.client.stdio import StdioServerParameters  # noqa: E402
from mcp_types import Implementation  # noqa: E402

from jupyter_codedistiller.audit import CellInput, audit, render  # noqa: E402
from jupyter_codedistiller.library import Library  # noqa: E402
from jupyter_codedistiller.provenance import marker_line  # noqa: E402
from jupyter_codedistiller.settings import set_setting  # noqa: E402

from .conftest import make_snippet  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
AGENT = Implementation(name="pytest-agent", version="1.0")


@pytest.fixture
def ids(home: Path) -> dict[str, str]:
    """A small library: a passed snippet, an unvalidated one, a failed one, a flagged one."""
    out = {}
    with Library.open(home) as lib:
        for name, kwargs in {
            "km": {},
            "skipped": {"title": "Kaplan-Meier with a data file", "validation": "skipped"},
            "failed": {"title": "Kaplan-Meier that crashes", "validation": "failed"},
            "flagged": {"title": "Kaplan-Meier flagged by a person"},
            "scanpy": {"title": "Leiden clustering of cells", "package": "scanpy",
                       "code": "import scanpy as sc\nadata = sc.datasets.pbmc3k()\nsc.tl.leiden(adata)\n"},
        }.items():
            out[name] = lib.put(make_snippet(name, **kwargs)).id
        lib.flag(out["flagged"], "wrong column names", kind="incorrect", by="alice")
    return out


def server(home: Path) -> StdioServerParameters:
    """``codedistiller mcp`` for ``home``, run from this checkout."""
    env = {"PYTHONPATH": str(REPO), "CODEDISTILLER_USER": "tester", "HOME": str(home.parent)}
    return StdioServerParameters(command=sys.executable,
                                 args=["-m", "jupyter_codedistiller.cli", "--home", str(home), "mcp"],
                                 env=env, cwd=str(home.parent))


def with_client(home: Path, body: Callable[[Client], Awaitable[Any]], **options: Any) -> Any:
    """Run ``body(client)`` against a fresh ``codedistiller mcp`` process."""

    async def main() -> Any:
        with anyio.fail_after(120):
            async with Client(server(home), client_info=AGENT, **options) as client:
                return await body(client)

    return anyio.run(main)


def data_of(result: Any) -> dict[str, Any]:
    """A successful tool call's JSON answer."""
    assert not result.is_error, result.content
    return result.structured_content


def error_text(result: Any) -> str:
    """A failed tool call's one-line message."""
    assert result.is_error, result
    text = result.content[0].text
    assert "\n" not in text and "Traceback" not in text
    return text


def test_lists_tools_and_searches_gets_flags(home, ids):
    async def session(client: Client) -> dict[str, Any]:
        tools = {t.name: t for t in (await client.list_tools()).tools}
        found = data_of(await client.call_tool("search_snippets", {"query": "kaplan meier"}))
        got = data_of(await client.call_tool("get_snippet", {"id": ids["km"]}))
        flagged = data_of(await client.call_tool("flag_snippet", {"id": ids["km"], "reason": "KeyError: 'T'",
                                                               "kind": "incorrect"}))
        return {"tools": tools, "found": found, "got": got, "flagged": flagged}

    out = with_client(home, session)
    assert {"search_snippets", "get_snippet", "flag_snippet"} <= set(out["tools"])
    assert set(out["tools"]["search_snippets"].input_schema["properties"]) == {
        "query", "package", "validated_only", "limit"}

    found = out["found"]
    assert found["policy"] == "open"
    by_id = {r["id"]: r for r in found["results"]}
    assert ids["km"] in by_id and ids["scanpy"] not in by_id
    km = by_id[ids["km"]]
    assert km["title"] == "Kaplan-Meier fit by treatment group"
    assert sorted(km["apis"]) == ["lifelines.KaplanMeierFitter", "lifelines.datasets.load_waltons"]
    assert km["missing"] == []
    assert {b["kind"] for b in km["badges"]} >= {"validation", "review", "origin"}
    assert km["preview"].startswith("from lifelines import KaplanMeierFitter")
    assert km["needs_force"] == []
    # under the open policy a flagged or failed snippet is offered, and its badges say what it is
    assert any(b["kind"] == "flags" for b in by_id[ids["flagged"]]["badges"])
    assert by_id[ids["failed"]]["needs_force"] == ["its validation failed"]

    with Library.open(home) as lib:
        stored = lib.get(ids["km"])
        flags = lib.get(ids["km"]).open_flags
    got = out["got"]
    assert got["code"].splitlines()[0] == marker_line(stored)  # the same marker a person's insert carries
    assert got["code"].endswith(stored.code.rstrip("\n"))
    assert got["requirements"] == {"lifelines": "0.29.0"}
    assert got["validation"]["status"] == "passed" and got["license"] == "MIT"
    assert got["review"]["status"] == "unreviewed" and got["open_flags"] == []
    assert got["cell_metadata"]["id"] == ids["km"]
    assert got["cell_metadata"]["agent"] == {"client": "pytest-agent 1.0", "via": "mcp"}

    assert out["flagged"]["flag"]["by"] == "pytest-agent 1.0 (MCP agent for tester)"
    assert [(f.kind, f.reason, f.by) for f in flags] == [
        ("incorrect", "KeyError: 'T'", "pytest-agent 1.0 (MCP agent for tester)")]


def test_the_handshake_era_protocol_works_too(home, ids):
    async def session(client: Client) -> dict[str, Any]:
        return data_of(await client.call_tool("search_snippets", {"query": "leiden", "package": "scanpy"}))

    found = with_client(home, session, mode="legacy")
    assert [r["id"] for r in found["results"]] == [ids["scanpy"]]
    assert sorted(found["results"][0]["apis"]) == ["scanpy.datasets.pbmc3k", "scanpy.tl.leiden"]
    assert found["results"][0]["title"] == "Leiden clustering of cells"


def test_strict_policy_withholds_what_would_need_force(home, ids):
    set_setting(home, "policy", "validated")

    async def session(client: Client) -> dict[str, Any]:
        found = data_of(await client.call_tool("search_snippets", {"query": "kaplan meier", "limit": 10}))
        refusals = {name: error_text(await client.call_tool("get_snippet", {"id": ids[name]}))
                    for name in ("skipped", "failed", "flagged")}
        got = data_of(await client.call_tool("get_snippet", {"id": ids["km"]}))
        return {"found": found, "refusals": refusals, "got": got}

    out = with_client(home, session)
    assert [r["id"] for r in out["found"]["results"]] == [ids["km"]]
    assert out["found"]["withheld"] >= 1 and "policy is 'validated'" in out["found"]["note"]
    assert out["refusals"]["skipped"] == (
        f"Error executing tool get_snippet: {ids['skipped']} is withheld: "
        "the team policy is 'validated' and its validation is skipped; "
        "only a person can insert it (with --force)")
    assert "its validation failed" in out["refusals"]["failed"]
    assert "1 open flag (wrong column names)" in out["refusals"]["flagged"]
    assert out["got"]["policy"] == "validated" and out["got"]["needs_force"] == []


def test_reviewed_policy_offers_only_approved_code(home, ids):
    set_setting(home, "policy", "reviewed")
    with Library.open(home) as lib:
        lib.review(ids["scanpy"], "approved", by="bob")

    async def session(client: Client) -> tuple[dict[str, Any], str]:
        found = data_of(await client.call_tool("search_snippets", {"query": ""}))
        return found, error_text(await client.call_tool("get_snippet", {"id": ids["km"]}))

    found, refusal = with_client(home, session)
    assert [r["id"] for r in found["results"]] == [ids["scanpy"]]
    assert "the team policy is 'reviewed' and it is unreviewed" in refusal


def test_validated_only_filters(home, ids):
    async def session(client: Client) -> dict[str, Any]:
        return data_of(await client.call_tool("search_snippets", {"query": "kaplan", "validated_only": True}))

    found = with_client(home, session)
    assert found["results"] and {r["validation"] for r in found["results"]} == {"passed"}


HOSTILE_QUERIES = ['"unbalanced', "NEAR(cox hazard)", "x" * 501, "\x00", "'; DROP TABLE snippets; --",
                   "🧬 * OR 1=1", "\u202e gnp"]
HOSTILE_IDS = ["../../etc/passwd", "", "cd-" + "f" * 200, "cd-0000000000000000", "%", "cd\nx", "\x00",
               "abcdef_%"]


def test_hostile_queries_and_ids_are_clear_errors_never_crashes(home, ids):
    before = json.dumps([s.to_dict() for s in Library.open(home).all()], sort_keys=True)

    async def session(client: Client) -> dict[str, Any]:
        out: dict[str, Any] = {"search": [], "get": [], "flag": [], "args": []}
        for q in HOSTILE_QUERIES:
            out["search"].append(await client.call_tool("search_snippets", {"query": q}))
        for sid in HOSTILE_IDS:
            out["get"].append(error_text(await client.call_tool("get_snippet", {"id": sid})))
            out["flag"].append(error_text(await client.call_tool("flag_snippet", {"id": sid, "reason": "x"})))
        for name, args in [("search_snippets", {"query": "km", "limit": 0}),
                           ("search_snippets", {"query": "km", "limit": 10**9}),
                           ("search_snippets", {"query": ["km"]}),
                           ("search_snippets", {"query": "km", "package": "p" * 300}),
                           ("get_snippet", {"id": {"$ne": 1}}),
                           ("get_snippet", {}),
                           ("flag_snippet", {"id": ids["km"], "reason": "  "}),
                           ("flag_snippet", {"id": ids["km"], "reason": "r" * 2001}),
                           ("flag_snippet", {"id": ids["km"], "reason": "bad", "kind": "<script>"}),
                           ("no_such_tool", {})]:
            out["args"].append(await client.call_tool(name, args))
        out["after"] = data_of(await client.call_tool("get_snippet", {"id": ids["km"]}))
        return out

    out = with_client(home, session)
    for q, result in zip(HOSTILE_QUERIES, out["search"], strict=True):
        if result.is_error:
            assert error_text(result), q
        else:
            assert isinstance(result.structured_content["results"], list), q
    assert out["search"][2].is_error and "longer than 500" in error_text(out["search"][2])
    assert "not a snippet id" in out["get"][0]
    assert "no snippet 'cd-0000000000000000'" in out["get"][3]
    messages = [error_text(result) for result in out["args"]]
    assert all("input_value" not in m and "pydantic" not in m for m in messages), messages
    assert messages[2] == ("Error executing tool search_snippets: invalid arguments: "
                           "query: Input should be a valid string")
    assert messages[5].endswith("invalid arguments: id: Field required")
    assert out["after"]["id"] == ids["km"], "the server still answers"
    after = json.dumps([s.to_dict() for s in Library.open(home).all()], sort_keys=True)
    assert after == before, "no hostile call changed the library"


def test_audit_says_an_agent_inserted_the_cell(home, ids):
    async def session(client: Client) -> dict[str, Any]:
        return data_of(await client.call_tool("get_snippet", {"id": ids["km"]}))

    got = with_client(home, session)
    cell = CellInput(index=0, source=got["code"], metadata={"codedistiller": got["cell_metadata"]})
    person = CellInput(index=1, source="print('mine')")
    with Library.open(home) as lib:
        report = audit([cell, person], lib, notebook="agent.ipynb")
    entry = report["cells"][0]
    assert entry["known"] and entry["edited"] is False
    assert entry["agent"] == {"client": "pytest-agent 1.0", "via": "mcp"}
    assert "inserted by a coding agent (pytest-agent 1.0 via mcp)" in entry["notes"]
    assert report["summary"]["agent_inserted"] == 1
    assert "inserted by a coding agent (pytest-agent 1.0)" in render(report, "md")


def test_without_the_sdk_the_command_says_how_to_install_it(home, tmp_path):
    import subprocess

    blocker = tmp_path / "nomcp"
    (blocker / "mcp").mkdir(parents=True)
    (blocker / "mcp" / "__init__.py").write_text("raise ImportError('blocked', name='mcp')\n")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(blocker), str(REPO)])}
    proc = subprocess.run([sys.executable, "-m", "jupyter_codedistiller.cli", "--home", str(home), "mcp"],
                          capture_output=True, text=True, env=env, timeout=60, stdin=subprocess.DEVNULL)
    assert proc.returncode == 1
    assert proc.stderr.strip() == ("codedistiller: error: the MCP server needs the mcp extra: "
                                   "pip install 'jupyter-codedistiller[mcp]'")


def test_the_core_the_cli_and_the_load_ext_path_import_no_mcp(home):
    import subprocess

    program = (
        "import sys\n"
        "import jupyter_codedistiller, jupyter_codedistiller.magics\n"
        "from jupyter_codedistiller import audit, library, provenance, cli, server\n"
        f"assert cli.main(['--home', {str(home)!r}, 'search', 'kaplan']) == 0\n"
        "print(sorted(m for m in sys.modules if m == 'mcp' or m.startswith('mcp.')))\n"
    )
    proc = subprocess.run([sys.executable, "-c", program], capture_output=True, text=True, timeout=120,
                          env={**os.environ, "PYTHONPATH": str(REPO)}, cwd=str(home.parent))
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip().splitlines()[-1] == "[]"


def png(width: int, height: int) -> bytes:
    """A small real RGB PNG built by hand."""
    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))
    raw = b"".join(b"\0" + b"\x10\x20\x30" * width for _ in range(height))
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))


def test_figures_and_printed_output_are_resources(home, ids):
    from jupyter_codedistiller.figures import check_png, hold
    from jupyter_codedistiller.model import Output, Validation, utcnow

    data, width, height = check_png(png(3, 2))
    digest = hashlib.sha256(data).hexdigest()
    with Library.open(home) as lib:
        for name in ("km", "flagged"):
            s = lib.get(ids[name])
            validation = Validation(
                status="passed", when=utcnow(), stdout_tail="median survival: 12.0\n",
                outputs=[Output(kind="figure", label="Figure 1", sha256=digest, size=len(data), width=width,
                                height=height),
                         Output(kind="text", label="Result", text="   T  E\n0  6  1")])
            lib.set_validation(s.id, hold(validation, {digest: data}), s.revision)
    set_setting(home, "policy", "validated")

    async def session(client: Client) -> dict[str, Any]:
        templates = (await client.list_resource_templates()).resource_templates
        got = data_of(await client.call_tool("get_snippet", {"id": ids["km"]}))
        figure = await client.read_resource(got["outputs"][0]["uri"])
        printed = await client.read_resource(got["output_uri"])
        errors = []
        for uri in [f"codedistiller://snippets/{ids['km']}/figures/2", f"codedistiller://snippets/{ids['km']}/figures/0",
                    f"codedistiller://snippets/{ids['flagged']}/figures/1",
                    f"codedistiller://snippets/{ids['scanpy']}/output",
                    "codedistiller://snippets/..%2F..%2Fetc/output", "codedistiller://snippets/cd-0000000000000000/output"]:
            try:
                await client.read_resource(uri)
                errors.append(None)
            except Exception as exc:  # the SDK raises the server's error
                errors.append(str(exc))
        return {"templates": templates, "got": got, "figure": figure, "printed": printed, "errors": errors}

    out = with_client(home, session)
    assert {t.uri_template for t in out["templates"]} == {"codedistiller://snippets/{id}/figures/{n}",
                                                          "codedistiller://snippets/{id}/output"}
    assert out["got"]["outputs"] == [
        {"kind": "figure", "label": "Figure 1", "uri": f"codedistiller://snippets/{ids['km']}/figures/1",
         "mime_type": "image/png", "width": 3, "height": 2, "size": len(data)},
        {"kind": "text", "label": "Result", "text": "   T  E\n0  6  1", "truncated": False}]
    blob = out["figure"].contents[0]
    assert blob.mime_type == "image/png" and base64.b64decode(blob.blob) == data
    text = out["printed"].contents[0].text
    assert "Result:\n   T  E" in text and "median survival: 12.0" in text
    errors = out["errors"]
    assert all(errors) and all("\n" not in e for e in errors), errors
    assert "has 1 figure(s), not 2" in errors[0]
    assert "withheld" in errors[2] and "open flag" in errors[2]
    assert "showed no output when it was validated" in errors[3]
    assert "Unknown resource" in errors[4]  # the SDK's path-safety check on template values
    assert "no snippet 'cd-0000000000000000'" in errors[5]
