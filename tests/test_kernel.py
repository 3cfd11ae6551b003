"""``%distill`` in a real ipykernel, driven through nbclient like a notebook run.

The notebook points the kernel at a fixture library, loads the extension,
searches and inserts; the test reads the ``set_next_input`` payload from the
execute_reply, as JupyterLab does, and clicks the result widget's Insert button
over the kernel's comm channel to check what a click can and cannot do. It
also adds a real git repository and refreshes it, validation included, and
reads the progress bar's final state from the widget state nbclient kept.
"""

from __future__ import annotations

import json
import re
import sys
import time
from pathlib import Path
from typing import Any

import nbformat
import pytest
from jupyter_client import BlockingKernelClient
from nbclient import NotebookClient
from nbformat.v4 import new_code_cell, new_notebook

from jupyter_codedistiller.library import Library
from jupyter_codedistiller.provenance import cell_source, parse_marker
from jupyter_codedistiller.textview import result_lines

from .conftest import make_snippet
from .gitrepos import SAMPLE_FILES, make_repo

pytest.importorskip("ipykernel")
pytest.importorskip("ipywidgets")

WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"
MAGICS = "get_ipython().magics_manager.registry['DistillMagics']"


def click(client: NotebookClient, model_id: str) -> None:
    """Press a Button the way a browser does: a comm message to its model on the shell channel."""
    kc = BlockingKernelClient(connection_file=client.km.connection_file)
    kc.load_connection_file()
    kc.start_channels()
    try:
        msg = kc.session.msg("comm_msg", {"comm_id": model_id,
                                          "data": {"method": "custom",
                                                   "content": {"event": "click"}}})
        kc.shell_channel.send(msg)
        # comm_msg has no reply; a kernel_info round trip shows the shell channel moved past it
        kc.kernel_info(reply=True, timeout=20)
    finally:
        kc.stop_channels()


def stdout_of(cell: Any) -> str:
    return "".join(o.get("text", "") for o in cell.outputs
                   if o.output_type == "stream" and o.name == "stdout")


