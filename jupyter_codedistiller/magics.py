"""The ``%distill`` line magic: the CLI's grammar over the library, rendered for notebooks.

Importing this module costs almost nothing: it needs only what an IPython
shell has already loaded. The grammar, the library, the HTML views, ipywidgets
and the distiller are imported by the commands that use them.

One ``DistillMagics`` instance lives per shell. It opens the library on first
use (``--home``, else ``$CODEDISTILLER_HOME``, else the default home), keeps it
open, and reopens it if the database file is replaced. It remembers the last
search's results so that ``N`` works wherever a snippet id does.
"""

from __future__ import annotations

import io
import json
import os
import shlex
import sys
import time
from typing import TYPE_CHECKING, Any

from IPython.core.error import UsageError
from IPython.core.magic import Magics, line_magic, magics_class
from traitlets import CaselessStrEnum

if TYPE_CHECKING:
    import argparse

    from .library import Library, SearchResult
    from .model import Snippet

PROG = "%distill"

SUMMARY = """Search, insert and check code examples from the local codedistiller library.

Examples::

    %distill search kaplan meier by group    rank the library (filters: --package, --validation, ...)
    %distill insert 1                        put result 1 in a new cell below, under a provenance
                                             marker line (--force for flagged, failed, rejected)
    %distill why 1                           where result 1 came from and how it was checked
    %distill show ID                         title, badges, flags and code
    %distill flag ID --reason TEXT           raise a flag; resolve ID FLAG closes it
    %distill review ID --approve|--reject    record a review of the current revision
    %distill add URL|PATH|pkg:NAME           register a source; refresh distils it
    %distill sources | status                what the library holds and where it reads from
    %distill audit [NOTEBOOK]                which cells came from the library, edited since,
                                             what the library says now, methods paragraph

N, a result number from the last search, is accepted wherever an ID is.
With ipywidgets, search results carry Insert and Why buttons. Insert follows
the same --force rules as %distill insert; in JupyterLab with the codedistiller
extension it puts the cell below, elsewhere it shows the cell text to copy.
``%distill COMMAND --help`` shows one command's options. The library is in
``$CODEDISTILLER_HOME`` unless ``--home`` says otherwise (``%distill --home DIR search ...``).
"""


# Commands that would tie up the kernel: they belong in a terminal.
TERMINAL_ONLY = {
    "daemon": "the daemon runs until stopped; start it in a terminal: codedistiller daemon",
    "mcp": "the MCP server talks to an agent over standard input and output; the agent starts it: codedistiller mcp",
}


def full_help() -> str:
    """The summary plus the grammar's own help and every command's usage."""
    import argparse

    from .grammar import build_parser

    parser = build_parser(PROG)
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    usages = "".join(p.format_usage() for p in sub.choices.values())
    return f"{SUMMARY}\n{parser.format_help()}\nCommand usage:\n{usages}"


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__


def _file_identity(path: os.PathLike[str] | str) -> tuple[int, int] | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (st.st_dev, st.st_ino)


