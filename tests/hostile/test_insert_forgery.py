"""Kernel output that tries to insert cells (issue 16, item 2), in a real JupyterLab + chromium.

The attack: any code in the kernel (a snippet the user runs included) could
``display({"application/vnd.codedistiller.insert+json": {...}}, raw=True)`` and
JupyterLab inserted, with no click, a cell whose marker claimed
``validation=passed origin=verbatim``. Now an offer names a snippet id and a
revision only, rendering inserts nothing, a script's synthetic click inserts
nothing, a revision the server no longer holds is refused, and a person's
click inserts the server's marker, code and provenance record.
"""

from __future__ import annotations

from typing import Any

import nbformat

from jupyter_codedistiller.library import Library
from jupyter_codedistiller.provenance import cell_metadata, cell_source, parse_marker

from ..test_ui import Lab, lab, page  # noqa: F401 - the fixtures: a JupyterLab of its own

MIME = "application/vnd.codedistiller.insert+json"
FAKE_MARKER = "# codedistiller: id=cd-0000000000000000 rev=1 validation=passed origin=verbatim"


def _display(payload: str) -> str:
    return ("from IPython.display import display\n"
            f"display({{{MIME!r}: {payload}, 'text/plain': 'an offer'}}, raw=True)")


def test_kernel_output_inserts_nothing_and_a_click_inserts_the_servers_cell(lab: Lab, page: Any) -> None:  # noqa: F811
    km = lab.ids["km"]
    forged = FAKE_MARKER + "\nimport os\nos.system('id')\n"
    cells = [
        # 0: the attack as reported: a whole cell in the payload, fresh nonce and all
        _display(f"{{'source': {forged!r}, 'metadata': {{'id': 'cd-0000000000000000',"
                 " 'validation': 'passed'}, 'nonce': __import__('uuid').uuid4().hex,"
                 " 'created': __import__('time').time(), 'snippet_id': 'cd-0000000000000000',"
                 " 'title': 'Trusted'}"),
        # 1: a well-formed offer for a real snippet: a button, and nothing until a click
        _display(f"{{'snippet_id': {km!r}, 'revision': 1}}"),
        # 2: a revision the library does not hold
        _display(f"{{'snippet_id': {km!r}, 'revision': 7}}"),
        # 3: a real id carrying content of its own
        _display(f"{{'snippet_id': {km!r}, 'revision': 1, 'source': {forged!r}}}"),
    ]
    for code in cells:
        compile(code, "cell", "exec")
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nb.cells = [nbformat.v4.new_code_cell(c) for c in cells]
    nbformat.write(nb, lab.root / "forgery.ipynb")

    current = "window.jupyterapp.shell.currentWidget"
    page.evaluate("() => window.jupyterapp.commands.execute('docmanager:open', {path: 'forgery.ipynb'})")
    page.wait_for_function(
        f"() => {{ const w = {current}; const k = w && w.context && w.context.path === 'forgery.ipynb'"
        " && w.sessionContext.session && w.sessionContext.session.kernel;"
        " return !!k && k.connectionStatus === 'connected' && k.status === 'idle'; }")
    count = f"() => {current}.content.model.cells.length"
    page.evaluate("() => window.jupyterapp.commands.execute('notebook:run-all-cells')")
    notebook = page.locator(".jp-NotebookPanel:visible")
    rendered = notebook.locator(".jp-codedistiller-insert")
    page.wait_for_function(
        "() => document.querySelectorAll('.jp-NotebookPanel:not(.lm-mod-hidden) .jp-codedistiller-insert')"
        ".length === 4")
    states = [rendered.nth(i).get_attribute("data-codedistiller-insert") for i in range(4)]
    assert states == ["ignored", "offered", "offered", "ignored"]
    assert rendered.nth(0).locator("button").count() == 0  # the forged cell is text only
    page.wait_for_function(  # the kernel is done: every output is in
        f"() => {current}.sessionContext.session.kernel.status === 'idle'")
    page.wait_for_timeout(1000)
    assert page.evaluate(count) == 4  # displaying offers, forged or not, inserted nothing
    sources = page.evaluate(f"() => {current}.content.model.sharedModel.cells.map(c => c.getSource())")
    assert not any(s.startswith(FAKE_MARKER) for s in sources)

    # A script on the page clicking for the user: an untrusted event, nothing inserted.
    page.evaluate("() => document.querySelectorAll('.jp-NotebookPanel:not(.lm-mod-hidden)"
                  " .jp-codedistiller-insert-button')[0].click()")
    page.wait_for_timeout(1000)
    assert page.evaluate(count) == 4
    assert rendered.nth(1).get_attribute("data-codedistiller-insert") == "offered"

    # A person's click on a revision that is gone: refused, with why.
    rendered.nth(2).locator("button").click()
    notebook.locator('.jp-codedistiller-insert[data-codedistiller-insert="refused"]').wait_for()
    assert "revision 7 of" in rendered.nth(2).text_content() and "is gone" in rendered.nth(2).text_content()
    assert page.evaluate(count) == 4

    # A person's click on the real offer: the server's marker, code and record, below cell 1.
    rendered.nth(1).locator("button").click()
    page.wait_for_function(f"() => {current}.content.model.cells.length === 5")
    cell = page.evaluate(
        f"() => {{ const c = {current}.content.model.cells.get(2);"
        " return {source: c.sharedModel.getSource(), meta: c.getMetadata('codedistiller')}; }")
    with Library.open(lab.home) as library:
        snippet = library.get(km)
    detail = lab.api(f"snippets/{km}")
    assert cell["source"] == cell_source(snippet) == detail["cell_source"]
    assert cell["source"].splitlines()[0] == detail["marker"]
    assert parse_marker(detail["marker"])["id"] == km
    assert {k: v for k, v in cell["meta"].items() if k != "inserted"} == {
        k: v for k, v in cell_metadata(snippet).items() if k != "inserted"}
    page.evaluate(f"() => {current}.sessionContext.shutdown()")
