"""The plain-text views: every phrase a person reads, worded once.

The command line prints these lines, the magic shows them as ``text/plain``,
``htmlview`` escapes and lays out the same phrases, and the API sends them
finished (``server/bodies.py``) so the panel shows them as they are. Text from
repositories and people goes through ``escapes.visible`` on its way to a
terminal. No Jupyter imports, and nothing heavy: the magic imports this module
inside its commands, never at ``%load_ext``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .badges import badge_text
from .escapes import visible, visible_lines
from .model import ProgressEntry, RegisteredSource, Snippet, Source
from .titles import headline

if TYPE_CHECKING:
    from .library import LibraryStatus, SearchResult


def terminal_text(text: str) -> str:
    """``text`` as lines for a terminal: each line ``escapes.visible`` (terminal escapes, bidi
    overrides, tabs written as escapes), so titles, code and outputs from repositories cannot
    steer the terminal. Only for text whose line breaks are meant; a field that must stay on
    its line (a title, a file name) goes through ``visible`` itself."""
    return "\n".join(visible_lines(text))


def _plural(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


# ---------------------------------------------------------------- search


def result_lines(results: list[SearchResult]) -> list[str]:
    """Plain-text lines for ranked results (title, API, summary, where), after the notice if any."""
    notice = getattr(results, "notice", None)
    lines = [notice] if notice else []
    for r in results:
        s = r.snippet
        head = headline(s)
        lines.append(f"{r.rank:>3}. {head.title}  ·  {s.package_or_repository}  {badge_text(s)}")
        if head.api:
            lines.append(f"     {head.api}")
        if head.summary:
            lines.append(f"     {head.summary}")
        lines.append(f"     {s.id}  {s.source.where()}"
                     + (f"  (lacks: {' '.join(r.missing)})" if r.missing else ""))
    return [visible(line) for line in lines]


def no_results_line(notice: str | None, total: int) -> str:
    """What an empty search says: the notice (or "no snippets match") and the library's size."""
    return (notice or "no snippets match") + f"; the library holds {total}"


def building_note(progress: Mapping[str, int] | None) -> str:
    """One sentence saying the library is still being built and how far it is; empty when built.
    ``progress`` is ``Library.building()``."""
    if not progress:
        return ""
    return (f"The library is still being built: {progress['snippets']} snippets so far, "
            f"{progress['validated']} validated, {progress['pending']} waiting; results will grow.")


# ---------------------------------------------------------------- one snippet


_NOT_PASSED = {
    "failed": "failed when it was run",
    "timeout": "ran out of time when it was run",
    "skipped": "was not run",
    "stale": "passed, but with package versions that have changed since",
    "pending": "has not been run yet",
}


def validation_note(s: Snippet) -> str | None:
    """Why running ``s`` needs a second thought, or None when it passed validation."""
    v = s.validation
    if v.status == "passed":
        return None
    why = f" ({v.reason})" if v.reason else ""
    return f"This code has not passed validation: it {_NOT_PASSED.get(v.status, v.status)}{why}."


@dataclass
class ProvenanceRow:
    """One labelled line of a snippet's provenance, as every view shows it."""

    label: str
    text: str


@dataclass
class HistoryEvent:
    """One review or flag of a snippet, oldest first, as every view words it."""

    when: str
    text: str


