"""Search quality on a library built from the installed demo packages.

Builds (or reuses, with ``--keep DIR``) the default library of the installed
curated packages as ``make lab`` builds it (their installed files and the
upstream sdist of each installed version; ``--installed-only`` reads the
installed files alone), without validating anything, then runs every question of a
tab-separated query file (``query<TAB>regex a relevant snippet's code
matches``, ``#`` lines are comments) and prints the rank of the first
relevant result per query, MRR@10 and recall@5.

    python benchmarks/search_quality.py [--queries benchmarks/queries-dev.tsv] [--keep DIR]
"""

from __future__ import annotations

import argparse
import os
import re
import sys
import tempfile
import time
from pathlib import Path

from jupyter_codedistiller.distill.defaults import ensure_default_sources
from jupyter_codedistiller.distill.refresh import refresh
from jupyter_codedistiller.library import Library

HERE = Path(__file__).resolve().parent


def read_queries(path: Path) -> list[tuple[str, re.Pattern[str]]]:
    """(query, compiled regex) pairs from a query file."""
    out = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        parts = line.split("\t")
        out.append((parts[0], re.compile(parts[1])))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--queries", type=Path, default=HERE / "queries-dev.tsv")
    ap.add_argument("--keep", help="build the library in this folder and reuse it on later runs")
    ap.add_argument("--rebuild", action="store_true", help="extract everything again (with --keep)")
    ap.add_argument("--show", type=int, default=0, help="print the top N titles of each query")
    ap.add_argument("--installed-only", action="store_true",
                    help="build from the installed files alone, without the upstream sdists `make lab` reads")
    args = ap.parse_args()
    folder = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="cd-quality-"))
    folder.mkdir(parents=True, exist_ok=True)
    if args.installed_only:  # no upstream sdist is read: what the installed files alone hold
        os.environ["CODEDISTILLER_FETCH_UPSTREAM"] = "off"
    lib = Library(folder / "library.db")
    added = ensure_default_sources(lib)
    if added or args.rebuild or not lib.count():
        start = time.perf_counter()
        report = refresh(lib, validate=False, full=args.rebuild)
        print(f"build      {lib.count()} snippets from {len(lib.sources())} packages "
              f"in {time.perf_counter() - start:.0f} s ({report.summary()})")
    else:
        print(f"library    {lib.count()} snippets from {len(lib.sources())} packages (reused)")
    upstream = os.environ.get("CODEDISTILLER_FETCH_UPSTREAM", "on")
    print(f"content    {'installed files only' if upstream == 'off' else 'as make lab builds it (installed files and their upstream sdists)'}")
    queries = read_queries(args.queries)
    reciprocal, hits5, times = 0.0, 0, []
    for query, pattern in queries:
        start = time.perf_counter()
        results = lib.search(query, limit=10)
        times.append((time.perf_counter() - start) * 1000)
        rank = next((r.rank for r in results if pattern.search(r.snippet.code)), None)
        reciprocal += 1 / rank if rank else 0.0
        hits5 += bool(rank and rank <= 5)
        print(f"{rank if rank else '-':>3}  {query}")
        for r in results[: args.show]:
            mark = "*" if pattern.search(r.snippet.code) else " "
            print(f"       {mark} {r.rank:>2} {r.snippet.title[:90]}")
    n = len(queries) or 1
    times.sort()
    print(f"queries    {len(queries)} from {args.queries.name}")
    print(f"MRR@10     {reciprocal / n:.3f} (target >= 0.85)")
    print(f"recall@5   {hits5 / n:.3f} (target >= 0.9)")
    print(f"latency    p50 {times[len(times) // 2]:.1f} ms, max {times[-1]:.1f} ms")
    sys.exit(0)


if __name__ == "__main__":
    main()
