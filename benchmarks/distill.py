"""Distiller benchmark: full distill of a ~1,000-file repository, then an incremental refresh.

Prints the time of a full distill without validation, of an incremental
refresh after a one-file commit (median of three), and their ratio (targets: full <= 10 s,
incremental <= 5 % of full); then validation throughput in snippets per
minute with 1 and 2 workers on a sample of 20 snippets. Runs in a temporary
CODEDISTILLER_HOME; touches nothing else.

    .venv/bin/python benchmarks/distill.py [--files N] [--sample N] [--profile]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import git

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from jupyter_codedistiller.distill import sources  # noqa: E402
from jupyter_codedistiller.distill.refresh import refresh  # noqa: E402
from jupyter_codedistiller.library import Library  # noqa: E402

AUTHOR = git.Actor("Bench", "bench@example.org")


def _markdown(i: int) -> str:
    return (f"# Topic {i}\n\nHow to summarise cohort {i}.\n\n## Load\n\n"
            f"```python\nimport statistics\nvalues = [{i}, {i + 1}, {i + 2}]\n```\n\n"
            f"## Summarise\n\n```python\nprint(statistics.mean(values) + {i})\n```\n")


def _rst(i: int) -> str:
    return (f"Guide {i}\n{'=' * (6 + len(str(i)))}\n\nGrouping\n--------\n\n"
            f".. code-block:: python\n\n   groups = {{'a': {i}, 'b': {i * 2}}}\n"
            f"   print(sorted(groups))\n\nSession:\n\n>>> {i} + 1\n{i + 1}\n")


def _script(i: int) -> str:
    return (f'"""Example {i}: a toy survival table."""\nimport math\n\n'
            f"times = [{i}, {i + 3}, {i + 7}]\nprint(sum(math.log1p(t) for t in times))\n")


def _gallery(i: int) -> str:
    return (f'"""\nGallery {i}\n==========\n"""\n# %%\n# Data\n# ----\n'
            f"data = list(range({i % 17 + 3}))\n\n# %%\n# Plot-free summary\n# -----------------\n"
            "print(max(data) - min(data))\n")


def _notebook(i: int) -> str:
    cells = [("markdown", f"# Notebook {i}\n\n## Setup"), ("code", f"x = {i}\nprint(x)"),
             ("markdown", "## Square"), ("code", "print(x * x)")]
    return json.dumps({
        "nbformat": 4, "nbformat_minor": 5, "metadata": {},
        "cells": [{"cell_type": k, "id": f"c{n}", "metadata": {}, "source": s,
                   **({"outputs": [], "execution_count": None} if k == "code" else {})}
                  for n, (k, s) in enumerate(cells)],
    })


def _module(i: int) -> str:
    return (f'"""Module {i}."""\n\n\ndef scale_{i}(x):\n    """Scale x by {i}.\n\n'
            f"    >>> scale_{i}(2)\n    {2 * i}\n    \"\"\"\n    return {i} * x\n\n\n"
            f"def shift_{i}(x):\n    \"\"\"Shift x by {i}.\n\n    >>> shift_{i}(1)\n    {1 + i}\n"
            f"    \"\"\"\n    return x + {i}\n")


def generate(root: Path, n_files: int) -> git.Repo:
    """A repository of ``n_files`` files mixing every kind of example, committed once."""
    share = {"docs/topic_{}.md": (0.20, _markdown), "docs/guide_{}.rst": (0.10, _rst),
             "examples/example_{}.py": (0.25, _script), "examples/plot_{}.py": (0.05, _gallery),
             "notebooks/notebook_{}.ipynb": (0.10, _notebook), "benchpkg/mod_{}.py": (0.30, _module)}
    root.mkdir(parents=True)
    count = 0
    for pattern, (fraction, make) in share.items():
        for i in range(max(1, int(n_files * fraction))):
            path = root / pattern.format(i)
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(make(i), encoding="utf-8")
            count += 1
    (root / "benchpkg" / "__init__.py").write_text('"""benchpkg."""\n')
    (root / "LICENSE").write_text("Permission is hereby granted, free of charge, to any person "
                                  "obtaining a copy ... the above copyright notice and this "
                                  "permission notice shall be included ...\n")
    repo = git.Repo.init(root, initial_branch="main")
    repo.git.add(A=True)
    repo.index.commit("generated", author=AUTHOR, committer=AUTHOR)
    return repo