def provenance_rows(s: Snippet) -> list[ProvenanceRow]:
    """Where ``s`` came from, how it was made and checked, who reviewed it, its flags: the rows
    of every provenance view (``why``, the HTML view, the panel's details)."""
    src, v, o = s.source, s.validation, s.origin
    rows = [("source", f"{src.kind} {src.url}".rstrip())]
    if src.commit:
        rows.append(("commit", src.commit))
    if src.package:
        rows.append(("package", f"{src.package} {src.version or ''}".rstrip()))
    if src.layer == "repository":
        rows.append(("upstream", f"repository at tag {src.tag} ({src.repository}@{src.commit})"))
    elif src.layer == "sdist":
        rows.append(("upstream", f"sdist {src.sdist} sha256 {src.sdist_sha256} from {src.index_url}"))
    rows.append(("file", src.where()))
    for place in s.also_at:  # near-duplicates merged into this snippet
        other = Source(kind=src.kind, path=place.path, line_start=place.line_start, line_end=place.line_end)
        rows.append(("also at", other.where()))
    link = src.link()
    if link:
        rows.append(("link", link))
    rows.append(("license", src.license or "unknown"))
    made = o.kind + (f" by {o.model}" if o.model else "")
    context = o.details.get("context_lines")
    if context:
        made += f" ({_plural(context, 'line')} of set-up from earlier in the file)"
    if o.prompt_version:
        made += f" (prompt {o.prompt_version})"
    rows.append(("made", made))
    rows.append(("validation", v.status + (f" ({v.reason})" if v.reason else "")
                 + (f" on {v.when}" if v.when else "")))
    if v.interpreter:
        rows.append(("python", f"{v.python_version or ''} at {v.interpreter}".strip()))
    if v.duration is not None:
        rows.append(("took", f"{v.duration:.2f} s, exit code {v.exit_code}"))
    if v.isolation:
        rows.append(("sandbox", v.isolation))
    if v.packages:
        rows.append(("packages", ", ".join(f"{k} {val}" for k, val in sorted(v.packages.items()))))
    rows.append(("review", s.review.status))
    rows.append(("flags", f"{len(s.open_flags)} open, {len(s.flags)} in all"))
    return [ProvenanceRow(label, text) for label, text in rows]


def flag_state(f: Any) -> str:
    """``open``, or who resolved the flag and how."""
    if not f.resolved:
        return "open"
    return f"resolved by {f.resolved_by}" + (f": {f.resolution}" if f.resolution else "")


def history_events(s: Snippet) -> list[HistoryEvent]:
    """The reviews and flags of ``s``, oldest first."""
    events = [HistoryEvent(e.when, f"{e.status} revision {e.revision} by {e.by}"
                           + (f": {e.note}" if e.note else "")) for e in s.review.history]
    events += [HistoryEvent(f.when, f"flag #{f.id} [{f.kind}] {f.reason} by {f.by} ({flag_state(f)})")
               for f in s.flags]
    return sorted(events, key=lambda e: e.when)


def provenance_title(s: Snippet) -> str:
    """The first line of a provenance view: title, id, revision, lifecycle."""
    return f"{s.title or '(untitled)'}  ({s.id}, revision {s.revision}, {s.lifecycle})"


def snippet_text(s: Snippet) -> str:
    """A snippet as a person reads it on a terminal: header, badges, caution, flags, code."""
    head = headline(s)
    lines = [
        head.title,
        *([head.api] if head.api else []),
        f"id {s.id}  revision {s.revision}  {badge_text(s)}",
        f"from {s.package_or_repository}: {s.source.where()}",
        f"license {s.source.license}",
    ]
    if head.summary:
        lines.append(head.summary)
    note = validation_note(s)
    if note:
        lines.append(note)
    for f in s.flags:
        lines.append(f"flag {f.id} [{f.kind}] {f.reason} ({f.by}, {f.when}; {flag_state(f)})")
    return "\n".join([visible(line) for line in lines] + [""] + visible_lines(s.code.rstrip("\n")))


