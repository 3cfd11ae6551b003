"""Real git repositories for tests, built with GitPython in temporary folders.

``make_repo(path, files)`` creates a repository with one commit;
``commit(repo, files, delete=...)`` adds another. ``SAMPLE_FILES`` is a small
scientific-looking project holding every kind of example the extractor knows:
example scripts, a gallery script with ``# %%`` cells, README Markdown fences,
reStructuredText ``code-block`` / ``::`` / ``>>>`` blocks, a notebook and
docstring examples in the package source, plus an MIT license.
"""

from __future__ import annotations

import json
from pathlib import Path

import git

AUTHOR = git.Actor("Fixture Author", "fixture@example.org")

MIT_LICENSE = """MIT License

Copyright (c) 2024 Fixture Lab

Permission is hereby granted, free of charge, to any person obtaining a copy
of this software and associated documentation files (the "Software"), to deal
in the Software without restriction, including without limitation the rights
to use, copy, modify, merge, publish, distribute, sublicense, and/or sell
copies of the Software, and to permit persons to whom the Software is
furnished to do so, subject to the following conditions:

The above copyright notice and this permission notice shall be included in all
copies or substantial portions of the Software.

THE SOFTWARE IS PROVIDED "AS IS", WITHOUT WARRANTY OF ANY KIND, EXPRESS OR
IMPLIED, INCLUDING BUT NOT LIMITED TO THE WARRANTIES OF MERCHANTABILITY.
"""


def notebook(cells: list[tuple[str, str]]) -> str:
    """An nbformat-4 notebook as JSON text from (cell_type, source) pairs."""
    return json.dumps({
        "nbformat": 4,
        "nbformat_minor": 5,
        "metadata": {"kernelspec": {"name": "python3", "display_name": "Python 3",
                                    "language": "python"}},
        "cells": [
            {"cell_type": kind, "id": f"cell-{i}", "metadata": {}, "source": source,
             **({"outputs": [], "execution_count": None} if kind == "code" else {})}
            for i, (kind, source) in enumerate(cells)
        ],
    }, indent=1)


SAMPLE_FILES: dict[str, str] = {
    "LICENSE": MIT_LICENSE,
    "pyproject.toml": '[project]\nname = "survkit"\nversion = "0.1.0"\n',
    "README.md": (
        "# survkit\n\nTiny survival helpers.\n\n## Median survival\n\n"
        "Compute a median survival time:\n\n"
        "```python\nfrom survkit.core import median_survival\n"
        "times = [5, 1, 3]\n```\n\n"
        "Then print it:\n\n"
        "```python\nprint(median_survival(times))\n```\n"
    ),
    "docs/guide.rst": (
        "Guide\n=====\n\nGroup sizes\n-----------\n\nCount samples per group:\n\n"
        ".. code-block:: python\n\n"
        "   from survkit.core import group_sizes\n"
        "   sizes = group_sizes(['a', 'b', 'a'])\n"
        "   print(sizes)\n\n"
        "Literal block::\n\n"
        "   import statistics\n   print(statistics.mean([1, 2, 3]))\n\n"
        "Interactive session:\n\n"
        ">>> from survkit.core import median_survival\n"
        ">>> median_survival([4, 2, 9])\n4\n"
    ),
    "examples/fit_groups.py": (
        '"""Fit group sizes for a toy cohort."""\n'
        "from survkit.core import group_sizes\n\n"
        "cohort = ['treated', 'control', 'treated']\n"
        "print(group_sizes(cohort))\n"
    ),
    "examples/plot_gallery.py": (
        '"""\nGallery of cohort summaries\n===========================\n"""\n'
        "# %%\n# Build the cohort\n# -----------------\n"
        "cohort = [3, 5, 8]\n\n"
        "# %%\n# Summarise it\n# ------------\n"
        "total = sum(cohort)\nprint(total)\n"
    ),
    "notebooks/tutorial.ipynb": notebook([
        ("markdown", "# Tutorial\n\n## Load a cohort"),
        ("code", "cohort = [1, 2, 3]\nprint(len(cohort))"),
        ("markdown", "## Summaries"),
        ("code", "import statistics\nprint(statistics.median(cohort))"),
    ]),
    "survkit/__init__.py": '"""survkit: tiny survival helpers."""\n',
    "survkit/core.py": (
        '"""Core helpers."""\n\n\n'
        "def median_survival(times):\n"
        '    """The median of survival times.\n\n'
        "    >>> median_survival([5, 1, 3])\n    3\n"
        '    """\n'
        "    ordered = sorted(times)\n"
        "    return ordered[len(ordered) // 2]\n\n\n"
        "def group_sizes(labels):\n"
        '    """Count labels.\n\n'
        "    >>> group_sizes(['a', 'b', 'a'])\n    {'a': 2, 'b': 1}\n"
        '    """\n'
        "    sizes = {}\n"
        "    for label in labels:\n"
        "        sizes[label] = sizes.get(label, 0) + 1\n"
        "    return sizes\n"
    ),
}


def write_files(root: Path, files: dict[str, str | bytes]) -> None:
    for rel, content in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content, encoding="utf-8")


def commit(repo: git.Repo, files: dict[str, str | bytes] | None = None, *,
           delete: list[str] = (), rename: dict[str, str] | None = None,
           message: str = "change") -> str:
    """Write, delete and rename files in the working copy and commit; returns the commit sha."""
    root = Path(repo.working_tree_dir)
    if files:
        write_files(root, files)
        repo.index.add(list(files))
    for old, new in (rename or {}).items():
        repo.index.move([old, new])
    if delete:
        repo.index.remove(list(delete), working_tree=True)
    return repo.index.commit(message, author=AUTHOR, committer=AUTHOR).hexsha


def make_repo(path: Path, files: dict[str, str | bytes] | None = None, *,
              branch: str = "main") -> git.Repo:
    """A new repository at ``path`` on ``branch``, with ``files`` committed (none: empty repo)."""
    path.mkdir(parents=True, exist_ok=True)
    repo = git.Repo.init(path, initial_branch=branch)
    if files:
        commit(repo, files, message="initial")
    return repo


def file_url(path: Path) -> str:
    return path.resolve().as_uri()
