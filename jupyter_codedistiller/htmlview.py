"""HTML views of results, snippets, provenance and library status, for notebook output.

Every piece of text that comes from the library (titles, summaries, code,
paths, reasons, notes, URLs) is escaped here; links are emitted only for
``http(s)`` URLs. Styles are inline because notebook output carries no
stylesheet of ours. The phrases are ``textview``'s, laid out and escaped; no Jupyter
imports: the functions return strings.
"""

from __future__ import annotations

import base64
import html
from collections.abc import Iterable, Sequence
from typing import Any
from urllib.parse import urlsplit

from .badges import Badge, badges
from .figures import FigureStore
from .library import LibraryStatus, SearchResult
from .model import RegisteredSource, Snippet
from .textview import flag_state, history_events, progress_line, provenance_rows, status_line, validation_note
from .titles import headline

_LEVEL_STYLE = {
    "good": "background:#e6f4ea;color:#1e6b34;border-color:#9fd3ad",
    "info": "background:#eef1f5;color:#3c4650;border-color:#c6ced8",
    "warn": "background:#fff4e0;color:#8a4b00;border-color:#f0c27a",
    "bad": "background:#fde8e8;color:#a11b1b;border-color:#f1a7a7",
}
_BOX = "font-family:var(--jp-ui-font-family,sans-serif);font-size:13px;line-height:1.45"
_PRE = ("margin:4px 0;padding:6px 8px;background:var(--jp-layout-color2,#f6f8fa);"
        "border-radius:4px;overflow-x:auto;font-size:12px;white-space:pre")
_MUTED = "color:var(--jp-ui-font-color2,#666)"


def esc(value: object) -> str:
    """``value`` as text safe inside HTML content and quoted attributes."""
    return html.escape("" if value is None else str(value), quote=True)


def safe_href(url: str | None) -> str | None:
    """``url`` escaped for an ``href`` if it is a plain http(s) URL, else None."""
    if not url or any(c.isspace() or ord(c) < 32 or ord(c) == 127 for c in url):
        return None
    try:
        parts = urlsplit(url)
    except ValueError:
        return None
    if parts.scheme.lower() not in ("http", "https") or not parts.netloc:
        return None
    return esc(url)


def link(url: str | None, label: str | None = None) -> str:
    """An anchor opening ``url`` in a new tab, or the escaped label/URL as text if unsafe."""
    href = safe_href(url)
    text = esc(label if label is not None else url or "")
    if href is None:
        return text
    return f'<a href="{href}" target="_blank" rel="noopener noreferrer">{text}</a>'


def badge_html(b: Badge) -> str:
    style = _LEVEL_STYLE.get(b.level, _LEVEL_STYLE["info"])
    return (f'<span class="cd-badge cd-{esc(b.kind)} cd-{esc(b.level)}" title="{esc(b.kind)}" '
            f'style="display:inline-block;padding:0 6px;margin:0 3px 0 0;border:1px solid;'
            f'border-radius:8px;font-size:11px;{style}">{esc(b.label)}</span>')


def badges_html(s: Snippet) -> str:
    return "".join(badge_html(b) for b in badges(s))


def result_html(r: SearchResult) -> str:
    """One ranked hit: rank, title, package or repository, badges, file and id, summary."""
    s = r.snippet
    head = headline(s)
    lacks = f" · lacks: {' '.join(r.missing)}" if r.missing else ""
    return (
        f'<div class="cd-result" style="{_BOX};padding:4px 0">'
        f'<b>{r.rank}.</b> <b>{esc(head.title)}</b> '
        f'<span style="{_MUTED}">· {esc(s.package_or_repository)}</span> '
        f"{badges_html(s)}"
        + (f'<div class="cd-api" style="font-size:12px"><code>{esc(head.api)}</code></div>' if head.api else "")
        + (f'<div style="font-size:12px">{esc(head.summary)}</div>' if head.summary else "")
        + f'<div style="{_MUTED};font-size:12px"><code>{esc(s.id)}</code> {esc(s.source.where())}'
        f" · {esc(s.source.license)}{esc(lacks)}</div>"
        + "</div>"
    )