def provenance_text(s: Snippet) -> str:
    """The full provenance of ``s`` for a terminal: the rows, what the run printed and showed,
    the validation note, the history."""
    v = s.validation
    lines = [provenance_title(s)]
    for row in provenance_rows(s):
        lines.append(f"{row.label:<10} {row.text}")
    for label, tail in (("stdout", v.stdout_tail), ("stderr", v.stderr_tail)):
        if tail:
            lines.append(f"  {label} (tail):")
            lines += ["    " + t for t in visible_lines(tail.rstrip("\n"))[-10:]]
    for o in v.outputs:  # what it showed (figures: GET figures/{sha256}, %distill show)
        if o.kind == "figure":
            lines.append(f"  showed   {o.label}: {o.width}x{o.height} PNG, figure {o.sha256}")
        elif o.kind == "text":
            lines.append(f"  showed   {o.label}{' (cut)' if o.truncated else ''}:")
            lines += ["    " + t for t in visible_lines(o.text)[:10]]
        else:
            lines.append(f"  note     {visible_lines(o.text)[0] if o.text else ''}")
    note = validation_note(s)
    if note:
        lines.append(note)
    events = history_events(s)
    if events:
        lines.append("history")
        lines += [f"  {e.when} {e.text}" for e in events]
    return "\n".join(visible(line) for line in lines)  # idempotent on the escaped tail lines


# ---------------------------------------------------------------- progress and status


_DOING = {
    "fetch": "Fetching",
    "extract": "Reading",
    "store": "Saving",
    "validate": "Validating",
    "defaults": "Adding the default sources",
    "start": "Starting an update of",
    "done": "Done",
}


def progress_phrase(step: str, done: int, total: int, detail: str = "", source: str | None = None) -> str:
    """A job's step in words: ``Validating lifelines: 18 of 36 (path)``. The one wording of
    progress: live bars (CLI, magic, widgets) and published entries (status, panel) use it."""
    if step == "start":
        return f"{_DOING[step]} {_plural(total, 'source')}"
    text = _DOING.get(step) or (step[:1].upper() + step[1:])
    if source:
        text += f" {source}"
    if total and step not in ("defaults", "done"):
        text += f": {done} of {total}"
    if detail:
        text += f" ({detail})"
    return text


def progress_line(entry: ProgressEntry) -> str:
    """What a long job published, as a phrase: ``Validating lifelines: 18 of 36 (path)``,
    ``idle, last pass ...``, ``stopped``, or ``not running (last seen: ...)``."""
    if entry.resting:
        text = "stopped" if "stopped" in (entry.state, entry.step) else "idle"
        if entry.last_cycle:
            text += f", last pass {entry.last_cycle}"
        if entry.detail and text.startswith("idle"):
            text += f": {entry.detail}"
        return text
    text = progress_phrase(entry.step, entry.done, entry.total, entry.detail, entry.source)
    if entry.alive is False:
        when = f" at {entry.updated}" if entry.updated else ""
        return f"not running (last seen: {text}{when})"
    return text


def activity_line(progress: Mapping[str, ProgressEntry]) -> str:
    """What the background work is doing, as one phrase: the refresh's entry when it is active,
    else the daemon's; ``Library up to date`` when all rest."""
    keys = list(dict.fromkeys(["distiller", "daemon", *sorted(progress)]))
    entries = [progress[k] for k in keys if k in progress]
    for entry in entries:
        if not entry.resting and entry.step:
            phrase = progress_phrase(entry.step, entry.done, entry.total, source=entry.source)
            if entry.alive is False:
                return f"Stopped while {phrase[:1].lower()}{phrase[1:]}"
            return phrase
    daemon = progress.get("daemon")
    if daemon is not None and daemon.alive is False:
        return "Background updates are not running"
    return "Library up to date" if entries else "Library idle"


def status_line(st: LibraryStatus, refresh: Mapping[str, Any] | None = None) -> str:
    """The library in one line: size, flags, a refresh the API started (``refresh``: its job),
    and the background activity: ``3 snippets · 1 flagged · Library up to date``."""
    parts = [_plural(st.snippets, "snippet")]
    if st.flagged:
        parts.append(f"{st.flagged} flagged")
    state = (refresh or {}).get("state")
    if state == "failed":
        parts.append(f"the last update failed (exit code {refresh['exit_code']})")  # type: ignore[index]
    activity = activity_line(st.progress)
    parts.append("Updating…" if state == "running" and activity == "Library up to date" else activity)
    return " · ".join(parts)


