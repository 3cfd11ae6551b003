"""Bad queries and bad commands through the CLI and the magic (a real InteractiveShell).

Odd queries are answered (results or "no snippets match"); bad commands get
one clear line (CLI: exit 1 or 2 and one line on stderr; magic: a one-line
UsageError); nothing ever prints a traceback, and the library (every record
with its flags and reviews, the sources and the settings) is the same
before and after. The API's side of this is tests/server/test_hostile_api.py.
"""

from __future__ import annotations

import io
import json
import shlex
import subprocess
import sys
from collections.abc import Iterator
from contextlib import redirect_stderr
from pathlib import Path

import pytest
from IPython.core.error import UsageError
from IPython.core.interactiveshell import InteractiveShell
from IPython.utils.capture import capture_output

from jupyter_codedistiller.cli import main
from jupyter_codedistiller.distill import sources
from jupyter_codedistiller.distill.refresh import refresh
from jupyter_codedistiller.library import Library

from ..conftest import make_snippet
from ..gitrepos import SAMPLE_FILES, file_url, make_repo
from .integrity import dump, library_problems

ID = "@ID@"  # replaced by a real snippet id
FAILED = "@FAILED@"
TMP = "@TMP@"

# Queries no one should type, and the filters to go with them: answered, never refused.
ODD_QUERIES: list[list[str]] = [
    ['"'], ["'"], ['"unbalanced'], ["NEAR(kaplan", "meier)"], ["*"], ["AND", "OR", "NOT"],
    ["title:kaplan"], ["^median"], ["kaplan*"], ["🧬", "survival"], ["a\x00b"], ["x" * 10_000],
    ["%", "_"], ["' OR 1=1 --"], ["{}[]()"], ["\u202e", "median"], ["\udcff"], ["--"],
    ["survival", "--package", "'; DROP TABLE snippets; --"], ["--tag", "%"],
    ["--source", "../.."], ["--license", "*"], ["median", "--limit", "1000"],
]

