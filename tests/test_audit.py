"""Notebook audit and team policy: per-cell provenance, report formats, insert rules."""

from __future__ import annotations

import html.parser
import json
import os
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

from jupyter_codedistiller.audit import AuditError, audit, read_notebook, render
from jupyter_codedistiller.library import Library
from jupyter_codedistiller.model import Snippet
from jupyter_codedistiller.provenance import cell_metadata, cell_source, insert_blockers, parse_marker
from jupyter_codedistiller.settings import SettingsError, load_settings, set_setting

from .conftest import make_snippet


@pytest.fixture
def lib_and_snippets(library: Library) -> tuple[Library, dict[str, Snippet]]:
    made = {
        "plain": make_snippet("plain"),
        "edited": make_snippet("edited"),
        "retired": make_snippet("retired"),
        "flagged": make_snippet("flagged"),
        "approved": make_snippet("approved"),
        "llm": make_snippet("llm", origin="generated", model="local-coder-7b", validation="passed"),
        "updated": make_snippet("updated"),
    }
    for s in made.values():
        library.upsert([s])
    return library, {k: library.get(v.id) for k, v in made.items()}


def build_notebook(path: Path, snippets: dict[str, Snippet]) -> None:
    nb = nbformat.v4.new_notebook()
    nb.cells.append(nbformat.v4.new_markdown_cell("# Survival analysis"))
    nb.cells.append(nbformat.v4.new_code_cell("import pandas as pd"))
    for name, s in snippets.items():
        source = cell_source(s)
        if name == "edited":
            source += "\nkmf.plot()"
        cell = nbformat.v4.new_code_cell(source)
        if name in ("approved", "llm"):  # inserted by the panel: metadata too
            cell.metadata["codedistiller"] = cell_metadata(s)
        nb.cells.append(cell)
    foreign = make_snippet("foreign")
    foreign.id = "cd-ffffffffffffffff"
    nb.cells.append(nbformat.v4.new_code_cell(cell_source(foreign)))
    nbformat.write(nb, str(path))


def test_audit_reports_every_kind_of_cell(lib_and_snippets, tmp_path: Path) -> None:
    library, s = lib_and_snippets
    path = tmp_path / "analysis.ipynb"
    build_notebook(path, s)
    library.retire([s["retired"].id])
    library.flag(s["flagged"].id, "median is off by one day", kind="incorrect")
    library.review(s["approved"].id, "approved", note="checked")
    library.upsert([make_snippet("updated", code="print('new upstream code')\n")])

    report = audit(read_notebook(path), library, notebook=str(path))
    cells = {e["snippet_id"]: e for e in report["cells"]}
    assert len(report["cells"]) == 8
    assert cells[s["plain"].id]["edited"] is False
    assert cells[s["edited"].id]["edited"] is True
    assert cells[s["retired"].id]["current"]["lifecycle"] == "retired"
    assert cells[s["flagged"].id]["current"]["flags"][0]["reason"] == "median is off by one day"
    assert cells[s["approved"].id]["current"]["review"] == "approved"
    assert cells[s["approved"].id]["edited"] is False
    assert cells[s["llm"].id]["origin"] == {"kind": "generated", "model": "local-coder-7b"}
    assert cells[s["updated"].id]["current"]["revision"] == 2 and cells[s["updated"].id]["revision"] == 1
    unknown = cells["cd-ffffffffffffffff"]
    assert unknown["known"] is False and unknown["current"] is None
    assert "not in this library" in unknown["notes"][0]
    summ = report["summary"]
    assert summ["code_cells"] == 9 and summ["from_library"] == 8 and summ["unknown"] == 1
    assert summ["edited"] == 1 and summ["flagged"] == 1 and summ["retired"] == 1
    assert summ["newer_revision"] == 1 and summ["llm"] == 1 and summ["llm_unreviewed"] == 1
    assert [e["index"] for e in report["cells"]] == sorted(e["index"] for e in report["cells"])


