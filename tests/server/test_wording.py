"""Same wording everywhere: each phrase family reads the same in the CLI, the magic (a real
IPython shell), the HTML view and the API (a real jupyter_server). The panel shows the API's
phrases as sent; tests/test_ui.py checks that in a real JupyterLab.

The phrases come from ``textview``; what is compared is what each surface really printed,
displayed or answered for one library.
"""

from __future__ import annotations

import html
import io
import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from IPython.core.interactiveshell import InteractiveShell
from IPython.utils.capture import capture_output

from jupyter_codedistiller import cli
from jupyter_codedistiller.htmlview import provenance_html, snippet_html, status_html
from jupyter_codedistiller.library import Library
from jupyter_codedistiller.model import ProgressEntry, RegisteredSource, Validation

from ..conftest import make_snippet
from .test_server import API, answer, check_spec, identity, jp_server_config  # noqa: F401


@pytest.fixture
def worded(home: Path) -> dict[str, str]:
    """A library with every phrase family at work: a snippet that was not run, adapted by an
    LLM, reviewed and flagged; a source never distilled (still being built); a refresh under
    way in this process."""
    with Library.open(home) as lib:
        s = make_snippet("worded", title="Kaplan-Meier by arm", origin="adapted", model="m-1")
        s.validation = Validation(status="skipped", reason="needs network", when="2026-01-02T03:04:05+00:00")
        sid = lib.put(s).id
        lib.review(sid, "approved", note="read it", by="bob")
        lib.flag(sid, "wrong event column", kind="incorrect", by="ann")
        lib.put(make_snippet("other", title="Kaplan-Meier plain"))
        lib.add_source(RegisteredSource(id="waiting", kind="git", url="https://example.org/lab/w.git"))
        lib.set_progress("distiller", ProgressEntry(step="validate", source="lifelines", done=3,
                                                    total=9, pid=os.getpid()))
    return {"id": sid}


@pytest.fixture
def shell(home: Path) -> Iterator[InteractiveShell]:
    ipython = InteractiveShell.instance()
    ipython.extension_manager.load_extension("jupyter_codedistiller")
    ipython.magics_manager.registry["DistillMagics"].widgets = "off"
    yield ipython
    ipython.extension_manager.unload_extension("jupyter_codedistiller")


def cli_out(home: Path, *args: str) -> str:
    out = io.StringIO()
    assert cli.main(["--home", str(home), *args], out=out) == 0
    return out.getvalue()


def magic(shell: InteractiveShell, line: str) -> tuple[str, str]:
    """What ``%distill line`` displayed: (text/plain, text/html)."""
    with capture_output() as cap:
        shell.run_line_magic("distill", line)
    bundles = [dict(o.data) for o in cap.outputs]
    return ("\n".join(b.get("text/plain", "") for b in bundles) + cap.stdout,
            "".join(b.get("text/html", "") for b in bundles))


def shown(markup: str) -> str:
    """The text a browser shows for ``markup``, tags dropped."""
    return html.unescape(re.sub(r"<[^>]+>", "", markup))


async def test_provenance_reads_the_same_everywhere(jp_fetch: Any, worded: dict[str, str], home: Path,
                                                     shell: InteractiveShell) -> None:
    sid = worded["id"]
    api = answer(await jp_fetch(*API, "snippets", sid))
    check_spec(api, "/snippets/{snippet_id}", "get", 200)
    rows = [(r["label"], r["text"]) for r in api["provenance"]]
    assert ("made", "adapted by m-1") in rows and ("validation", "skipped (needs network) on "
                                                   "2026-01-02T03:04:05+00:00") in rows
    assert ("flags", "1 open, 1 in all") in rows and ("review", "approved") in rows
    why = cli_out(home, "why", sid).splitlines()
    text, markup = magic(shell, f"why {sid}")
    with Library.open(home) as lib:
        page = shown(provenance_html(lib.get(sid)))
    for label, value in rows:
        assert f"{label:<10} {value}" in why, (label, value)
        assert f"{label:<10} {value}" in text.splitlines(), (label, value)
        assert value in shown(markup) and value in page, (label, value)


async def test_history_reads_the_same_everywhere(jp_fetch: Any, worded: dict[str, str], home: Path,
                                                  shell: InteractiveShell) -> None:
    sid = worded["id"]
    api = answer(await jp_fetch(*API, "snippets", sid))
    events = [e["text"] for e in api["history"]]
    assert events == ["approved revision 1 by bob: read it", "flag #1 [incorrect] wrong event column by ann (open)"]
    found = answer(await jp_fetch(*API, "search", params={"q": "kaplan meier arm"}))
    assert next(r for r in found["results"] if r["id"] == sid)["history"] == api["history"]
    why = cli_out(home, "why", sid)
    text, markup = magic(shell, f"why {sid}")
    for event in api["history"]:
        line = f"  {event['when']} {event['text']}"
        assert line in why.splitlines() and line in text.splitlines()
        assert f"{event['when']} {event['text']}" in shown(markup)


async def test_validation_note_reads_the_same_everywhere(jp_fetch: Any, worded: dict[str, str], home: Path,
                                                         shell: InteractiveShell) -> None:
    sid = worded["id"]
    note = answer(await jp_fetch(*API, "snippets", sid))["validation_note"]
    assert note == "This code has not passed validation: it was not run (needs network)."
    text, markup = magic(shell, f"show {sid}")
    with Library.open(home) as lib:
        page = shown(snippet_html(lib.get(sid)))
    assert note in cli_out(home, "show", sid).splitlines() and note in cli_out(home, "why", sid).splitlines()
    assert note in text.splitlines() and note in shown(markup) and note in page
    assert note in magic(shell, f"why {sid}")[0].splitlines()
    passed = answer(await jp_fetch(*API, "search", params={"q": "kaplan meier plain"}))["results"][0]
    assert passed["validation"]["status"] == "passed" and passed["validation_note"] is None


async def test_building_note_reads_the_same_everywhere(jp_fetch: Any, worded: dict[str, str], home: Path,
                                                       shell: InteractiveShell) -> None:
    data = answer(await jp_fetch(*API, "search", params={"q": "kaplan meier"}))
    check_spec(data, "/search", "get", 200)
    note = data["building_note"]
    assert note == ("The library is still being built: 2 snippets so far, 1 validated, 0 waiting; "
                    "results will grow.")
    assert cli_out(home, "search", "kaplan", "meier").splitlines()[0] == note
    text, markup = magic(shell, "search kaplan meier")
    assert text.splitlines()[0] == note and note in shown(markup)
    with Library.open(home) as lib:
        lib.remove_source("waiting")
    built = answer(await jp_fetch(*API, "search", params={"q": "kaplan meier"}))
    assert built["building"] is None and built["building_note"] == ""


async def test_status_line_reads_the_same_everywhere(jp_fetch: Any, worded: dict[str, str], home: Path,
                                                     shell: InteractiveShell) -> None:
    data = answer(await jp_fetch(*API, "status"))
    check_spec(data, "/status", "get", 200)
    line = data["status_line"]
    assert line == "2 snippets · 1 flagged · Validating lifelines: 3 of 9"
    assert cli_out(home, "status").splitlines()[0] == line
    text, markup = magic(shell, "status")
    assert text.splitlines()[0] == line and line in shown(markup)
    with Library.open(home) as lib:
        assert line in shown(status_html(lib.status()))
    assert "distiller  Validating lifelines: 3 of 9" in cli_out(home, "status").splitlines()
