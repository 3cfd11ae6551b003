"""Repository text on its way out (issue 16, item 8, the parts outside the sandbox).

- A ``\\n`` in a file name forged extra lines in the CLI's output: a hostile
  repository could make ``search`` show a result that does not exist, or make
  ``why`` say "validation passed". Every line of CLI output is now built from
  fields whose control characters (line breaks, tabs, terminal escapes, bidi
  overrides) are written as visible escapes.
- ``audit --format md`` wrote repository text raw into Markdown: a title or a
  license of ``<img src=x onerror=...>`` became an image with a script in any
  Markdown viewer that renders HTML. Markdown now holds it as literal text.

Both go through the real refresh of a real git repository and the CLI's ``main``.
"""

from __future__ import annotations

import io
import json
from contextlib import redirect_stderr
from pathlib import Path

import mistune
import nbformat
import pytest

from jupyter_codedistiller.cli import main
from jupyter_codedistiller.distill import sources
from jupyter_codedistiller.distill.refresh import refresh
from jupyter_codedistiller.library import Library
from jupyter_codedistiller.provenance import cell_metadata, cell_source

from ..gitrepos import file_url, make_repo

FORGED_RESULT = "  2. Trusted survival fit  ·  lifelines  passed · approved · verbatim"
FORGED_WHY = "validation passed on 2026-01-01"
# A file name that, printed raw, adds a search result and a validation line of its own.
PATH = f"examples/km\n{FORGED_RESULT}\n{FORGED_WHY}\n\x1b[2J\u202e.py"
XSS = "<img src=x onerror=alert(document.domain)>"
CODE = '"""Kaplan-Meier survival fit."""\nimport math\n\nprint(math.exp(-0.1 * 3))\n'


@pytest.fixture
def hostile_library(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, str]:
    repo = tmp_path / "repo"
    make_repo(repo, {PATH: CODE, "LICENSE": f"{XSS} License\n\nDo what you like.\n"})
    home = tmp_path / "home"
    monkeypatch.setenv("CODEDISTILLER_HOME", str(home))
    with Library.open(home) as lib:
        sources.add(lib, file_url(repo), name="hostile")
        report = refresh(lib, validate=False)
        assert report.errors == {}, report.errors
        [snippet] = [s for s in lib.all() if s.source.path == PATH]
    return home, snippet.id


def run(*args: str) -> tuple[int, list[str], str]:
    out, err = io.StringIO(), io.StringIO()
    with redirect_stderr(err):
        code = main(list(args), out=out)
    return code, out.getvalue().split("\n"), err.getvalue()


def assert_not_forged(lines: list[str]) -> None:
    for line in lines:
        assert not line.startswith(FORGED_RESULT.strip()[:2]) or "\\n" in line, line
        assert not line.startswith(("  2.", FORGED_WHY)), line
        assert "\x1b" not in line and "\u202e" not in line, line


def test_a_line_break_in_a_file_name_forges_no_line_of_cli_output(hostile_library: tuple[Path, str]) -> None:
    home, sid = hostile_library
    code, lines, err = run("search", "kaplan", "meier", "survival")
    assert code == 0, err
    hits = [line for line in lines if sid in line]
    assert len(hits) == 1 and "examples/km\\n  2. Trusted" in hits[0]  # the name, escaped, on its line
    results = [line for line in lines if line.strip() and not line.startswith("The library is still being built")]
    assert len(results) == 2  # one result: two lines
    assert_not_forged(lines)

    for command in (["show", sid], ["why", sid], ["sources"], ["status"]):
        code, lines, err = run(*command)
        assert code == 0, (command, err)
        assert_not_forged(lines)
        assert not any(line.startswith("validation passed") for line in lines), command

    # The errors too: one line on stderr whatever the text holds.
    code, _, err = run("show", "cd-\n" + FORGED_WHY)
    assert code != 0 and err.count("\n") == 1 and FORGED_WHY in err


def test_audit_markdown_holds_repository_text_as_literal_text(hostile_library: tuple[Path, str],
                                                             tmp_path: Path) -> None:
    home, sid = hostile_library
    with Library.open(home) as lib:
        snippet = lib.get(sid)
    nb = nbformat.v4.new_notebook()
    cell = nbformat.v4.new_code_cell(cell_source(snippet))
    cell.metadata["codedistiller"] = cell_metadata(snippet)
    nb.cells.append(cell)
    # A notebook is hostile too: a cell claiming a snippet this library has never seen.
    forged = nbformat.v4.new_code_cell("print(1)")
    forged.metadata["codedistiller"] = {
        "id": "cd-000000000000", "revision": 1, "license": f"{XSS}",
        "source": {"repository": f"[click](javascript:alert(1)) {XSS}", "path": "a|b\n| x | y |"},
    }
    nb.cells.append(forged)
    path = tmp_path / f"analysis {XSS}.ipynb".replace("/", "_")
    nbformat.write(nb, path)

    code, lines, err = run("audit", str(path), "--format", "md")
    assert code == 0, err
    markdown = "\n".join(lines)
    assert "<img" not in markdown and "\\[click\\](javascript:" in markdown
    assert "&lt;img src=x onerror=alert(document.domain)&gt;" in markdown  # still there, as text
    rendered = mistune.html(markdown)
    assert "<img" not in rendered and "<a " not in rendered and "onerror=alert" in rendered
    table = [line for line in lines if line.startswith("| ")]
    assert len(table) == 2 + len(nb.cells)  # header, rule, one row per cell: no forged rows
    assert all(row.count(" | ") == 7 for row in table), table  # eight columns each

    code, lines, err = run("audit", str(path), "--format", "json")
    assert code == 0, err
    assert XSS in json.dumps(json.loads("\n".join(lines)))  # JSON keeps the data as it is