def results_html(results: Sequence[SearchResult], *, query: str = "", total: int | None = None,
                 hint: bool = True) -> str:
    """The ranked list for a search; ``hint`` adds how to insert or inspect a result."""
    notice = getattr(results, "notice", None)
    if not results:
        held = f"; the library holds {total}" if total is not None else ""
        said = notice[0].upper() + notice[1:] if notice else f"No snippets match “{query}”"
        return f'<div style="{_BOX}">{esc(said)}{esc(held)}.</div>'
    body = "".join(result_html(r) for r in results)
    if notice:
        body = f'<div class="cd-notice" style="{_MUTED}">{esc(notice[0].upper() + notice[1:])}</div>' + body
    foot = ""
    if hint:
        foot = (f'<div style="{_MUTED};font-size:12px;margin-top:4px">'
                "<code>%distill insert N</code> puts result N in a new cell below; "
                "<code>%distill why N</code> shows where it came from.</div>")
    return f'<div class="cd-results" style="{_BOX}">{body}{foot}</div>'


def code_html(code: str) -> str:
    return f'<pre style="{_PRE}"><code>{esc(code.rstrip(chr(10)))}</code></pre>'


def _flag_line(f: Any) -> str:
    state = flag_state(f)
    return (f"#{esc(f.id)} [{esc(f.kind)}] {esc(f.reason)} "
            f'<span style="{_MUTED}">({esc(f.by)}, {esc(f.when)}; {esc(state)})</span>')


def outputs_html(s: Snippet, figures: FigureStore | None, printed: bool = False) -> str:
    """What the snippet showed when validated: its figures (the stored, checked PNGs, inline as
    data URIs), its results and (``printed``) the tail of what it printed, as escaped text
    (never as HTML); empty if it showed nothing."""
    parts = []
    for o in s.validation.outputs:
        if o.kind == "figure" and figures is not None and o.sha256:
            data = figures.get(o.sha256)
            if data:
                uri = "data:image/png;base64," + base64.b64encode(data).decode("ascii")
                parts.append(f'<img class="cd-figure" src="{uri}" alt="{esc(o.label)}" '
                             f'width="{int(o.width or 0) or ""}" style="max-width:100%;height:auto;'
                             f'display:block;margin:4px 0">')
        elif o.kind == "text":
            more = " (cut)" if o.truncated else ""
            parts.append(f'<div style="{_MUTED};font-size:12px">{esc(o.label)}{more}</div>'
                         f'<pre style="{_PRE}">{esc(o.text)}</pre>')
        elif o.kind == "note":
            parts.append(f'<div style="{_MUTED};font-size:12px">{esc(o.text)}</div>')
    tail = s.validation.stdout_tail.rstrip("\n")
    if printed and tail:
        parts.append(f'<div style="{_MUTED};font-size:12px">Printed</div>'
                     f'<pre style="{_PRE}">{esc(chr(10).join(tail.splitlines()[-20:]))}</pre>')
    if not parts:
        return ""
    return '<div class="cd-outputs">' + "".join(parts) + "</div>"


def snippet_html(s: Snippet, figures: FigureStore | None = None) -> str:
    """A snippet as a person reads it: title, badges, where from, summary, flags, code, and
    what it showed when validated (figures from ``figures``)."""
    head = headline(s)
    parts = [
        f'<div class="cd-snippet" style="{_BOX}">',
        f"<b>{esc(head.title)}</b> {badges_html(s)}",
        *([f"<div><code>{esc(head.api)}</code></div>"] if head.api else []),
        f'<div style="{_MUTED};font-size:12px"><code>{esc(s.id)}</code> revision {s.revision}'
        f" · from {link(s.source.link(), s.package_or_repository)}: {esc(s.source.where())}"
        f" · license {esc(s.source.license)}</div>",
    ]
    if head.summary:
        parts.append(f"<div>{esc(head.summary)}</div>")
    note = validation_note(s)
    if note:
        parts.append(message_html(note, "warn"))
    for f in s.flags:
        parts.append(f'<div style="font-size:12px">flag {_flag_line(f)}</div>')
    parts.append(code_html(s.code))
    parts.append(outputs_html(s, figures, printed=True))
    parts.append("</div>")
    return "".join(parts)


def _rows(rows: Iterable[tuple[str, str]]) -> str:
    cells = "".join(
        f'<tr><th style="text-align:left;vertical-align:top;padding:1px 10px 1px 0;'
        f'font-weight:600;white-space:nowrap">{esc(k)}</th>'
        f'<td style="text-align:left;padding:1px 0">{v}</td></tr>'
        for k, v in rows
    )
    return f'<table style="border-collapse:collapse;margin:2px 0">{cells}</table>'