def test_json_markdown_and_html_are_well_formed(lib_and_snippets, tmp_path: Path) -> None:
    library, s = lib_and_snippets
    evil = make_snippet("evil", title="<script>alert(1)</script>")
    evil.source.path = "examples/<img src=x onerror=alert(1)>.py"
    evil.source.license = "MIT | <b>GPL</b>"
    library.upsert([evil])
    s["evil"] = library.get(evil.id)
    path = tmp_path / "nb.ipynb"
    build_notebook(path, s)
    report = audit(read_notebook(path), library, notebook=str(path))

    data = json.loads(render(report, "json"))
    assert set(data) >= {"notebook", "cells", "summary"}
    for cell in data["cells"]:
        assert set(cell) >= {"index", "snippet_id", "revision", "edited", "current", "origin", "license"}
        if cell["current"]:
            assert set(cell["current"]) >= {"revision", "lifecycle", "validation", "review", "flags"}

    md = render(report, "md")
    for section in ("# Provenance audit", "## Totals", "## Cells", "## Methods", "## Attribution"):
        assert section in md
    table = [line for line in md.splitlines() if line.startswith("| ")]
    assert len(table) == 2 + len(report["cells"])
    assert all(line.count(" | ") == table[0].count(" | ") for line in table), "a pipe broke a table row"
    methods = md.split("## Methods")[1].split("## Attribution")[0]
    assert "commit 0123456789ab" in methods and "local-coder-7b" in methods
    assert "0 of them were reviewed and approved" in methods

    page = render(report, "html")
    assert "<script>alert" not in page and "<img src=x" not in page and "<b>GPL" not in page
    assert "&lt;img src=x onerror=alert(1)&gt;" in page

    class Tags(html.parser.HTMLParser):
        def __init__(self) -> None:
            super().__init__()
            self.stack: list[str] = []
            self.seen: set[str] = set()

        def handle_starttag(self, tag: str, attrs) -> None:
            self.seen.add(tag)
            self.stack.append(tag)

        def handle_endtag(self, tag: str) -> None:
            assert self.stack and self.stack.pop() == tag, f"unbalanced </{tag}>"

    parser = Tags()
    parser.feed(page)
    assert parser.stack == [] and "script" not in parser.seen and "img" not in parser.seen


def test_a_notebook_that_is_not_json_is_a_clear_error(tmp_path: Path, library: Library) -> None:
    bad = tmp_path / "bad.ipynb"
    bad.write_text("{this is not json")
    with pytest.raises(AuditError, match="not a readable notebook"):
        read_notebook(bad)
    with pytest.raises(AuditError, match="no notebook"):
        read_notebook(tmp_path / "missing.ipynb")


def test_marker_round_trip() -> None:
    s = make_snippet("km")
    s.source.path = "docs/my examples/km.py"
    fields = parse_marker(cell_source(s).splitlines()[0])
    assert fields["id"] == s.id and fields["rev"] == "1" and fields["license"] == "MIT"
    assert fields["path"] == "docs/my examples/km.py#L1-L5" and fields["validation"] == "passed"
    assert parse_marker("# just a comment") is None


def test_policy_rules() -> None:
    plain = make_snippet("a", validation="skipped")
    assert insert_blockers(plain, "open") == []
    assert "validated" in insert_blockers(plain, "validated")[0]
    passed = make_snippet("b")
    assert insert_blockers(passed, "validated") == []
    assert "reviewed" in insert_blockers(passed, "reviewed")[0]
    passed.review.status = "approved"
    assert insert_blockers(passed, "reviewed") == []
    assert insert_blockers(make_snippet("c", validation="failed"), "open")


def test_settings_file(home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert load_settings(home).policy == "open"
    assert set_setting(home, "policy", "reviewed").policy == "reviewed"
    with pytest.raises(SettingsError, match="policy must be one of"):
        set_setting(home, "policy", "strict")
    with pytest.raises(SettingsError, match="unknown setting"):
        set_setting(home, "colour", "red")
    assert load_settings(home).policy == "reviewed", "a refused change keeps what was there"
    monkeypatch.setenv("CODEDISTILLER_POLICY", "validated")
    assert load_settings(home).policy == "validated"


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "jupyter_codedistiller.cli", *args], capture_output=True,
                          text=True, env=os.environ.copy(), timeout=60)


def test_cli_audit_formats_and_policy(lib_and_snippets, tmp_path: Path) -> None:
    library, s = lib_and_snippets
    path = tmp_path / "nb.ipynb"
    build_notebook(path, s)
    out = cli("audit", str(path), "--format", "json")
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["summary"]["from_library"] == 8
    target = tmp_path / "audit.md"
    assert cli("audit", str(path), "-o", str(target)).returncode == 0
    assert "## Methods" in target.read_text()
    bad = cli("audit", str(tmp_path / "nope.ipynb"))
    assert bad.returncode == 1 and "no notebook" in bad.stderr and "Traceback" not in bad.stderr

    plain = s["plain"].id
    assert cli("insert", plain).stdout.startswith("# codedistiller: id=" + plain)
    assert cli("config", "policy", "reviewed").returncode == 0
    refused = cli("insert", plain)
    assert refused.returncode == 1 and "policy is 'reviewed'" in refused.stderr and "--force" in refused.stderr
    assert cli("insert", plain, "--force").returncode == 0
    library.review(plain, "approved")
    assert cli("insert", plain).returncode == 0
    assert cli("config", "policy", "nonsense").returncode == 1
    assert json.loads(cli("config", "--json").stdout)["policy"] == "reviewed"
    llm = cli("insert", s["llm"].id, "--force")
    assert "warning" in llm.stderr and "LLM" in llm.stderr
