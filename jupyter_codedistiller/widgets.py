"""ipywidgets views for the magic: search results with Insert and Why buttons, a progress bar.

Imported only by the commands that draw widgets, never at ``%load_ext``. The
views hold no library logic: the magic passes callbacks that return the HTML
to show under a result. Every bundle these views display also carries
``text/html`` and ``text/plain``, so a notebook read without a widget manager
(nbconvert, GitHub, a terminal) still shows the results.

A button cannot add a cell from the kernel: a click is a comm message, not an
execution, so a ``set_next_input`` payload raised in the callback would ride on
the reply to whatever cell runs next (jupyterlab/jupyterlab#8893). Insert
therefore displays an *insert request* (``INSERT_MIME``) in the view's Output
area; the labextension renders that MIME type by inserting the cell below,
once, while the request is fresh. Front ends without the extension (classic
notebook, VS Code, nbclient) show its ``text/plain``: the cell text and the
``%distill insert`` command.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Sequence
from typing import Any

import ipywidgets as W

from .htmlview import esc, result_html
from .library import SearchResult

DetailHandler = Callable[[SearchResult], str]
# What a click on Insert answers: HTML for the detail area, and the insert request to
# display in the Output area (None when nothing is to be inserted).
InsertHandler = Callable[[SearchResult], tuple[str, dict[str, Any] | None]]

INSERT_MIME = "application/vnd.codedistiller.insert+json"
"""The MIME type of an insert request; the labextension's renderer acts on it."""


def insert_request(source: str, metadata: dict[str, Any], *, snippet_id: str, title: str,
                   text: str) -> dict[str, Any]:
    """A display bundle asking the front end to insert a code cell below.

    ``INSERT_MIME`` holds the cell ``source``, its ``metadata.codedistiller``
    record, a fresh ``nonce`` and the ``created`` time (epoch seconds): the
    front end inserts each nonce once, and only while the request is fresh, so
    a reopened notebook never inserts again. ``text`` is the ``text/plain``
    fallback for front ends without the extension.
    """
    return {
        INSERT_MIME: {"source": source, "metadata": metadata, "nonce": uuid.uuid4().hex,
                      "created": time.time(), "snippet_id": snippet_id, "title": title},
        "text/plain": text,
    }


def bundle(widget: W.Widget, html: str, text: str) -> dict[str, Any]:
    """A display bundle: the widget view, with HTML and plain-text fallbacks."""
    data = dict(widget._repr_mimebundle_())
    data["text/html"] = html
    data["text/plain"] = text
    return data


class ResultsView:
    """Ranked results, each with Insert and Why buttons and a detail area below it.

    Why toggles the provenance in the detail area. Each Insert click shows
    ``on_insert``'s HTML (warnings, or why it is blocked) in the detail area and
    replaces what the Output area (``output``, under the results) shows with the
    insert request it returns, if any.
    """

    def __init__(self, results: Sequence[SearchResult], *, on_insert: InsertHandler,
                 on_why: DetailHandler, footer_html: str = "") -> None:
        self.results = list(results)
        self.output = W.Output()
        self.insert_buttons: list[W.Button] = []
        self.why_buttons: list[W.Button] = []
        self.details: list[W.HTML] = []
        self._showing: list[str | None] = []
        rows = []
        for r in self.results:
            detail = W.HTML("")
            insert = W.Button(description="Insert", icon="plus", button_style="primary",
                              tooltip=f"Insert result {r.rank} in a new cell below, with its "
                                      "provenance",
                              layout=W.Layout(width="90px"))
            why = W.Button(description="Why", icon="info-circle",
                           tooltip=f"Where result {r.rank} came from and how it was checked",
                           layout=W.Layout(width="90px"))
            i = len(self.details)
            insert.on_click(lambda _b, i=i: self._insert(i, on_insert))
            why.on_click(lambda _b, i=i: self._toggle(i, "why", on_why))
            self.insert_buttons.append(insert)
            self.why_buttons.append(why)
            self.details.append(detail)
            self._showing.append(None)
            head = W.HTML(result_html(r), layout=W.Layout(flex="1 1 auto"))
            buttons = W.HBox([insert, why], layout=W.Layout(flex="0 0 auto", align_items="center"))
            rows.append(W.VBox([W.HBox([head, buttons]), detail]))
        rows.append(self.output)
        if footer_html:
            rows.append(W.HTML(footer_html))
        self.widget = W.VBox(rows)

    def _insert(self, i: int, handler: InsertHandler) -> None:
        try:
            html, request = handler(self.results[i])
        except Exception as exc:  # a callback error would only reach the kernel log
            html, request = f"<pre>{esc(type(exc).__name__)}: {esc(exc)}</pre>", None
        self.details[i].value = html
        self._showing[i] = "insert" if html else None
        # Set as state, not captured from a display call: the Output shows exactly this request.
        self.output.outputs = (
            ({"output_type": "display_data", "data": request, "metadata": {}},) if request else ()
        )

    def _toggle(self, i: int, what: str, handler: DetailHandler) -> None:
        if self._showing[i] == what:
            self.details[i].value = ""
            self._showing[i] = None
            return
        try:
            self.details[i].value = handler(self.results[i])
        except Exception as exc:  # a callback error would only reach the kernel log
            self.details[i].value = f"<pre>{esc(type(exc).__name__)}: {esc(exc)}</pre>"
        self._showing[i] = what


class ProgressView:
    """A progress bar and a label, driven by ``progress(stage, done, total, detail)`` calls.

    Updates are sent at most ten times a second (each is a comm message), but
    a change of stage and the last step always show.
    """

    def __init__(self, title: str) -> None:
        self.bar = W.IntProgress(value=0, min=0, max=1, bar_style="info",
                                 layout=W.Layout(width="260px"))
        self.label = W.HTML("starting…")
        self.title = W.HTML(f"<b>{esc(title)}</b>")
        self.widget = W.VBox([self.title, W.HBox([self.bar, self.label])])
        self._stage: str | None = None
        self._sent = 0.0
        self.calls = 0

    def __call__(self, stage: str, done: int, total: int, detail: str = "") -> None:
        self.calls += 1
        now = time.monotonic()
        if stage == self._stage and done < total and now - self._sent < 0.1:
            return
        self._stage, self._sent = stage, now
        total = max(int(total or 0), 1)
        with self.bar.hold_sync():
            self.bar.max = total
            self.bar.value = max(0, min(int(done or 0), total))
        text = f"{stage}: {done}/{total}" + (f" · {detail}" if detail else "")
        self.label.value = esc(text)

    def finish(self, text: str, ok: bool = True) -> None:
        """Show the outcome; the bar turns green, or red when ``ok`` is false."""
        self.bar.value = self.bar.max
        self.bar.bar_style = "success" if ok else "danger"
        self.label.value = esc(text)