def status_text(st: LibraryStatus) -> str:
    """``Library.status()`` as lines for a terminal, after the status line."""
    lines = [
        status_line(st),
        f"library    {st.path} ({st.size_bytes // 1024} KiB, schema {st.schema_version})",
        f"snippets   {st.snippets} active, {st.retired} retired, {st.flagged} flagged",
    ]
    for key in ("validation", "review", "origin"):
        parts = ", ".join(f"{v} {k}" for k, v in sorted(getattr(st, key).items())) or "none"
        lines.append(f"{key:<10} {parts}")
    lines.append(f"sources    {len(st.sources)}")
    for src in st.sources:
        pin = src.last_commit or src.last_version or "never distilled"
        lines.append(f"  {src.id:<20} {src.state:<7} {pin}  {src.last_refresh or ''}")
    lines += [f"{key:<10} {progress_line(entry)}" for key, entry in st.progress.items()]
    if st.isolation:
        from .distill.sandbox.settings import weakest_isolation

        weakest = weakest_isolation(st.isolation)
        lines.append(f"sandbox    weakest isolation in use: {weakest} ({st.isolation[weakest]} snippets)")
    return "\n".join(visible(line) for line in lines) + "\n"


def report_lines(report: Any) -> list[str]:
    """A refresh or LLM report as lines: its summary, then one line per problem."""
    return visible_lines(report.summary()) + [f"  {visible(problem)}" for problem in report.problems]


# ---------------------------------------------------------------- sources and changes


def added_line(src: RegisteredSource, prog: str) -> str:
    """What registering ``src`` did, and how to distil it."""
    if src.kind == "package":
        what = f"{src.settings.package} {src.settings.version_at_add}"
    else:
        head = (src.settings.head_at_add or "")[:12]
        what = f"{src.url} at {head}" + (f" on {src.settings.ref}" if src.settings.ref else "")
    return visible(f"added {src.kind} source {src.id}: {what}, license {src.license}; "
                   f"distil it with `{prog} refresh {src.id}`")


def flag_raised_line(f: Any, snippet_id: str) -> str:
    """What raising flag ``f`` on ``snippet_id`` did."""
    return visible(f"flag {f.id} [{f.kind}] raised on {snippet_id} by {f.by}")


def flag_resolved_line(f: Any, snippet_id: str) -> str:
    """What resolving flag ``f`` of ``snippet_id`` did."""
    return visible(f"flag {f.id} on {snippet_id} resolved by {f.resolved_by}")


def reviewed_line(e: Any, snippet_id: str) -> str:
    """What recording review event ``e`` of ``snippet_id`` did."""
    return visible(f"revision {e.revision} of {snippet_id} {e.status} by {e.by}")


def removed_line(source_id: str, retired: int) -> str:
    return visible(f"removed source {source_id}; {retired} snippets retired (kept for audits)")


def source_lines(rows: list[dict[str, Any]], prog: str) -> list[str]:
    """Registered sources (``sources.describe`` rows) as a table for a terminal."""
    if not rows:
        return [f"no sources; add one with `{prog} add URL|PATH|pkg:NAME`"]
    lines = []
    for r in rows:
        pin = r["pin"][:12] if r["pin"] else "never distilled"
        lines.append(f"{r['id']:<20} {r['kind']:<8} {r['state']:<6} {pin:<15} "
                     f"{r['last_refresh'] or '-':<26} {r['url']}")
        if r["last_error"]:
            lines.append(f"{'':<20} error: {r['last_error']}"
                         + (f" ({r['last_error_when']})" if r["last_error_when"] else ""))
        lines += [f"{'':<20} {layer}" for layer in r.get("layers") or []]
    return [visible(line) for line in lines]