@pytest.mark.timeout(120)
def test_notebook_searches_and_inserts_in_a_real_kernel(tmp_path: Path) -> None:
    home = tmp_path / "kernel-home"
    with Library.open(home) as lib:
        lib.put(make_snippet("good", title="Kaplan-Meier fit by treatment group"))
        lib.put(make_snippet("other", title="Kaplan-Meier curves with confidence bands",
                             summary="Plot <b>bands</b>."))
        results = lib.search("kaplan meier")
        expected_text = "\n".join(result_lines(results))
    assert len(results) == 2
    good = results[0].snippet

    nb = new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3",
                                 "language": "python"}
    make_repo(tmp_path / "survkit", SAMPLE_FILES)
    nb.cells = [
        # the test process's $CODEDISTILLER_HOME points elsewhere: the magic must read it late
        new_code_cell(f"import os, sys\nos.environ['CODEDISTILLER_HOME'] = {str(home)!r}\n"
                      "print(sys.executable)"),
        new_code_cell("%load_ext jupyter_codedistiller"),
        new_code_cell("%distill search kaplan meier"),
        new_code_cell("%distill insert 1"),
        new_code_cell("%distill insert 9"),
        new_code_cell(f"print({MAGICS}.last_view.why_buttons[0].model_id)"),
        new_code_cell(f"%distill add {tmp_path / 'survkit'} --name survkit"),
        new_code_cell("%distill refresh survkit --workers 2"),
        new_code_cell(f"print({MAGICS}.last_progress.bar.model_id)"),
    ]
    replies: dict[int, dict[str, Any]] = {}
    client = NotebookClient(
        nb, kernel_name="python3", timeout=60, allow_errors=True,
        resources={"metadata": {"path": str(tmp_path)}},
        on_cell_executed=lambda cell, cell_index, execute_reply: replies.__setitem__(
            cell_index, execute_reply),
    )
    started = time.monotonic()
    with client.setup_kernel():
        for index, cell in enumerate(nb.cells):
            client.execute_cell(cell, index)

        # the kernel is the venv's ipykernel
        assert stdout_of(nb.cells[0]).strip() == sys.executable

        # search: one output holding the widget, an HTML and the CLI's text fallback
        search = nb.cells[2].outputs
        assert len(search) == 1 and search[0].output_type == "display_data"
        data = search[0].data
        assert WIDGET_VIEW in data and data["text/plain"] == expected_text
        assert f"<b>1.</b> <b>{good.title}</b>" in data["text/html"]
        assert "&lt;b&gt;bands&lt;/b&gt;" in data["text/html"]

        # insert: the execute_reply carries the set_next_input payload JupyterLab turns into a cell
        payload = replies[3]["content"]["payload"]
        assert payload == [{"source": "set_next_input", "text": cell_source(good),
                            "replace": False}]
        fields = parse_marker(payload[0]["text"].splitlines()[0])
        assert fields is not None and fields["id"] == good.id and fields["rev"] == "1"
        assert "KaplanMeierFitter()" in payload[0]["text"]
        assert f"inserted {good.id} revision 1" in nb.cells[3].outputs[0]["data"]["text/plain"]

        # bad usage: the cell fails with one line on stderr and no traceback
        bad = nb.cells[4].outputs
        assert replies[4]["content"]["status"] == "error"
        assert replies[4]["content"]["ename"] == "UsageError"
        assert [o.output_type for o in bad] == ["stream"] and bad[0].name == "stderr"
        assert bad[0].text.strip() == ("UsageError: %distill: the last search has results "
                                       "1 to 2, not 9")
        assert replies[4]["content"]["payload"] == []

        # refresh draws a progress bar the distiller drives to the end, then the summary;
        refresh = nb.cells[7].outputs
        assert WIDGET_VIEW in refresh[0].data
        summary = refresh[-1].data["text/plain"]
        # validation runs in sandbox children of the kernel, ipykernel's captured fds and all
        assert summary.startswith("1 source: ") and int(re.search(r"(\d+) passed", summary)[1]) > 0
        client.set_widgets_metadata()
        states = nb.metadata.widgets["application/vnd.jupyter.widget-state+json"]["state"]
        bar = states[stdout_of(nb.cells[8]).strip()]["state"]
        assert bar["_model_name"] == "IntProgressModel" and bar["bar_style"] == "success"
        assert bar["value"] == bar["max"]

        # each result's insert offer: id + revision only (the front end fetches the cell from
        # the server on a click), the command as text; the Why button's click queues no
        # set_next_input
        click(client, stdout_of(nb.cells[5]).strip())
        probe = new_code_cell(f"import json; print(json.dumps({MAGICS}.last_view.offers[0].outputs))")
        nb.cells.append(probe)
        client.execute_cell(probe, len(nb.cells) - 1)
        [shown] = json.loads(stdout_of(probe))
        request = shown["data"]["application/vnd.codedistiller.insert+json"]
        assert request == {"snippet_id": good.id, "revision": good.revision}
        assert f"%distill insert {good.id}" in shown["data"]["text/plain"]
        assert replies[len(nb.cells) - 1]["content"]["payload"] == []

        # why the button does not call set_next_input: from a click, ipykernel holds the payload
        # until the next cell's execute_reply (jupyterlab/jupyterlab#8893)
        demo = new_code_cell(
            "import ipywidgets as W\nb = W.Button()\n"
            "b.on_click(lambda _: get_ipython().set_next_input('# from a click'))\n"
            "print(b.model_id)")
        nb.cells.append(demo)
        client.execute_cell(demo, len(nb.cells) - 1)
        click(client, stdout_of(demo).strip())
        later = new_code_cell("1 + 1")
        nb.cells.append(later)
        client.execute_cell(later, len(nb.cells) - 1)
        assert [p["text"] for p in replies[len(nb.cells) - 1]["content"]["payload"]] == [
            "# from a click"]
    assert time.monotonic() - started < 60
    nbformat.validate(nb)