# Commands that must be refused, each with one line and nothing changed.
BAD_COMMANDS: list[list[str]] = [
    [], ["frobnicate"], ["search", "--limit", "0"], ["search", "--limit", "-1"],
    ["search", "--limit", "1e9"], ["search", "--limit", "99999999999999999999999"],
    ["search", "--limit", "1001"], ["search", "--validation", "great"],
    ["show"], ["show", ""], ["show", "../../etc/passwd"], ["show", "%"], ["show", "cd-"],
    ["show", "\x1b[2J"], ["show", "x" * 5000], ["why", "nope-nope-nope"],
    ["insert", "nope"], ["insert", FAILED],
    ["flag", ID], ["flag", ID, "--reason", ""], ["flag", ID, "--reason", "   "],
    ["flag", ID, "--reason", "x", "--kind", "evil"], ["flag", "nope", "--reason", "x"],
    ["resolve", ID, "0"], ["resolve", ID, "-1"], ["resolve", ID, "99999999999999999999999"],
    ["resolve", ID, "424242"], ["resolve", ID, "one"],
    ["review", ID], ["review", ID, "--approve", "--reject"], ["review", "nope", "--approve"],
    ["import", "/nonexistent/file.jsonl"], ["import", TMP], ["import", "/dev/zero"],
    ["import", f"{TMP}/deep.jsonl"], ["import", f"{TMP}/types.jsonl"],
    ["import", f"{TMP}/latin1.jsonl"], ["import", f"{TMP}/half.jsonl"],
    ["import", f"{TMP}/newer-schema.jsonl"],
    ["export", "/nonexistent/dir/out.jsonl"],
    ["audit", "/etc/passwd"], ["audit", TMP], ["audit", "/nonexistent.ipynb"],
    ["config", "policy", "anarchy"], ["config", "nonsense"], ["config", "nonsense", "x"],
    ["add", ""], ["add", "-rf"], ["add", f"ext::sh -c touch% {TMP}/pwned"],
    ["add", "/nonexistent/repo"], ["add", "ftp://example.org/x.git"], ["add", "pkg:../../x"],
    ["add", "pkg:no-such-distribution-xyz"], ["add", TMP], ["add", "--name", "../evil", "x"],
    ["remove", "nope"], ["refresh", "nope"], ["refresh", "--workers", "0"],
    ["refresh", "--timeout", "-5"], ["generate", "nope"], ["daemon", "--interval", "0"],
    ["--home", "/etc/passwd", "status"], ["--home", "/dev/null", "search", "x"],
    # Bytes that are not UTF-8 on a command line arrive as unpaired surrogates:
    ["flag", ID, "--reason", "bad \udcff byte"], ["review", ID, "--approve", "--by", "\udcff"],
    ["resolve", ID, "1", "--note", "\udcff"], ["show", "\udcff"],
    ["search", "--package", "\udcff", "x"], ["remove", "\udcff"],
]


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """A real library (a distilled repository, a failed snippet, a flag, a review) and bad files."""
    tmp = tmp_path_factory.mktemp("bad-commands")
    home = tmp / "home"
    make_repo(tmp / "survkit", SAMPLE_FILES)
    with Library.open(home) as lib:
        sources.add(lib, file_url(tmp / "survkit"))
        refresh(lib, validate=False)
        sid = lib.search("median survival")[0].snippet.id
        failed = lib.put(make_snippet("broken", validation="failed")).id
        lib.flag(sid, "uses the wrong column", kind="incorrect", by="ana")
        lib.review(sid, "approved", note="ran it", by="bo")
        good = lib.get(sid).to_dict()
    bad = tmp / "bad"
    bad.mkdir()
    (bad / "deep.jsonl").write_text("[" * 100_000 + "\n")
    (bad / "types.jsonl").write_text(json.dumps({**good, "validation": {
        **good["validation"], "duration": "slow"}, "tags": "abc"}) + "\n")
    (bad / "latin1.jsonl").write_bytes(b'{"id": "caf\xe9"}\n')
    changed = {**good, "revision": good["revision"] + 5, "code": "print('imported')\n"}
    (bad / "half.jsonl").write_text(json.dumps(changed) + "\n" + '{"id": "cd-x", "code": 5}\n')
    (bad / "newer-schema.jsonl").write_text(json.dumps({**good, "schema_version": 99}) + "\n")
    return {"home": str(home), "id": sid, "failed": failed, "tmp": str(bad)}


def fill(args: list[str], world: dict[str, str]) -> list[str]:
    return [a.replace(ID, world["id"]).replace(FAILED, world["failed"]).replace(TMP, world["tmp"])
            for a in args]


def state(world: dict[str, str]) -> str:
    home = Path(world["home"])
    settings = home / "settings.json"
    return dump(home) + (settings.read_text() if settings.exists() else "")