def sample_repo(root: Path, n: int) -> git.Repo:
    """``n`` quick example scripts for measuring validation throughput."""
    (root / "examples").mkdir(parents=True)
    for i in range(n):
        (root / "examples" / f"check_{i}.py").write_text(
            f'"""Check {i}."""\nimport statistics\nprint(statistics.median(range({i + 5})))\n')
    repo = git.Repo.init(root, initial_branch="main")
    repo.git.add(A=True)
    repo.index.commit("sample", author=AUTHOR, committer=AUTHOR)
    return repo


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=1000, help="files in the generated repo")
    parser.add_argument("--sample", type=int, default=20, help="snippets to validate")
    parser.add_argument("--profile", action="store_true", help="profile the full distill")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="codedistiller-bench-") as tmp:
        tmp_path = Path(tmp)
        os.environ["CODEDISTILLER_HOME"] = str(tmp_path / "home")
        repo = generate(tmp_path / "upstream", args.files)
        files = len(repo.git.ls_files().splitlines())
        lib = Library.open()
        t0 = time.perf_counter()
        sources.add(lib, (tmp_path / "upstream").as_uri())
        clone = time.perf_counter() - t0

        t0 = time.perf_counter()
        if args.profile:
            import cProfile
            import pstats

            profiler = cProfile.Profile()
            report = profiler.runcall(refresh, lib, validate=False)
            pstats.Stats(profiler).sort_stats("cumulative").print_stats(25)
        else:
            report = refresh(lib, validate=False)
        full = time.perf_counter() - t0
        totals = report.totals()
        if report.errors:
            raise SystemExit(f"the full distill failed: {report.errors}")

        runs = []
        for i in range(3):  # the median of three one-file commits, each refreshed alone
            target = tmp_path / "upstream" / "examples" / f"example_{7 + i}.py"
            target.write_text(target.read_text() + "print('one more line')\n")
            repo.index.add([str(target)])
            repo.index.commit("one-file change", author=AUTHOR, committer=AUTHOR)
            t0 = time.perf_counter()
            again = refresh(lib, validate=False)
            runs.append((time.perf_counter() - t0, again.totals()))
        incremental, inc = sorted(runs, key=lambda r: r[0])[1]

        print(f"repository        {files} files; clone (add) {clone:.2f} s")
        print(f"full distill      {full:6.2f} s  {totals['files']} files read, "
              f"{totals['added']} snippets, {len(report.problems)} problems   (target <= 10 s)")
        print(f"incremental       {incremental:6.3f} s  (median of 3) {inc['files']} file read, "
              f"{inc['updated']} updated, {inc['added']} added, {inc['retired']} retired")
        print(f"ratio             {100 * incremental / full:6.2f} %   (target <= 5 %)")
        lib.close()

        for workers in (1, 2):
            sample = sample_repo(tmp_path / f"sample-{workers}", args.sample)
            with Library(tmp_path / f"home-{workers}" / "library.db") as vlib:
                sources.add(vlib, Path(sample.working_tree_dir).as_uri())
                refresh(vlib, validate=False)
                t0 = time.perf_counter()
                rep = refresh(vlib, workers=workers)
                took = time.perf_counter() - t0
                t = rep.totals()
                done = t["passed"] + t["failed"] + t["timeout"] + t["skipped"]
                print(f"validation x{workers}     {done} snippets in {took:5.2f} s = "
                      f"{60 * done / took:6.1f} snippets/min  ({t['passed']} passed, "
                      f"{t['failed']} failed, {t['skipped']} skipped)")


if __name__ == "__main__":
    main()
