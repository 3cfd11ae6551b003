"""The command line, run as a real subprocess: output, JSON, and one-line errors."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from jupyter_codedistiller.library import Library

from .conftest import make_snippet


def cli(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "jupyter_codedistiller.cli", *args],
                          capture_output=True, text=True, input=stdin, env=os.environ.copy(),
                          timeout=60)


@pytest.fixture
def filled(library: Library) -> dict[str, str]:
    a = library.put(make_snippet("passed"))
    b = library.put(make_snippet("failed", validation="failed"))
    return {"passed": a.id, "failed": b.id}


def test_search_text_and_json(filled: dict[str, str]) -> None:
    out = cli("search", "kaplan", "meier")
    assert out.returncode == 0, out.stderr
    assert "Kaplan-Meier fit by treatment group" in out.stdout and "[passed" in out.stdout
    js = cli("search", "kaplan", "--json", "--limit", "1")
    hits = json.loads(js.stdout)
    assert len(hits) == 1 and hits[0]["id"] == filled["passed"]
    assert hits[0]["rank"] == 1 and hits[0]["score"] > 0
    assert json.loads(cli("search", "kaplan", "--json", "--validation", "failed").stdout)[0]["id"] == filled["failed"]


def test_show_flag_review_resolve(filled: dict[str, str]) -> None:
    sid = filled["passed"]
    shown = cli("show", sid, "--json")
    assert json.loads(shown.stdout)["id"] == sid
    assert cli("flag", sid, "--reason", "uses the wrong column", "--kind", "incorrect", "--by", "ana").returncode == 0
    assert cli("review", sid, "--approve", "--note", "checked").returncode == 0
    assert cli("resolve", sid, "1", "--note", "fixed").returncode == 0
    data = json.loads(cli("show", sid, "--json").stdout)
    assert data["flags"][0]["by"] == "ana" and data["flags"][0]["resolved"] is True
    assert data["review"]["status"] == "approved" and data["review"]["history"][0]["by"] == "tester"
    why = cli("why", sid)
    assert "https://example.org/lab/survival-examples/blob/0123456789abcdef" in why.stdout
    assert "license    MIT" in why.stdout


def test_status(filled: dict[str, str]) -> None:
    st = json.loads(cli("status", "--json").stdout)
    assert st["snippets"] == 2 and st["validation"] == {"failed": 1, "passed": 1}
    assert "2 active" in cli("status").stdout


def test_export_import(filled: dict[str, str], tmp_path: Path) -> None:
    target = tmp_path / "lib.jsonl"
    assert cli("export", str(target)).returncode == 0
    assert len(target.read_text().splitlines()) == 2
    other = tmp_path / "other-home"
    out = cli("--home", str(other), "import", str(target))
    assert out.returncode == 0 and "2 added" in out.stdout
    assert cli("--home", str(other), "import", "-", stdin=target.read_text()).stdout.startswith("0 added")


@pytest.mark.parametrize(
    ("args", "code", "needle"),
    [
        (["search", "--limit", "zero", "x"], 2, "whole number"),
        (["frobnicate"], 2, "invalid choice"),
        ([], 2, "required"),
        (["show", "cd-missing"], 1, "no snippet"),
        (["flag", "cd-missing", "--reason", "x"], 1, "no snippet"),
        (["flag", "SNIPPET"], 2, "--reason"),
        (["flag", "SNIPPET", "--reason", "x", "--kind", "boring"], 2, "invalid choice"),
        (["review", "SNIPPET"], 2, "one of the arguments"),
        (["resolve", "SNIPPET", "7"], 1, "has no flag 7"),
        (["import", "/nonexistent/file.jsonl"], 1, "cannot read"),
        (["export", "/nonexistent/dir/out.jsonl"], 1, "cannot write"),
    ],
)
def test_errors_are_one_line_and_change_nothing(
    filled: dict[str, str], library: Library, args: list[str], code: int, needle: str
) -> None:
    args = [filled["passed"] if a == "SNIPPET" else a for a in args]
    before = [s.to_json() for s in library.all()]
    out = cli(*args)
    assert out.returncode == code, out
    assert needle in out.stderr
    assert len(out.stderr.strip().splitlines()) == 1, out.stderr
    assert "Traceback" not in out.stderr
    assert [s.to_json() for s in library.all()] == before


def test_bad_import_file_is_refused_whole(filled: dict[str, str], library: Library, tmp_path: Path) -> None:
    bad = tmp_path / "bad.jsonl"
    bad.write_text(make_snippet("new").to_json() + "\n{broken\n")
    out = cli("import", str(bad))
    assert out.returncode == 1 and "line 2" in out.stderr
    assert library.count() == 2


def test_help_exits_zero() -> None:
    out = cli("--help")
    assert out.returncode == 0 and "search" in out.stdout
    assert cli("search", "--help").returncode == 0


def test_console_scripts_are_installed() -> None:
    bindir = Path(sys.executable).parent
    for name in ("codedistiller", "jupyter-codedistiller"):
        out = subprocess.run([str(bindir / name), "--help"], capture_output=True, text=True, timeout=60)
        assert out.returncode == 0 and "search" in out.stdout


def test_add_checks_the_ref_against_the_source_settings(home: Path, tmp_path: Path) -> None:
    from .gitrepos import SAMPLE_FILES, make_repo

    repo = tmp_path / "lab-repo"
    make_repo(repo, SAMPLE_FILES, branch="trunk")
    branch = "trunk"
    for bad in ("main..evil", "a b", "x@{1}", "r" * 256):
        out = cli("add", str(repo), f"--ref={bad}")
        assert out.returncode == 1, out
        assert out.stderr.startswith("codedistiller: error: ref ") and len(out.stderr.splitlines()) == 1
    out = cli("add", "pkg:nbformat", "--ref=main")
    assert out.returncode == 1 and "not of pkg:NAME" in out.stderr
    with Library.open(home) as lib:
        assert lib.sources(include_removed=True) == []
    out = cli("add", str(repo), f"--ref={branch}")
    assert out.returncode == 0, out.stderr
    assert f"on {branch}" in out.stdout
    with Library.open(home) as lib:
        assert [s.settings.ref for s in lib.sources()] == [branch]


def test_add_reads_sources_as_classify_does(home: Path) -> None:
    from . import source_cases

    for spec, words in source_cases.REFUSED:
        out = cli("add", "--", spec)
        assert out.returncode == 1, (spec, out)
        assert words in out.stderr and len(out.stderr.strip().splitlines()) == 1, (spec, out.stderr)
    for spec in source_cases.TRIED:  # classified as git: the clone is tried (and fails here)
        out = cli("add", "--", spec)
        assert out.returncode == 1 and f"cannot clone {spec}" in out.stderr, (spec, out.stderr)
    with Library.open(home) as lib:
        assert lib.sources(include_removed=True) == []
