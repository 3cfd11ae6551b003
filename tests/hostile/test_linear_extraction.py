"""Extraction and assembly take time linear in their input (issue 16, item 5).

The attacks: one long line shaped to make a backtracking regular expression
quadratic (an ATX heading, a fence info string, a reST directive with a run of
spaces inside: a 900 KB README line stalled a refresh for hours), and a
Markdown document of chained blocks, each using the name the block before it
defined (1,500 of them took 125 s). Each is extracted at size n and 10 n: the
time ratio must stay far below the 100 a quadratic algorithm gives (the
smaller time is the best of a few runs, so load on the machine only makes the
ratio smaller). The per-file time budget turns whatever is left into one
problem line, and the refresh keeps what it had stored from that file.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import pytest

from jupyter_codedistiller.distill import extract, sources
from jupyter_codedistiller.distill.extract import extract_file
from jupyter_codedistiller.distill.refresh import refresh
from jupyter_codedistiller.library import Library

from ..gitrepos import commit, file_url, make_repo

GENEROUS = 120.0  # seconds: a bound a linear extraction of these inputs never nears


def heading_line(n: int) -> str:
    return "# x" + " " * n + "y\n"


def fence_line(n: int) -> str:
    return "```x" + " " * n + "y\n```\n"


def directive_line(n: int) -> str:
    return ".. code-block:: x" + " " * n + "y\n"


def chained_blocks(n: int) -> str:
    head = "```python\ndef step(x):\n    return x + 1\nx0 = step(0)\n```\n\n"
    return head + "".join(f"```python\nx{i} = step(x{i - 1})\n```\n\n" for i in range(1, n))


def seconds_to_extract(path: str, text: str, runs: int = 1) -> float:
    data = text.encode()
    best = float("inf")
    for _ in range(runs):
        started = time.perf_counter()
        result = extract_file(path, data, seconds=GENEROUS)
        best = min(best, time.perf_counter() - started)
        assert result.complete, result.problems
    return best


@pytest.fixture(autouse=True)
def no_size_limit(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(extract, "MAX_FILE_BYTES", 100_000_000)


CASES: list[tuple[str, str, Callable[[int], str], int]] = [
    ("atx heading", "README.md", heading_line, 100_000),
    ("fence info string", "README.md", fence_line, 100_000),
    ("rst directive", "docs/guide.rst", directive_line, 100_000),
    ("directive in a docstring", "pkg/mod.py",
     lambda n: f'def f():\n    """Doc.\n\n    .. code:: x{" " * n}y\n    """\n', 100_000),
]


@pytest.mark.parametrize(("case", "path", "make", "n"), CASES, ids=[c[0] for c in CASES])
def test_a_long_line_of_spaces_is_linear(case: str, path: str, make: Callable[[int], str], n: int) -> None:
    small = seconds_to_extract(path, make(n), runs=5)
    large = seconds_to_extract(path, make(10 * n), runs=1)
    # linear: about 10; the old patterns: about 100 (and hours at 900 KB)
    assert large < max(30 * small, 0.5), f"{case}: {small:.4f} s at {n:,}, {large:.4f} s at {10 * n:,}"


def test_chained_markdown_blocks_are_linear() -> None:
    n = 300
    small = seconds_to_extract("README.md", chained_blocks(n), runs=3)
    large = seconds_to_extract("README.md", chained_blocks(10 * n), runs=1)
    assert large < max(30 * small, 0.5), f"{small:.3f} s at {n} blocks, {large:.3f} s at {10 * n}"


def test_a_long_chain_is_cut_at_the_context_cap_not_prepended() -> None:
    result = extract_file("README.md", chained_blocks(1500).encode(), seconds=GENEROUS)
    by_anchor = {c.anchor: c for c in result.candidates}
    near = by_anchor["md:top:3"]  # x2 = step(x1): needs x1, x0 and step, all within the cap
    assert not near.skipped and near.code.count("\n") < 12
    far = by_anchor["md:top:1500"]
    assert far.skipped.startswith("needs too much context")
    assert far.code == "x1499 = step(x1498)\n"  # its own line, not a 1,500-block prefix
    assert max(len(c.code.splitlines()) for c in result.candidates) <= 60


def test_the_reported_900_kb_readme_line_finishes() -> None:
    text = "# Intro\n\n" + heading_line(900_000) + "\n```python\nprint('still here')\n```\n"
    started = time.perf_counter()
    result = extract_file("README.md", text.encode(), seconds=GENEROUS)
    assert time.perf_counter() - started < GENEROUS / 4
    assert [c.code for c in result.candidates] == ["print('still here')\n"]


def test_a_file_over_its_time_budget_is_one_problem_line() -> None:
    result = extract_file("README.md", b"# Intro\n\n```python\nprint(1)\n```\n", seconds=0)
    assert result.candidates == [] and not result.complete
    assert result.problems == ["README.md: extraction took over the 0 s budget, skipped"]


def test_refresh_keeps_what_it_stored_when_a_file_runs_out_of_time(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    repo = make_repo(tmp_path / "repo", {"README.md": "# Use\n\n```python\nprint(sum([1, 2]))\n```\n"})
    library = Library(tmp_path / "library.db")
    sources.add(library, file_url(tmp_path / "repo"))
    refresh(library, validate=False)
    [before] = library.all()
    commit(repo, {"README.md": "# Use\n\n```python\nprint(sum([1, 2, 3]))\n```\n" + heading_line(1000)})
    monkeypatch.setattr(extract, "FILE_SECONDS", 0.0)
    report = refresh(library, validate=False)
    problems = report.problems
    assert any("README.md: extraction took over the 0 s budget, skipped" in p for p in problems), problems
    assert library.get(before.id).lifecycle == "active"
    assert library.get(before.id).code == before.code
    # the lock was released: the next (full) refresh runs and, in budget, takes the new code
    monkeypatch.setattr(extract, "FILE_SECONDS", 10.0)
    again = refresh(library, validate=False, full=True)
    assert not any("another refresh" in p for p in again.problems)
    assert "1, 2, 3" in library.get(before.id).code
