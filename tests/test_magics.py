"""``%distill`` in a real IPython InteractiveShell over a real library file.

Every subcommand, the set_next_input payload, the --force rules, one-line
UsageErrors that leave the library unchanged, and HTML that never carries
library text unescaped.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from IPython.core.error import UsageError
from IPython.core.interactiveshell import InteractiveShell
from IPython.core.oinspect import getdoc
from IPython.utils.capture import capture_output

from jupyter_codedistiller.htmlview import provenance_html, results_html, safe_href
from jupyter_codedistiller.library import Library
from jupyter_codedistiller.model import RegisteredSource, Source
from jupyter_codedistiller.provenance import (
    MARKER_PREFIX,
    cell_source,
    parse_marker,
    split_cell,
)
from jupyter_codedistiller.textview import provenance_text, result_lines, snippet_text

from .conftest import make_snippet

EVIL_TITLE = "<script>alert(1)</script>"


@pytest.fixture(scope="module")
def ipython() -> InteractiveShell:
    return InteractiveShell.instance()


@pytest.fixture
def shell(ipython: InteractiveShell) -> Iterator[InteractiveShell]:
    """The shell with the extension freshly loaded (no remembered results), widgets off."""
    ipython.extension_manager.load_extension("jupyter_codedistiller")
    ipython.rl_next_input = None
    magics = ipython.magics_manager.registry["DistillMagics"]
    magics.widgets = "off"
    yield ipython
    ipython.extension_manager.unload_extension("jupyter_codedistiller")
    ipython.rl_next_input = None


@pytest.fixture
def ids(library: Library) -> dict[str, str]:
    """A fixture library: one snippet per state the magic must treat differently."""
    put = library.put
    out = {
        "good": put(make_snippet("good", title="Kaplan-Meier fit by treatment group")).id,
        "failed": put(make_snippet("failed", title="Kaplan-Meier with a broken import",
                                   validation="failed")).id,
        "flagged": put(make_snippet("flagged", title="Kaplan-Meier confidence bands")).id,
        "rejected": put(make_snippet("rejected", title="Kaplan-Meier rejected variant")).id,
        "retired": put(make_snippet("retired", title="Kaplan-Meier retired example")).id,
        "llm": put(make_snippet("llm", title="Cox proportional hazards by LLM",
                                summary="Fit a Cox model.", origin="generated",
                                model="gpt-test", tags=["cox"])).id,
    }
    evil = make_snippet(
        "evil", title=EVIL_TITLE, summary='<img src=x onerror="alert(2)">',
        code="print('</pre><script>alert(3)</script>')\n", tags=["hostile"],
    )
    evil.source = Source(kind="git", url="javascript:alert(4)", path="<b>x</b>.py",
                         license="<i>MIT</i>", commit="abc", source_id="evil")
    out["evil"] = put(evil).id
    library.flag(out["flagged"], "wrong column used", kind="incorrect", by="ann")
    library.flag(out["evil"], "<script>alert(5)</script>", by="<b>mallory</b>")
    library.review(out["rejected"], "rejected", note="uses private API", by="bob")
    library.retire([out["retired"]])
    return out


def magics(shell: InteractiveShell) -> Any:
    return shell.magics_manager.registry["DistillMagics"]


def run(shell: InteractiveShell, line: str) -> list[dict[str, str]]:
    """Run ``%distill line`` and return the display bundles it produced (stdout as text/plain)."""
    with capture_output() as cap:
        shell.run_line_magic("distill", line)
    bundles = [dict(o.data) for o in cap.outputs]
    if cap.stdout:
        bundles.append({"text/plain": cap.stdout})
    return bundles


def html_of(bundles: list[dict[str, str]]) -> str:
    return "".join(b.get("text/html", "") for b in bundles)


def text_of(bundles: list[dict[str, str]]) -> str:
    return "\n".join(b.get("text/plain", "") for b in bundles)


def usage_error(shell: InteractiveShell, line: str, capsys: pytest.CaptureFixture[str]) -> str:
    """Run the line as a cell; assert it failed with one UsageError line and no traceback."""
    capsys.readouterr()
    result = shell.run_cell(f"%distill {line}", store_history=False)
    assert isinstance(result.error_in_exec, UsageError), result.error_in_exec
    err = capsys.readouterr().err
    lines = [x for x in err.splitlines() if x.strip()]
    assert len(lines) == 1 and lines[0].startswith("UsageError: "), err
    assert "Traceback" not in err
    return lines[0]


def snapshot(library: Library) -> list[str]:
    return [s.to_json() for s in library.all()]


# ---------------------------------------------------------------- loading and help


def test_load_registers_and_unload_removes(ipython: InteractiveShell) -> None:
    ipython.extension_manager.load_extension("jupyter_codedistiller")
    assert "distill" in ipython.magics_manager.magics["line"]
    ipython.extension_manager.unload_extension("jupyter_codedistiller")
    assert "distill" not in ipython.magics_manager.magics["line"]
    assert "DistillMagics" not in ipython.magics_manager.registry


def test_help_shows_the_shared_grammar(shell: InteractiveShell,
                                       capsys: pytest.CaptureFixture[str]) -> None:
    doc = getdoc(shell.find_line_magic("distill"))
    assert doc is not None
    for command in ("search", "show", "insert", "why", "flag", "resolve", "review", "add",
                    "refresh", "sources", "status"):
        assert f"usage: %distill {command}" in doc
    assert "N, a result number from the last search" in doc
    capsys.readouterr()
    assert shell.run_cell("%distill?", store_history=False).success
    assert "usage: %distill insert [-h] [--force] id" in capsys.readouterr().out
    result = shell.run_cell("%distill search --help", store_history=False)
    assert result.success
    out = capsys.readouterr().out
    assert out.count("usage: %distill search") == 1 and "--validation" in out


def test_loadable_through_ipython_config(tmp_path: Path, ids: dict[str, str]) -> None:
    profile = tmp_path / "ipython" / "profile_default"
    profile.mkdir(parents=True)
    (profile / "ipython_config.py").write_text(
        "c.InteractiveShellApp.extensions = ['jupyter_codedistiller']\n")
    out = subprocess.run(
        [sys.executable, "-m", "IPython", f"--ipython-dir={tmp_path / 'ipython'}", "--no-banner",
         "--colors=nocolor", "-c", "%distill search kaplan meier --limit 1"],
        capture_output=True, text=True, timeout=60, env=os.environ.copy(),
    )
    assert out.returncode == 0, out.stderr
    assert "1. Kaplan-Meier fit by treatment group" in out.stdout


# ---------------------------------------------------------------- search


def test_search_shows_html_and_the_cli_text(shell: InteractiveShell, library: Library,
                                            ids: dict[str, str]) -> None:
    bundles = run(shell, "search kaplan meier")
    assert len(bundles) == 1
    results = library.search("kaplan meier")
    assert bundles[0]["text/plain"] == "\n".join(result_lines(results))
    assert bundles[0]["text/html"] == results_html(results, query="kaplan meier")
    html = bundles[0]["text/html"]
    assert "<b>1.</b> <b>Kaplan-Meier fit by treatment group</b>" in html
    assert "lifelines" in html and "passed 20" in html and "flagged (1)" in html
    assert "validation failed" not in html and ">failed</span>" in html
    # rejected and retired snippets stay hidden; the magic remembers the ranking
    assert ids["rejected"] not in html and ids["retired"] not in html
    assert magics(shell).last_results == [r.snippet.id for r in results]
    assert magics(shell).last_results[0] == ids["good"]


def test_search_filters_json_and_no_hits(shell: InteractiveShell, ids: dict[str, str]) -> None:
    hits = json.loads(text_of(run(shell, "search --json --origin generated")))
    assert [h["id"] for h in hits] == [ids["llm"]]
    assert magics(shell).last_results == [ids["llm"]]
    text = text_of(run(shell, "search zebrafish morphology"))
    assert text == "no snippet matches 'zebrafish morphology'; the library holds 6"
    assert magics(shell).last_results == []


def test_badges_cover_llm_origin(shell: InteractiveShell, ids: dict[str, str]) -> None:
    html = html_of(run(shell, "search cox"))
    assert "LLM-generated" in html and "unreviewed" in html


# ---------------------------------------------------------------- insert


def test_insert_by_number_puts_marker_and_code_in_next_input(
    shell: InteractiveShell, library: Library, ids: dict[str, str]
) -> None:
    run(shell, "search kaplan meier fit treatment")
    bundles = run(shell, "insert 1")
    s = library.get(ids["good"])
    payload = shell.rl_next_input
    assert payload == cell_source(s)
    assert payload.startswith(MARKER_PREFIX)
    fields, code = split_cell(payload)
    assert fields is not None and fields["id"] == s.id and fields["rev"] == "1"
    assert fields["validation"] == "passed" and fields["license"] == "MIT"
    assert code == s.code.rstrip("\n")
    assert f"inserted {s.id} revision 1" in text_of(bundles)
    assert "Warning" not in text_of(bundles)


def test_insert_by_id_and_prefix(shell: InteractiveShell, ids: dict[str, str]) -> None:
    run(shell, f"insert {ids['good'][:10]}")
    assert parse_marker(shell.rl_next_input.splitlines()[0])["id"] == ids["good"]


@pytest.mark.parametrize(("name", "why"), [
    ("failed", "its validation failed"),
    ("flagged", "it has 1 open flag (wrong column used)"),
    ("rejected", "a reviewer rejected it"),
    ("retired", "it is retired"),
])
def test_insert_needs_force(shell: InteractiveShell, library: Library, ids: dict[str, str],
                            capsys: pytest.CaptureFixture[str], name: str, why: str) -> None:
    line = usage_error(shell, f"insert {ids[name]}", capsys)
    assert why in line and "--force" in line and ids[name] in line
    assert shell.rl_next_input is None
    bundles = run(shell, f"insert {ids[name]} --force")
    assert shell.rl_next_input == cell_source(library.get(ids[name]))
    assert f"inserted with --force although {why}" in text_of(bundles)


def test_unreviewed_llm_snippet_inserts_with_warning(shell: InteractiveShell, library: Library,
                                                     ids: dict[str, str]) -> None:
    bundles = run(shell, f"insert {ids['llm']}")
    assert shell.rl_next_input == cell_source(library.get(ids["llm"]))
    assert "origin=generated/gpt-test" in shell.rl_next_input.splitlines()[0]
    text, html = text_of(bundles), html_of(bundles)
    assert "Warning: this code was generated by an LLM (gpt-test)" in text
    assert "cd-warn" in html and "no person has reviewed it" in html
    library.review(ids["llm"], "approved", by="carol")
    assert "Warning" not in text_of(run(shell, f"insert {ids['llm']}"))


def test_insert_rereads_the_library(shell: InteractiveShell, library: Library,
                                    ids: dict[str, str], capsys: pytest.CaptureFixture[str]) -> None:
    """A flag raised by another process after the search blocks the insert of result N."""
    run(shell, "search kaplan meier fit treatment")
    with Library.open() as other:
        other.flag(ids["good"], "outdated API", kind="outdated", by="dan")
    assert "outdated API" in usage_error(shell, "insert 1", capsys)


# ---------------------------------------------------------------- why, show, status, sources


def test_why_shows_full_provenance(shell: InteractiveShell, library: Library,
                                   ids: dict[str, str]) -> None:
    run(shell, "search kaplan meier fit treatment")
    bundles = run(shell, "why 1")
    s = library.get(ids["good"])
    assert bundles[0]["text/plain"] == provenance_text(s)
    html = bundles[0]["text/html"]
    assert html == provenance_html(s)
    link = ("https://example.org/lab/survival-examples/blob/"
            "0123456789abcdef0123456789abcdef01234567/examples/good.py#L1-L5")
    assert f'<a href="{link}" target="_blank" rel="noopener noreferrer">' in html
    for part in ("MIT", "verbatim", "passed", "unreviewed", "0 open, 0 in all"):
        assert part in html
    assert json.loads(text_of(run(shell, f"why {ids['rejected']} --json")))["id"] == ids["rejected"]
    history = html_of(run(shell, f"why {ids['rejected']}"))
    assert "rejected revision 1 by bob: uses private API" in history


def test_show_renders_snippet(shell: InteractiveShell, library: Library,
                              ids: dict[str, str]) -> None:
    bundles = run(shell, f"show {ids['flagged']}")
    s = library.get(ids["flagged"])
    assert bundles[0]["text/plain"] == snippet_text(s)
    assert "wrong column used" in bundles[0]["text/html"]
    assert "KaplanMeierFitter()" in bundles[0]["text/html"]


def test_status_and_sources(shell: InteractiveShell, library: Library,
                            ids: dict[str, str]) -> None:
    library.add_source(RegisteredSource(id="lab", kind="git",
                                        url="https://example.org/lab/survival-examples.git"))
    library.add_source(RegisteredSource(id="odd", kind="git", url="javascript:alert(6)",
                                        last_error="<script>alert(7)</script>", state="error"))
    status = run(shell, "status")
    assert "snippets   6 active, 1 retired" in status[0]["text/plain"]
    assert "6 active, 1 retired, 2 flagged" in status[0]["text/html"]
    data = json.loads(text_of(run(shell, "status --json")))
    assert data["snippets"] == 6
    sources = run(shell, "sources")
    html = sources[0]["text/html"]
    assert 'href="https://example.org/lab/survival-examples.git"' in html
    assert 'href="javascript' not in html and "<script" not in html
    assert "lab" in sources[0]["text/plain"] and "never distilled" in html
    assert [s["id"] for s in json.loads(text_of(run(shell, "sources --json")))] == ["lab", "odd"]


# ---------------------------------------------------------------- flag, resolve, review


def test_flag_resolve_review_by_result_number(shell: InteractiveShell, library: Library,
                                              ids: dict[str, str]) -> None:
    run(shell, "search kaplan meier fit treatment")
    text = text_of(run(shell, 'flag 1 --reason "p-value uses wrong test" --kind incorrect'))
    assert text == f"flag 3 [incorrect] raised on {ids['good']} by tester"
    assert [f.reason for f in library.get(ids["good"]).open_flags] == ["p-value uses wrong test"]
    html = html_of(run(shell, "resolve 1 3 --note 'fixed upstream'"))
    assert "resolved by tester" in html and "flagged" not in html
    assert library.get(ids["good"]).flags[0].resolution == "fixed upstream"
    out = text_of(run(shell, "review 1 --approve --note 'checked against the paper'"))
    assert out == f"revision 1 of {ids['good']} approved by tester"
    assert library.get(ids["good"]).review.status == "approved"
    run(shell, f"review {ids['llm']} --reject --by erin")
    assert library.get(ids["llm"]).review.history[-1].by == "erin"


# ---------------------------------------------------------------- errors


@pytest.mark.parametrize(("line", "expected"), [
    ("", "the following arguments are required: COMMAND"),
    ("serch kaplan", "invalid choice: 'serch'"),
    ("search --limit 0", "expected a number of at least 1"),
    ("insert 1", "no search results to take result 1 from"),
    ("insert", "the following arguments are required: id"),
    ("why cd-doesnotexist", "no snippet 'cd-doesnotexist' in the library"),
    ("flag cd-doesnotexist --reason x", "no snippet"),
    ('flag 1 --reason "unbalanced', "cannot split the line"),
    ("review cd-doesnotexist --approve", "no snippet"),
    ("review cd-0 --approve --reject", "not allowed with argument"),
    ("search --validation great", "invalid choice: 'great'"),
    ("import -", "give a file"),
    ("remove nope", "no source 'nope'"),
    ("daemon --once", "start it in a terminal"),
    ("mcp", "the agent starts it: codedistiller mcp"),
])
def test_bad_usage_is_one_line_and_changes_nothing(
    shell: InteractiveShell, library: Library, ids: dict[str, str],
    capsys: pytest.CaptureFixture[str], line: str, expected: str,
) -> None:
    before = snapshot(library)
    message = usage_error(shell, line, capsys)
    assert expected in message
    assert shell.rl_next_input is None
    assert snapshot(library) == before


def test_errors_after_a_search(shell: InteractiveShell, library: Library, ids: dict[str, str],
                               capsys: pytest.CaptureFixture[str]) -> None:
    run(shell, "search kaplan meier")
    before = snapshot(library)
    n = len(magics(shell).last_results)
    assert f"has results 1 to {n}, not 9" in usage_error(shell, "insert 9", capsys)
    assert "a flag needs a reason" in usage_error(shell, 'flag 1 --reason "  "', capsys)
    assert "has no flag 42" in usage_error(shell, "resolve 1 42", capsys)
    assert "has no flag 99" in usage_error(shell, "resolve 2 99", capsys)
    other = usage_error(shell, f"--home {library.path.parent / 'elsewhere'} insert 1", capsys)
    assert "the last search was in another library" in other
    assert snapshot(library) == before


# ---------------------------------------------------------------- escaping


def test_html_never_carries_library_text_unescaped(shell: InteractiveShell, library: Library,
                                                   ids: dict[str, str]) -> None:
    outputs = [run(shell, "search hostile"), run(shell, f"why {ids['evil']}"),
               run(shell, f"show {ids['evil']}"), run(shell, "status")]
    html = "".join(html_of(b) for b in outputs)
    assert ids["evil"] in html and "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    for raw in ("<script", "<img", "onerror=\"", "<b>x</b>", "<i>MIT", "<b>mallory", "</pre><script"):
        assert raw not in html, raw
    assert 'href="javascript' not in html
    assert "&lt;/pre&gt;&lt;script&gt;alert(3)" in html


def test_safe_href_only_allows_http() -> None:
    assert safe_href("https://example.org/a?b=1&c=<2>") == "https://example.org/a?b=1&amp;c=&lt;2&gt;"
    for bad in ("javascript:alert(1)", "JAVASCRIPT:alert(1)", "data:text/html,x", "//evil",
                "https://exa mple.org", "http:///nohost", "https://e.org/\x00", "", None):
        assert safe_href(bad) is None, bad


# ---------------------------------------------------------------- widgets


def test_widget_results_insert_and_why_buttons(shell: InteractiveShell, library: Library,
                                               ids: dict[str, str]) -> None:
    pytest.importorskip("ipywidgets")
    from jupyter_codedistiller.widgets import INSERT_MIME
    magics(shell).widgets = "on"
    bundles = run(shell, "search kaplan meier")
    assert "application/vnd.jupyter.widget-view+json" in bundles[0]
    assert bundles[0]["text/plain"] == "\n".join(result_lines(library.search("kaplan meier")))
    assert "<script" not in bundles[0]["text/html"]
    view = magics(shell).last_view
    ranked = [r.snippet.id for r in view.results]
    good, flagged = ranked.index(ids["good"]), ranked.index(ids["flagged"])

    # Insert: an offer naming the snippet and its revision, nothing the kernel could forge
    for i, r in enumerate(view.results):
        [output] = view.offers[i].outputs
        assert output["output_type"] == "display_data"
        assert output["data"][INSERT_MIME] == {"snippet_id": r.snippet.id,
                                               "revision": r.snippet.revision}
        assert f"%distill insert {r.snippet.id}" in output["data"]["text/plain"]
        json.dumps(output)  # what the comm sends
    assert flagged != good  # blocked snippets are offered too: the server refuses on the click
    assert shell.rl_next_input is None  # showing results never queues a set_next_input

    view.why_buttons[good].click()
    assert view.details[good].value == provenance_html(library.get(ids["good"]))
    view.why_buttons[good].click()
    assert view.details[good].value == ""


def test_widget_offers_carry_no_content_whatever_the_policy(
        shell: InteractiveShell, library: Library, ids: dict[str, str], home: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """What a cell holds, and whether the policy lets it in, is the server's answer to a click
    (tests/test_ui.py, tests/hostile/test_insert_forgery.py); the kernel offers id + revision."""
    pytest.importorskip("ipywidgets")
    from jupyter_codedistiller.settings import set_setting
    from jupyter_codedistiller.widgets import INSERT_MIME

    monkeypatch.delenv("CODEDISTILLER_POLICY", raising=False)
    magics(shell).widgets = "on"
    for policy in ("open", "reviewed"):
        set_setting(home, "policy", policy)
        run(shell, "search cox hazards")
        view = magics(shell).last_view
        [llm] = [i for i, r in enumerate(view.results) if r.snippet.id == ids["llm"]]
        assert view.offers[llm].outputs[0]["data"][INSERT_MIME] == {
            "snippet_id": ids["llm"], "revision": library.get(ids["llm"]).revision}
    assert shell.rl_next_input is None


def test_widgets_follow_setting_and_environment(shell: InteractiveShell,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("ipywidgets")
    m = magics(shell)
    m.widgets = "auto"
    assert m.widgets_on() is False  # no kernel behind a plain InteractiveShell
    m.widgets = "on"
    assert m.widgets_on() is True
    monkeypatch.setenv("CODEDISTILLER_WIDGETS", "off")
    assert m.widgets_on() is False


def test_progress_view_tracks_callbacks() -> None:
    pytest.importorskip("ipywidgets")
    from jupyter_codedistiller.widgets import ProgressView

    view = ProgressView("Refreshing")
    view("fetch", 0, 2, "lab")
    assert (view.bar.value, view.bar.max) == (0, 2)
    view("validate", 3, 10, "examples/km.py")
    assert (view.bar.value, view.bar.max) == (3, 10)
    assert "Validating: 3 of 10 (examples/km.py)" in view.label.value
    view("validate", 10, 10, "<b>done</b>")
    assert view.bar.value == 10 and "&lt;b&gt;" in view.label.value
    view.finish("3 added", ok=False)
    assert view.bar.bar_style == "danger" and view.label.value == "3 added"


def test_every_progress_bar_words_a_step_the_same(shell: InteractiveShell) -> None:
    """The terminal bar, the magic's text progress and the widget label all say what
    ``textview.progress_phrase`` says for the same callback."""
    pytest.importorskip("ipywidgets")
    import io

    from jupyter_codedistiller.cli import TerminalProgress
    from jupyter_codedistiller.magics import TextProgress
    from jupyter_codedistiller.model import ProgressEntry
    from jupyter_codedistiller.textview import progress_line
    from jupyter_codedistiller.widgets import ProgressView

    phrase = "Validating lifelines: 3 of 10 (examples/km.py)"
    step = ("validate", 3, 10, "examples/km.py", "lifelines")
    stream = io.StringIO()
    TerminalProgress(stream, width=4)(*step)
    assert stream.getvalue().startswith(f"\r[#...] {phrase}")
    with capture_output():
        text = TextProgress()
        text(*step)
    view = ProgressView("Refreshing")
    view(*step)
    assert text.last == phrase and view.label.value == phrase
    # ... and the same as the published entry of that step reads in status and the panel
    stored = ProgressEntry(step="validate", done=3, total=10, detail="examples/km.py", source="lifelines")
    assert progress_line(stored) == phrase


# ---------------------------------------------------------------- library handling


def test_library_opened_once_and_reopened_when_replaced(
    shell: InteractiveShell, library: Library, ids: dict[str, str], home: Path
) -> None:
    m = magics(shell)
    run(shell, "status")
    first = m.library()
    assert m.library() is first
    library.close()
    for p in home.glob("library.db*"):
        p.unlink()
    with Library.open(home) as fresh:
        fresh.put(make_snippet("fresh", title="Leiden clustering of a kNN graph", tags=["leiden"]))
    assert m.library() is not first
    assert "Leiden clustering" in text_of(run(shell, "search leiden"))


def test_home_option_and_env_change(shell: InteractiveShell, tmp_path: Path,
                                    monkeypatch: pytest.MonkeyPatch) -> None:
    other = tmp_path / "other-home"
    with Library.open(other) as lib:
        lib.put(make_snippet("umap", title="UMAP embedding of single cells", tags=["umap"]))
    assert "UMAP embedding" in text_of(run(shell, f"--home {other} search umap"))
    assert text_of(run(shell, "search umap")).startswith("no snippet matches 'umap'")
    monkeypatch.setenv("CODEDISTILLER_HOME", str(other))
    assert "UMAP embedding" in text_of(run(shell, "search umap"))


def test_export_goes_through_the_cli_handler(shell: InteractiveShell, ids: dict[str, str],
                                             tmp_path: Path) -> None:
    target = tmp_path / "lib.jsonl"
    assert text_of(run(shell, f"export {target}")).strip() == f"exported 7 snippets to {target}"
    assert len(target.read_text().splitlines()) == 7


# ---------------------------------------------------------------- add, sources, refresh


def test_add_refresh_sources_through_the_distiller(
    shell: InteractiveShell, library: Library, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from .gitrepos import SAMPLE_FILES, commit, make_repo

    repo = make_repo(tmp_path / "survkit", SAMPLE_FILES)
    added = text_of(run(shell, f"add {tmp_path / 'survkit'} --name survkit"))
    assert added.startswith("added local source survkit") and "%distill refresh survkit" in added
    listed = run(shell, "sources")
    assert "never distilled" in html_of(listed) and "survkit" in text_of(listed)

    bundles = run(shell, "refresh --no-validate")
    text = text_of(bundles)
    steps = [b.get("text/plain", "") for b in bundles]  # the text progress line and its updates
    assert steps[0] == "starting…" and "Fetching survkit: 0 of 1" in steps
    assert any(s.startswith("Saving survkit: 1 of 1 (") for s in steps)
    assert magics(shell).last_progress.last.startswith("Done (")
    assert "1 source: " in text and " added" in text and "not validated" in text
    assert library.source("survkit").last_commit == repo.head.commit.hexsha
    run(shell, "search group sizes cohort")
    hits = magics(shell).last_results
    assert hits and library.get(hits[0]).source.source_id == "survkit"
    run(shell, "insert 1")
    assert parse_marker(shell.rl_next_input.splitlines()[0])["id"] == hits[0]

    pytest.importorskip("ipywidgets")
    magics(shell).widgets = "on"
    commit(repo, {"examples/count.py": "print(len([1, 2, 3]))\n"}, message="more")
    bundles = run(shell, "refresh survkit --no-validate")
    assert "application/vnd.jupyter.widget-view+json" in bundles[0]
    assert "1 added" in text_of(bundles)
    bar = magics(shell).last_progress
    assert bar.calls >= 4 and bar.bar.bar_style == "success" and "1 added" in bar.label.value
    sources = run(shell, "sources --json")
    assert json.loads(text_of(sources))[0]["pin"] == repo.head.commit.hexsha

    before = snapshot(library)
    assert "already registered" in usage_error(shell, f"add {tmp_path / 'survkit'} --name survkit",
                                               capsys)
    assert "no source 'nope'" in usage_error(shell, "refresh nope", capsys)
    assert snapshot(library) == before


def test_team_policy_applies_to_insert(shell: InteractiveShell, library: Library,
                                       ids: dict[str, str], home: Path,
                                       capsys: pytest.CaptureFixture[str],
                                       monkeypatch: pytest.MonkeyPatch) -> None:
    pending = library.put(make_snippet("pending", title="Pending example", validation="pending"))
    monkeypatch.setenv("CODEDISTILLER_POLICY", "validated")
    assert "the team policy is 'validated'" in usage_error(shell, f"insert {pending.id}", capsys)
    run(shell, f"insert {ids['good']}")
    assert parse_marker(shell.rl_next_input.splitlines()[0])["id"] == ids["good"]
    monkeypatch.setenv("CODEDISTILLER_POLICY", "reviewed")
    shell.rl_next_input = None
    assert "the team policy is 'reviewed'" in usage_error(shell, f"insert {ids['good']}", capsys)
    assert shell.rl_next_input is None
    monkeypatch.delenv("CODEDISTILLER_POLICY")
    (home / "settings.json").write_text("{not json")
    assert "cannot read" in usage_error(shell, f"insert {ids['good']}", capsys)


def test_audit_of_the_running_session_and_of_a_file(shell: InteractiveShell, ids: dict[str, str],
                                                    library: Library, tmp_path: Path) -> None:
    import nbformat

    good = library.get(ids["good"])
    shell.user_ns.pop("__session__", None)
    shell.run_cell(cell_source(good).replace("df = load_waltons()", "df = None"), store_history=True)
    library.flag(good.id, "median off by one", kind="incorrect")
    with capture_output() as cap:
        shell.run_line_magic("distill", "audit --format json")
    report = json.loads(cap.stdout)
    cell = next(c for c in report["cells"] if c["snippet_id"] == good.id)
    assert cell["edited"] is True and cell["current"]["flags"][0]["reason"] == "median off by one"
    assert "executed cells" in report["notebook"]

    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(cell_source(good))])
    path = tmp_path / "saved.ipynb"
    nbformat.write(nb, str(path))
    shell.user_ns["__session__"] = str(path)
    try:
        with capture_output() as cap:
            shell.run_line_magic("distill", "audit")
        html = cap.outputs[0].data["text/html"]
        assert "Provenance audit" in html and "as last saved" in html
        assert "## Methods" in cap.outputs[0].data["text/plain"]
    finally:
        shell.user_ns.pop("__session__", None)
    with pytest.raises(UsageError, match="no notebook"):
        shell.run_line_magic("distill", f"audit {tmp_path / 'missing.ipynb'}")


def test_search_on_a_library_still_being_built_says_so(shell: InteractiveShell, ids: dict[str, str],
                                                        library: Library) -> None:
    library.add_source(RegisteredSource(id="lab-repo", kind="git", url="https://example.org/lab/repo.git"))
    with capture_output() as cap:
        shell.run_line_magic("distill", "search kaplan")
    note = cap.outputs[0].data["text/plain"]
    assert note.startswith("The library is still being built:") and "results will grow" in note
    assert "Kaplan-Meier" in cap.outputs[1].data["text/plain"], "and shows what is there"


def test_refresh_llm_in_the_magic_goes_through_the_cli_path(shell: InteractiveShell, library: Library,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    with capture_output() as cap:
        shell.run_line_magic("distill", "refresh --llm")
    assert "LLM path off" in cap.stderr, "--llm is not silently ignored"
    assert cap.outputs[-1].data["text/plain"].startswith("0 sources: 0 added"), "and the static refresh ran"


def test_add_reads_sources_as_classify_does(shell: InteractiveShell, library: Library,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    import shlex

    from . import source_cases

    for spec, words in source_cases.REFUSED:
        assert words in usage_error(shell, f"add -- {shlex.quote(spec)}", capsys), spec
    for spec in source_cases.TRIED:
        assert f"cannot clone {spec}" in usage_error(shell, f"add -- {shlex.quote(spec)}", capsys)
    assert library.sources(include_removed=True) == []
