"""ipywidgets views for the magic: search results with Insert and Why buttons, a progress bar.

Imported only by the commands that draw widgets, never at ``%load_ext``. The
views hold no library logic: the magic passes callbacks that return the HTML
to show under a result. Every bundle these views display also carries
``text/html`` and ``text/plain``, so a notebook read without a widget manager
(nbconvert, GitHub, a terminal) still shows the results.

A button cannot add a cell from the kernel: a click is a comm message, not an
execution, so a ``set_next_input`` payload raised in the callback would ride on
the reply to whatever cell runs next (jupyterlab/jupyterlab#8893). Each result
therefore carries an *insert offer* (``INSERT_MIME``) in an Output area of its
own, which the labextension renders as an Insert button. The offer names the
snippet id and revision and nothing else: kernel output is never trusted for a
cell's content (any code in the kernel can display this MIME type), so on a
person's click the front end fetches marker, code and provenance from the
authenticated server API and inserts those, refusing a revision the library no
longer holds or one the team policy blocks. Displaying an offer inserts
nothing. Front ends without the extension (classic notebook, VS Code,
nbclient) show its ``text/plain``: the ``%distill insert`` command.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any

import ipywidgets as W

from .htmlview import esc, result_html
from .library import SearchResult
from .textview import progress_phrase

DetailHandler = Callable[[SearchResult], str]

INSERT_MIME = "application/vnd.codedistiller.insert+json"
"""The MIME type of an insert offer; the labextension renders it as an Insert button."""


def insert_request(snippet_id: str, revision: int, *, text: str) -> dict[str, Any]:
    """A display bundle offering to insert revision ``revision`` of ``snippet_id`` below.

    ``INSERT_MIME`` holds ``{"snippet_id", "revision"}`` only: what the cell holds
    comes from the server when a person clicks. ``text`` is the ``text/plain``
    fallback for front ends without the extension.
    """
    return {INSERT_MIME: {"snippet_id": snippet_id, "revision": int(revision)}, "text/plain": text}


def insert_offer_text(snippet_id: str) -> str:
    """The plain-text side of an offer: the command that inserts it anywhere."""
    return f"Run  %distill insert {snippet_id}  in a cell to put this result in a new cell below."


def bundle(widget: W.Widget, html: str, text: str) -> dict[str, Any]:
    """A display bundle: the widget view, with HTML and plain-text fallbacks."""
    data = dict(widget._repr_mimebundle_())
    data["text/html"] = html
    data["text/plain"] = text
    return data


class ResultsView:
    """Ranked results, each with an insert offer, a Why button and a detail area below it.

    The offer (``insert_request``, in ``offers[i]``, an Output area) is rendered
    by the labextension as an Insert button; Why toggles the provenance in the
    detail area.
    """

    def __init__(self, results: Sequence[SearchResult], *, on_why: DetailHandler,
                 footer_html: str = "") -> None:
        self.results = list(results)
        self.offers: list[W.Output] = []
        self.why_buttons: list[W.Button] = []
        self.details: list[W.HTML] = []
        self._showing: list[str | None] = []
        rows = []
        for r in self.results:
            detail = W.HTML("")
            offer = W.Output(layout=W.Layout(flex="0 0 auto"))
            # Set as state, not captured from a display call: the Output shows exactly this offer.
            offer.outputs = ({"output_type": "display_data", "metadata": {},
                              "data": insert_request(r.snippet.id, r.snippet.revision,
                                                     text=insert_offer_text(r.snippet.id))},)
            why = W.Button(description="Why", icon="info-circle",
                           tooltip=f"Where result {r.rank} came from and how it was checked",
                           layout=W.Layout(width="90px"))
            i = len(self.details)
            why.on_click(lambda _b, i=i: self._toggle(i, "why", on_why))
            self.offers.append(offer)
            self.why_buttons.append(why)
            self.details.append(detail)
            self._showing.append(None)
            head = W.HTML(result_html(r), layout=W.Layout(flex="1 1 auto"))
            buttons = W.HBox([offer, why], layout=W.Layout(flex="0 0 auto", align_items="center"))
            rows.append(W.VBox([W.HBox([head, buttons]), detail]))
        if footer_html:
            rows.append(W.HTML(footer_html))
        self.widget = W.VBox(rows)

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
    """A progress bar and a label, driven by ``progress(stage, done, total, detail, source)`` calls.

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

    def __call__(self, stage: str, done: int, total: int, detail: str = "", source: str = "") -> None:
        self.calls += 1
        now = time.monotonic()
        if stage == self._stage and done < total and now - self._sent < 0.1:
            return
        self._stage, self._sent = stage, now
        total = max(int(total or 0), 1)
        with self.bar.hold_sync():
            self.bar.max = total
            self.bar.value = max(0, min(int(done or 0), total))
        self.label.value = esc(progress_phrase(stage, done, total, detail, source))

    def finish(self, text: str, ok: bool = True) -> None:
        """Show the outcome; the bar turns green, or red when ``ok`` is false."""
        self.bar.value = self.bar.max
        self.bar.bar_style = "success" if ok else "danger"
        self.label.value = esc(text)