@magics_class
class DistillMagics(Magics):
    """``%distill``: search, insert, why, show, flag, resolve, review, add, refresh, sources, status, audit."""

    widgets = CaselessStrEnum(
        ("auto", "on", "off"), default_value="auto",
        help="Draw results and progress with ipywidgets: auto (in a kernel, when ipywidgets is "
             "installed), on or off. $CODEDISTILLER_WIDGETS overrides it.",
    ).tag(config=True)

    def __init__(self, shell: Any = None, **kwargs: Any) -> None:
        super().__init__(shell=shell, **kwargs)
        self._libraries: dict[str, tuple[Library, tuple[int, int] | None]] = {}
        self.last_results: list[str] = []
        self.last_library: str | None = None
        self.last_view: Any = None  # the last ResultsView drawn, for tests and debugging
        self.last_progress: Any = None

    # ------------------------------------------------------------ the magic

    @line_magic
    def distill(self, line: str) -> None:
        # The docstring is SUMMARY (set below); `%distill?` adds the grammar's help via getdoc.
        import sqlite3

        from .grammar import CommandError, GrammarError, HelpShown, parse
        from .library import LibraryError

        try:
            argv = shlex.split(line, posix=os.name != "nt")
        except ValueError as exc:
            raise UsageError(f"{PROG}: cannot split the line: {exc}; quote or escape it") from None
        try:
            args = parse(argv, PROG)
        except HelpShown as shown:
            print(shown.text, end="")
            return None
        except GrammarError as exc:
            raise UsageError(_one_line(exc)) from None
        handler = getattr(self, f"_cmd_{args.command}", None)
        try:
            if handler is not None:
                handler(args)
            else:
                self._cli_command(args)
        except (LibraryError, CommandError) as exc:
            raise UsageError(f"{PROG} {args.command}: {_one_line(exc)}") from None
        except sqlite3.Error as exc:
            raise UsageError(f"{PROG} {args.command}: the library database failed: "
                             f"{_one_line(exc)}") from None
        return None

    distill.__doc__ = SUMMARY
    distill.getdoc = full_help  # type: ignore[attr-defined]  # IPython's `?` asks getdoc() first

    # ------------------------------------------------------------ state

    def library(self, home: str | None = None) -> Library:
        """The library at ``home`` (default: $CODEDISTILLER_HOME), opened once and kept."""
        from .home import library_path
        from .library import Library

        path = library_path(home)
        key = os.path.abspath(path)
        cached = self._libraries.get(key)
        if cached is not None:
            lib, identity = cached
            if identity is not None and identity == _file_identity(path):
                return lib
            lib.close()
            del self._libraries[key]
        lib = Library(path)
        self._libraries[key] = (lib, _file_identity(path))
        return lib

    def close(self) -> None:
        """Close every library this shell opened."""
        for lib, _ in self._libraries.values():
            lib.close()
        self._libraries.clear()

    def _remember(self, lib: Library, results: list[SearchResult]) -> None:
        self.last_results = [r.snippet.id for r in results]
        self.last_library = str(lib.path)

    def snippet(self, lib: Library, ref: str) -> Snippet:
        """The snippet ``ref`` names: a result number from the last search, or an id."""
        if ref.isdigit():
            n = int(ref)
            if not self.last_results:
                raise UsageError(f"{PROG}: no search results to take result {n} from; "
                                 "run %distill search first, or give a snippet id")
            if self.last_library != str(lib.path):
                raise UsageError(f"{PROG}: the last search was in another library "
                                 f"({self.last_library}); search again or give a snippet id")
            if not 1 <= n <= len(self.last_results):
                raise UsageError(f"{PROG}: the last search has results 1 to "
                                 f"{len(self.last_results)}, not {n}")
            ref = self.last_results[n - 1]
        return lib.get(ref)

    @staticmethod
    def policy(lib: Library) -> str:
        """The team's insert policy for ``lib`` (open, validated or reviewed)."""
        from .settings import SettingsError, load_settings

        try:
            return load_settings(lib.path.parent).policy
        except SettingsError as exc:
            raise UsageError(f"{PROG}: {_one_line(exc)}") from None

    def widgets_on(self) -> bool:
        """Whether to draw ipywidgets: the setting, a kernel to talk to, and ipywidgets installed."""
        mode = os.environ.get("CODEDISTILLER_WIDGETS", "").strip().lower() or self.widgets.lower()
        if mode in ("off", "0", "no", "false"):
            return False
        if mode not in ("on", "1", "yes", "true") and getattr(self.shell, "kernel", None) is None:
            return False
        try:
            import ipywidgets  # noqa: F401
        except ImportError:
            return False
        return True

    # ------------------------------------------------------------ output

    @staticmethod
    def _show(html: str, text: str) -> None:
        from IPython.display import display

        display({"text/html": html, "text/plain": text}, raw=True)

    @staticmethod
    def _print_json(data: Any) -> None:
        print(json.dumps(data, ensure_ascii=False, sort_keys=True))

    # ------------------------------------------------------------ commands

    def _cmd_search(self, args: argparse.Namespace) -> None:
        from .grammar import search_filters
        from .htmlview import results_html
        from .textview import building_note, no_results_line, result_lines

        lib = self.library(args.home)
        query = " ".join(args.query)
        results = lib.search(query, limit=args.limit, include_retired=args.include_retired,
                             **search_filters(args))
        self._remember(lib, results)
        if args.json:
            self._print_json([r.to_dict() for r in results])
            return
        note = building_note(lib.building())
        if note:
            from .htmlview import message_html

            self._show(message_html(note, "info"), note)
        if not results:
            total = lib.count()
            self._show(results_html(results, query=query, total=total),
                       no_results_line(results.notice, total))
            return
        text = "\n".join(result_lines(results))
        html = results_html(results, query=query)
        if not self.widgets_on():
            self._show(html, text)
            return
        from IPython.display import display

        from .htmlview import message_html
        from .widgets import ResultsView, bundle

        home = args.home
        view = ResultsView(
            results,
            on_why=lambda r: self._why_detail(home, r),
            footer_html=message_html(
                "Insert (JupyterLab with the codedistiller extension) fetches the result from the "
                "Jupyter server's library and puts it in a new cell below; %distill insert N works "
                "everywhere.",
                "info"),
        )
        self.last_view = view
        display(bundle(view.widget, html, text), raw=True)

    def _why_detail(self, home: str | None, r: SearchResult) -> str:
        from .htmlview import message_html, provenance_html
        from .library import LibraryError

        try:
            lib = self.library(home)
            return provenance_html(lib.get(r.snippet.id), lib.figures)
        except LibraryError as exc:
            return message_html(_one_line(exc), "bad")

    def _cmd_insert(self, args: argparse.Namespace) -> None:
        from .htmlview import message_html
        from .provenance import cell_source, insert_blockers, insert_warnings

        lib = self.library(args.home)
        s = self.snippet(lib, args.id)
        blockers = insert_blockers(s, self.policy(lib))
        if blockers and not args.force:
            raise UsageError(f"{PROG} insert: {s.id} is not inserted: {'; '.join(blockers)}; "
                             "use --force to insert it anyway")
        self.shell.set_next_input(cell_source(s), replace=False)
        notes = insert_warnings(s)
        if blockers:
            notes.append("inserted with --force although " + "; ".join(blockers))
        done = (f"inserted {s.id} revision {s.revision} ({s.title or 'untitled'}) "
                "into the next cell, under its provenance marker")
        html = message_html(done, "good") + "".join(message_html("Warning: " + n, "warn")
                                                    for n in notes)
        self._show(html, "\n".join([done] + ["Warning: " + n for n in notes]))

    def _cmd_why(self, args: argparse.Namespace) -> None:
        from .htmlview import provenance_html
        from .textview import provenance_text

        lib = self.library(args.home)
        s = self.snippet(lib, args.id)
        if args.json:
            print(s.to_json())
            return
        self._show(provenance_html(s, lib.figures), provenance_text(s))

    def _cmd_show(self, args: argparse.Namespace) -> None:
        from .htmlview import snippet_html
        from .textview import snippet_text

        lib = self.library(args.home)
        s = self.snippet(lib, args.id)
        if args.json:
            print(s.to_json())
            return
        self._show(snippet_html(s, lib.figures), snippet_text(s))

    def _changed(self, lib: Library, snippet_id: str, text: str, level: str) -> None:
        from .htmlview import badges_html, esc, message_html

        s = lib.get(snippet_id)
        html = message_html(text, level) + (
            f'<div style="font-size:12px;margin-top:2px">{esc(s.title or "(untitled)")} '
            f"{badges_html(s)}</div>")
        self._show(html, text)

    def _cmd_flag(self, args: argparse.Namespace) -> None:
        lib = self.library(args.home)
        s = self.snippet(lib, args.id)
        f = lib.flag(s.id, args.reason, kind=args.kind, by=args.by)
        from .textview import flag_raised_line

        self._changed(lib, s.id, flag_raised_line(f, s.id), "warn")

    def _cmd_resolve(self, args: argparse.Namespace) -> None:
        lib = self.library(args.home)
        s = self.snippet(lib, args.id)
        f = lib.resolve_flag(s.id, args.flag, note=args.note, by=args.by)
        from .textview import flag_resolved_line

        self._changed(lib, s.id, flag_resolved_line(f, s.id), "good")

    def _cmd_review(self, args: argparse.Namespace) -> None:
        lib = self.library(args.home)
        s = self.snippet(lib, args.id)
        e = lib.review(s.id, "approved" if args.approve else "rejected", note=args.note,
                       by=args.by)
        from .textview import reviewed_line

        self._changed(lib, s.id, reviewed_line(e, s.id), "good" if e.status == "approved" else "bad")

    def _cmd_status(self, args: argparse.Namespace) -> None:
        from .htmlview import status_html
        from .textview import status_text

        st = self.library(args.home).status()
        if args.json:
            self._print_json(st.to_dict())
            return
        self._show(status_html(st), status_text(st).rstrip("\n"))

    def _cmd_sources(self, args: argparse.Namespace) -> None:
        from .distill import sources
        from .htmlview import sources_html
        from .textview import source_lines

        lib = self.library(args.home)
        registered = lib.sources()
        rows = [sources.describe(s) for s in registered]
        if args.json:
            print(json.dumps(rows, ensure_ascii=False, sort_keys=True))
            return
        self._show(sources_html(registered), "\n".join(source_lines(rows, PROG)))

    def _cmd_add(self, args: argparse.Namespace) -> None:
        from .distill import sources
        from .htmlview import message_html
        from .textview import added_line

        src = sources.add(self.library(args.home), args.source, name=args.name,
                          upstream=not getattr(args, "no_upstream", False))
        text = added_line(src, PROG)
        self._show(message_html(text, "good"), text)

    def _cmd_remove(self, args: argparse.Namespace) -> None:
        from .distill import sources
        from .htmlview import message_html
        from .textview import removed_line

        text = removed_line(args.source, sources.remove(self.library(args.home), args.source))
        self._show(message_html(text, "good"), text)

    def _cmd_refresh(self, args: argparse.Namespace) -> None:
        """Run the distiller here, drawing its progress; the repositories' code runs in the sandbox."""
        from IPython.display import display

        from .distill.passes import refresh_pass
        from .htmlview import esc, message_html

        lib = self.library(args.home)
        view = None
        progress: Any
        if self.widgets_on():
            from .widgets import ProgressView, bundle

            view = ProgressView("codedistiller refresh")
            progress = view
            note = "codedistiller refresh: progress is shown live with ipywidgets"
            display(bundle(view.widget, message_html(note), note), raw=True)
        else:
            progress = TextProgress()
        self.last_progress = progress
        try:
            outcome = refresh_pass(lib, args.sources or None, workers=args.workers,
                                   validate=not args.no_validate, timeout=args.timeout,
                                   llm=getattr(args, "llm", False), cluster=args.cluster,
                                   progress=progress)
        except BaseException as exc:
            if view is not None:
                view.finish(f"stopped: {_one_line(exc)}", ok=False)
            raise
        for warning in outcome.warnings:
            print(f"{PROG}: {warning}", file=sys.stderr)
        lines = outcome.lines or [""]
        if view is not None:
            view.finish(lines[0], ok=outcome.failure is None)
        level = "bad" if outcome.failure else ("warn" if len(lines) > 1 else "good")
        html = message_html(lines[0], level) + "".join(
            f'<div style="font-size:12px">{esc(line.strip())}</div>' for line in lines[1:])
        self._show(html, "\n".join(lines))
        if outcome.failure is not None:
            raise UsageError(_one_line(f"{PROG} refresh: {outcome.failure}"))

    def _running_notebook(self) -> tuple[str, list[Any]]:
        """The running notebook's code cells: its file as last saved, else this session's inputs."""
        from .audit import CellInput, read_notebook

        ns = getattr(self.shell, "user_ns", {}) or {}
        for candidate in (ns.get("__session__"), os.environ.get("JPY_SESSION_NAME")):
            if candidate and str(candidate).endswith(".ipynb") and os.path.isfile(candidate):
                return f"{candidate} (as last saved)", read_notebook(candidate)
        inputs = [src for src in ns.get("In", [])[1:] if isinstance(src, str)]
        cells = [CellInput(index=i, source=src) for i, src in enumerate(inputs, 1)]
        return "this session's executed cells (numbered by execution)", cells

    def _cmd_audit(self, args: argparse.Namespace) -> None:
        from .audit import AuditError, audit, read_notebook, render, to_html, to_markdown

        lib = self.library(args.home)
        try:
            if args.notebook:
                name, cells = args.notebook, read_notebook(args.notebook)
            else:
                name, cells = self._running_notebook()
        except AuditError as exc:
            raise UsageError(f"{PROG} audit: {_one_line(exc)}") from None
        report = audit(cells, lib, notebook=name)
        if args.output:
            try:
                with open(args.output, "w", encoding="utf-8") as fh:
                    fh.write(render(report, args.format))
            except OSError as exc:
                raise UsageError(f"{PROG} audit: cannot write {args.output}: {exc.strerror}") from None
            print(f"audit written to {args.output}")
        elif args.format == "json":
            print(render(report, "json"), end="")
        else:
            self._show(to_html(report), to_markdown(report))

    def _cli_command(self, args: argparse.Namespace) -> None:
        """A command the magic has no view of its own for: the CLI's handler, its text printed."""
        from .cli import COMMANDS

        if args.command in TERMINAL_ONLY:
            raise UsageError(f"{PROG} {args.command}: {TERMINAL_ONLY[args.command]}")
        handler = COMMANDS.get(args.command)
        if handler is None:
            raise UsageError(f"{PROG} {args.command} is not available yet")
        if args.command == "import" and args.file == "-":
            raise UsageError(f"{PROG} import: give a file; standard input is for the command line")
        out = io.StringIO()
        handler(self.library(args.home), args, out)
        print(out.getvalue(), end="")


class TextProgress:
    """Refresh progress as text: one line per stage, and at most one update a second."""

    def __init__(self) -> None:
        from IPython.display import display

        self._handle = display({"text/plain": "starting…"}, raw=True, display_id=True)
        self._stage: str | None = None
        self._sent = 0.0
        self.last = ""

    def __call__(self, stage: str, done: int, total: int, detail: str = "", source: str = "") -> None:
        now = time.monotonic()
        if stage == self._stage and done < total and now - self._sent < 1.0:
            return
        self._stage, self._sent = stage, now
        from .textview import progress_phrase

        self.show(progress_phrase(stage, done, total, detail, source))

    def show(self, text: str) -> None:
        self.last = text
        if self._handle is not None:
            self._handle.update({"text/plain": text}, raw=True)
        else:
            print(text)
