"""MCP tool-call latency for search on a synthetic 100,000-snippet library.

Builds the library as ``benchmarks/search.py`` does, then in the same run
measures, over the same queries:

- the library's own search (``Library.search``, limit 10): the reference;
- the tool's work in-process (``mcpserver.search_payload``: search, policy, badges, previews);
- ``search_snippets`` called through the SDK's client over stdio against ``codedistiller mcp``;
- with ``--http``, the same call through a real ``jupyter server`` at ``/codedistiller/mcp``.

    python benchmarks/mcp.py [--snippets 100000] [--queries 300] [--http] [--keep DIR]
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
# This script is named mcp.py: take its folder off the path so that `import mcp` finds the SDK.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != HERE]

import anyio  # noqa: E402
from mcp import Client  # noqa: E402
from mcp.client.stdio import StdioServerParameters  # noqa: E402
from mcp_types import Implementation  # noqa: E402

from jupyter_codedistiller.library import Library  # noqa: E402
from jupyter_codedistiller.mcpserver import search_payload  # noqa: E402


def _search_benchmark() -> Any:
    """benchmarks/search.py, for its generator of synthetic snippets and its queries."""
    spec = importlib.util.spec_from_file_location("search_benchmark", HERE / "search.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


_SEARCH = _search_benchmark()
QUERIES, make = _SEARCH.QUERIES, _SEARCH.make

REPO = Path(__file__).resolve().parents[1]


def figures(times: list[float]) -> str:
    times = sorted(times)
    p99 = times[min(len(times) - 1, int(len(times) * 0.99))]
    return f"p50 {statistics.median(times):6.2f} ms   p99 {p99:6.2f} ms   max {times[-1]:6.2f} ms"


async def over_stdio(home: Path, queries: list[str]) -> list[float]:
    params = StdioServerParameters(command=sys.executable,
                                   args=["-m", "jupyter_codedistiller.cli", "--home", str(home), "mcp"],
                                   env={"PYTHONPATH": str(REPO), "CODEDISTILLER_USER": "bench"})
    times = []
    async with Client(params, client_info=Implementation(name="benchmark", version="1")) as client:
        for q in QUERIES[:5]:
            await client.call_tool("search_snippets", {"query": q})  # warm
        for q in queries:
            t = time.perf_counter()
            result = await client.call_tool("search_snippets", {"query": q, "limit": 10})
            times.append((time.perf_counter() - t) * 1000)
            assert not result.is_error, result.content
    return times


async def over_http(url: str, token: str, queries: list[str]) -> list[float]:
    import httpx2
    from mcp.client.streamable_http import streamable_http_client

    times = []
    async with (httpx2.AsyncClient(headers={"Authorization": f"token {token}"}, timeout=120) as http,
                Client(streamable_http_client(url, http_client=http),
                       client_info=Implementation(name="benchmark", version="1")) as client):
        for q in QUERIES[:5]:
            await client.call_tool("search_snippets", {"query": q})
        for q in queries:
            t = time.perf_counter()
            result = await client.call_tool("search_snippets", {"query": q, "limit": 10})
            times.append((time.perf_counter() - t) * 1000)
            assert not result.is_error, result.content
    return times


def jupyter_server(home: Path) -> tuple[subprocess.Popen[bytes], str, str]:
    """A real ``jupyter server`` serving ``home`` (its MCP mount at /codedistiller/mcp); waits until it answers."""
    import secrets
    import socket
    import urllib.request

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    token = secrets.token_hex(16)
    root = Path(tempfile.mkdtemp(prefix="cd-bench-root-"))
    config = root / "bench_config.py"
    config.write_text(f"c.ServerApp.jpserver_extensions = {{'jupyter_codedistiller': True}}\n"
                      f"c.CodeDistiller.home = {str(home)!r}\nc.CodeDistiller.daemon = False\n")
    proc = subprocess.Popen(
        [sys.executable, "-m", "jupyter_server", "--allow-root", "--no-browser", f"--port={port}",
         "--ip=127.0.0.1", f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={root}", f"--config={config}"],
        env={**os.environ, "PYTHONPATH": str(REPO)}, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while True:
        try:
            request = urllib.request.Request(f"{base}/api/status", headers={"Authorization": f"token {token}"})
            with urllib.request.urlopen(request, timeout=5):
                break
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                raise SystemExit("jupyter server did not start") from None
            time.sleep(0.5)
    return proc, f"{base}/codedistiller/mcp", token


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--snippets", type=int, default=100_000)
    ap.add_argument("--queries", type=int, default=300)
    ap.add_argument("--http", action="store_true", help="also through a real jupyter server (streamable HTTP)")
    ap.add_argument("--keep", help="build the library in this folder and keep it (reused when it is big enough)")
    args = ap.parse_args()
    rng = random.Random(7)
    home = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="cd-bench-mcp-"))
    lib = Library(home / "library.db")
    if lib.count() < args.snippets:
        start = time.perf_counter()
        for lo in range(0, args.snippets, 5000):
            lib.upsert(make(i, rng) for i in range(lo, min(lo + 5000, args.snippets)))
        print(f"build        {args.snippets} snippets in {time.perf_counter() - start:.1f} s")
    print(f"library      {lib.count()} snippets")
    queries = [rng.choice(QUERIES) for _ in range(args.queries)]

    for q in QUERIES[:5]:
        lib.search(q)
    direct, payload = [], []
    for q in queries:
        t = time.perf_counter()
        lib.search(q, limit=10)
        direct.append((time.perf_counter() - t) * 1000)
        t = time.perf_counter()
        search_payload(lib, q, None, False, 10, "open")
        payload.append((time.perf_counter() - t) * 1000)
    lib.close()
    stdio = anyio.run(over_stdio, home, queries)
    http = None
    if args.http:
        proc, url, token = jupyter_server(home)
        try:
            http = anyio.run(over_http, url, token, queries)
        finally:
            proc.terminate()
            proc.wait(timeout=30)
    print(f"queries      {len(queries)} ({len(set(queries))} distinct), limit 10")
    print(f"library search            {figures(direct)}   (reference)")
    print(f"tool work in-process      {figures(payload)}")
    print(f"search_snippets via stdio {figures(stdio)}   (SDK client -> codedistiller mcp)")
    if http is not None:
        print(f"search_snippets via HTTP  {figures(http)}   (SDK client -> jupyter server /codedistiller/mcp)")


if __name__ == "__main__":
    main()