@pytest.fixture
def at_home(world: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    monkeypatch.setenv("CODEDISTILLER_HOME", world["home"])
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    return world


def run_cli(args: list[str]) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with redirect_stderr(err):
        code = main(args, out=out)
    return code, out.getvalue(), err.getvalue()


# ---------------------------------------------------------------- the command line


@pytest.mark.parametrize("query", ODD_QUERIES, ids=lambda q: repr(" ".join(q))[:40])
def test_odd_queries_are_answered_by_the_cli(query: list[str], at_home: dict[str, str]) -> None:
    before = state(at_home)
    code, out, err = run_cli(["search", *query])
    assert (code, err) == (0, ""), err
    assert out.strip()  # results, or "no snippets match; the library holds N"
    code, out, err = run_cli(["search", "--json", *query])
    assert code == 0 and isinstance(json.loads(out), list)
    assert state(at_home) == before


@pytest.mark.parametrize("args", BAD_COMMANDS, ids=lambda a: repr(" ".join(a))[:50])
def test_bad_commands_get_one_line_from_the_cli_and_change_nothing(
        args: list[str], at_home: dict[str, str]) -> None:
    before = state(at_home)
    code, out, err = run_cli(fill(args, at_home))
    assert code in (1, 2), (code, out, err)
    assert "Traceback" not in out + err
    message = err.strip()
    assert message and "\n" not in message, err
    assert message.startswith("codedistiller"), message
    assert state(at_home) == before
    assert not Path(at_home["tmp"], "pwned").exists()
    assert library_problems(Path(at_home["home"]) / "library.db") == []


def test_the_cli_as_a_process_never_prints_a_traceback(at_home: dict[str, str]) -> None:
    """The same refusals from a real ``codedistiller`` process (a few; each costs a start-up)."""
    before = state(at_home)
    for args in (["--home", "/etc/passwd", "status"], ["import", "/dev/zero"],
                 ["resolve", at_home["id"], "99999999999999999999999"], ["search", "\udcff"],
                 ["flag", at_home["id"], "--reason", "bad \udcff byte"]):
        done = subprocess.run([sys.executable, "-m", "jupyter_codedistiller.cli", *args],
                              capture_output=True, timeout=60)
        err = done.stderr.decode("utf-8", "replace")
        assert b"Traceback" not in done.stdout + done.stderr, err
        if args[0] != "search":
            assert done.returncode == 1 and len(err.strip().splitlines()) == 1, err
    assert state(at_home) == before


# ---------------------------------------------------------------- the magic


@pytest.fixture
def shell(at_home: dict[str, str]) -> Iterator[InteractiveShell]:
    ip = InteractiveShell.instance()
    ip.extension_manager.load_extension("jupyter_codedistiller")
    ip.magics_manager.registry["DistillMagics"].widgets = "off"
    ip.rl_next_input = None
    yield ip
    ip.extension_manager.unload_extension("jupyter_codedistiller")
    ip.rl_next_input = None


def magic(ip: InteractiveShell, line: str) -> tuple[str | None, str]:
    """(the UsageError's message or None, what was printed)."""
    with capture_output() as captured:
        try:
            ip.run_line_magic("distill", line)
        except UsageError as exc:
            return str(exc), captured.stdout + captured.stderr
    return None, captured.stdout + captured.stderr


@pytest.mark.parametrize("query", ODD_QUERIES, ids=lambda q: repr(" ".join(q))[:40])
def test_odd_queries_are_answered_by_the_magic(query: list[str], shell: InteractiveShell,
                                               at_home: dict[str, str]) -> None:
    before = state(at_home)
    error, printed = magic(shell, shlex.join(["search", *query]))
    assert error is None, error
    assert state(at_home) == before


MAGIC_ONLY = ['search "unbalanced', "", "insert 99", "show 0", "why 7", "daemon", "import -",
              "search --limit", "flag 'unclosed --reason x"]


@pytest.mark.parametrize("line", [shlex.join(a) for a in BAD_COMMANDS if a] + MAGIC_ONLY,
                         ids=lambda s: repr(s)[:50])
def test_bad_commands_get_one_line_from_the_magic_and_change_nothing(
        line: str, shell: InteractiveShell, at_home: dict[str, str]) -> None:
    before = state(at_home)
    line = line.replace(ID, at_home["id"]).replace(FAILED, at_home["failed"]).replace(
        TMP, at_home["tmp"])
    error, printed = magic(shell, line)
    assert error, f"accepted: {line!r}: {printed}"
    assert "\n" not in error and "Traceback" not in printed
    assert state(at_home) == before
    assert not Path(at_home["tmp"], "pwned").exists()


def test_a_magic_error_in_a_cell_shows_no_traceback(shell: InteractiveShell,
                                                     at_home: dict[str, str]) -> None:
    with capture_output() as captured:
        result = shell.run_cell(f"%distill resolve {at_home['id']} 99999999999999999999999")
    assert isinstance(result.error_in_exec, UsageError)
    shown = captured.stdout + captured.stderr
    assert "Traceback" not in shown and "UsageError" in shown