def provenance_html(s: Snippet, figures: FigureStore | None = None) -> str:
    """The full provenance: the rows of ``textview.provenance_rows`` (the URL and the link
    clickable), what the run printed and showed, the validation note, the history.

    Values are passed through :func:`esc`; the caller gets markup only of our own making.
    """
    src, v = s.source, s.validation
    rows: list[tuple[str, str]] = []
    for row in provenance_rows(s):
        if row.label == "source" and src.url:
            value = f"{esc(src.kind)} {link(src.url)}"
        elif row.label == "link":
            value = link(row.text)
        elif row.label == "commit":
            value = f"<code>{esc(row.text)}</code>"
        else:
            value = esc(row.text)
        rows.append((row.label, value))
    for label, tail in (("stdout (tail)", v.stdout_tail), ("stderr (tail)", v.stderr_tail)):
        if tail:
            text = "\n".join(tail.rstrip("\n").splitlines()[-10:])
            rows.append((label, f'<pre style="{_PRE}">{esc(text)}</pre>'))
    events = history_events(s)
    if events:
        rows.append(("history", "".join(f"<div>{esc(e.when)} {esc(e.text)}</div>" for e in events)))
    shown = outputs_html(s, figures)
    if shown:
        rows.append(("showed", shown))
    note = validation_note(s)
    return (
        f'<div class="cd-why" style="{_BOX}">'
        f"<b>{esc(s.title or '(untitled)')}</b> "
        f'<span style="{_MUTED}">(<code>{esc(s.id)}</code>, revision {s.revision}, '
        f"{esc(s.lifecycle)})</span> {badges_html(s)}"
        + (message_html(note, "warn") if note else "")
        + f"{_rows(rows)}</div>"
    )


def message_html(text: str, level: str = "info") -> str:
    """One line of feedback; ``level`` is good, info, warn or bad."""
    style = _LEVEL_STYLE.get(level, _LEVEL_STYLE["info"])
    return (f'<div class="cd-message cd-{esc(level)}" style="{_BOX};padding:3px 8px;'
            f'border:1px solid;border-radius:4px;{style}">{esc(text)}</div>')


def status_html(st: LibraryStatus) -> str:
    """The status line, the library's size, counts by state, sources and what long jobs report."""
    rows = [
        ("library", esc(f"{st.path} ({st.size_bytes // 1024} KiB, schema {st.schema_version})")),
        ("snippets", esc(f"{st.snippets} active, {st.retired} retired, {st.flagged} flagged")),
    ]
    for key in ("validation", "review", "origin"):
        rows.append((key, esc(", ".join(f"{v} {k}" for k, v in sorted(getattr(st, key).items()))
                              or "none")))
    rows.append(("sources", str(len(st.sources))))
    for key, entry in st.progress.items():
        rows.append((key, esc(progress_line(entry))))
    body = f'<div class="cd-status-line"><b>{esc(status_line(st))}</b></div>' + _rows(rows)
    if st.sources:
        body += sources_html(st.sources)
    return f'<div class="cd-status" style="{_BOX}">{body}</div>'


def sources_html(sources: Sequence[RegisteredSource]) -> str:
    """A table of registered sources and how their last refresh went."""
    if not sources:
        return (f'<div style="{_BOX}">No sources registered; add one with '
                "<code>%distill add URL|PATH|pkg:NAME</code>.</div>")
    head = "".join(f'<th style="text-align:left;padding:1px 10px 1px 0">{h}</th>'
                   for h in ("id", "kind", "location", "state", "pinned at", "last refresh"))
    body = ""
    for s in sources:
        pin = s.last_commit[:12] if s.last_commit else (s.last_version or "never distilled")
        state = esc(s.state) + (f': <span style="{_MUTED}">{esc(s.last_error)}</span>'
                                if s.last_error else "")
        cells = (esc(s.id), esc(s.kind), link(s.url) if safe_href(s.url) else esc(s.url),
                 state, f"<code>{esc(pin)}</code>", esc(s.last_refresh or ""))
        body += "<tr>" + "".join(
            f'<td style="text-align:left;padding:1px 10px 1px 0">{c}</td>' for c in cells
        ) + "</tr>"
    return (f'<table class="cd-sources" style="{_BOX};border-collapse:collapse">'
            f"<tr>{head}</tr>{body}</table>")
