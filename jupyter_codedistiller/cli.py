"""``codedistiller`` / ``jupyter codedistiller``: the command line over the library.

A thin adapter: parses with the shared grammar, calls the core (the library,
``distill.passes`` for a refresh), prints the phrases of ``textview`` or JSON.
Every error is one line on standard error and a non-zero exit: 2 for bad
usage, 1 for a request the library refused.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
from collections.abc import Callable
from typing import Any, TextIO

from .escapes import visible
from .grammar import CommandError, GrammarError, HelpShown, parse, search_filters
from .library import Library, LibraryError
from .textview import (
    added_line,
    building_note,
    flag_raised_line,
    flag_resolved_line,
    no_results_line,
    progress_phrase,
    provenance_text,
    removed_line,
    result_lines,
    reviewed_line,
    snippet_text,
    source_lines,
    status_text,
)

PROG = "codedistiller"


# ---------------------------------------------------------------- commands


def cmd_search(lib: Library, args: argparse.Namespace, out: TextIO) -> None:
    results = lib.search(" ".join(args.query), limit=args.limit,
                         include_retired=args.include_retired, **search_filters(args))
    if args.json:
        json.dump([r.to_dict() for r in results], out, ensure_ascii=False)
        out.write("\n")
        return

    note = building_note(lib.building())
    if note:
        out.write(note + "\n")
    if not results:
        out.write(visible(no_results_line(results.notice, lib.count())) + "\n")
        return
    out.write("\n".join(result_lines(results)) + "\n")


def cmd_show(lib: Library, args: argparse.Namespace, out: TextIO) -> None:
    s = lib.get(args.id)
    out.write((s.to_json() if args.json else snippet_text(s)) + "\n")


def cmd_why(lib: Library, args: argparse.Namespace, out: TextIO) -> None:
    s = lib.get(args.id)
    out.write((s.to_json() if args.json else provenance_text(s)) + "\n")


def cmd_flag(lib: Library, args: argparse.Namespace, out: TextIO) -> None:
    f = lib.flag(args.id, args.reason, kind=args.kind, by=args.by)
    out.write(flag_raised_line(f, lib.get(args.id).id) + "\n")


def cmd_resolve(lib: Library, args: argparse.Namespace, out: TextIO) -> None:
    f = lib.resolve_flag(args.id, args.flag, note=args.note, by=args.by)
    out.write(flag_resolved_line(f, lib.get(args.id).id) + "\n")


def cmd_review(lib: Library, args: argparse.Namespace, out: TextIO) -> None:
    e = lib.review(args.id, "approved" if args.approve else "rejected", note=args.note, by=args.by)
    out.write(reviewed_line(e, lib.get(args.id).id) + "\n")


def cmd_export(lib: Library, args: argparse.Namespace, out: TextIO) -> None:
    if args.file == "-":
        lib.export(out)
        return
    tmp = args.file + ".tmp"
    try:
        with open(tmp, "w", encoding="utf-8") as fh:
            n = lib.export(fh)
        os.replace(tmp, args.file)
    except OSError as exc:
        raise CommandError(f"cannot write {args.file}: {exc.strerror}") from None
    out.write(f"exported {n} snippets to {args.file}\n")


def cmd_import(lib: Library, args: argparse.Namespace, out: TextIO) -> None:
    if args.file != "-":  # a file or a pipe (/dev/fd/N); a device such as /dev/zero never ends
        import stat

        try:
            mode = os.stat(args.file).st_mode
        except OSError:
            mode = 0  # open() below says why
        if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
            raise CommandError(f"cannot read {args.file}: a device, not a file")
    try:
        if args.file == "-":
            counts = lib.import_(sys.stdin)
        else:
            with open(args.file, encoding="utf-8") as fh:
                counts = lib.import_(fh)
    except OSError as exc:
        raise CommandError(f"cannot read {args.file}: {exc.strerror}") from None
    except UnicodeDecodeError:
        raise CommandError(f"{args.file} is not UTF-8 text") from None
    out.write(", ".join(f"{v} {k}" for k, v in counts.items()) + "\n")


def cmd_status(lib: Library, args: argparse.Namespace, out: TextIO) -> None:
    st = lib.status()
    if args.json:
        json.dump(st.to_dict(), out, ensure_ascii=False, sort_keys=True)
        out.write("\n")
        return
    out.write(status_text(st))


def cmd_add(lib: Library, args: argparse.Namespace, out: TextIO) -> None:
    from .distill import sources

    src = sources.add(lib, args.source, name=args.name, ref=getattr(args, "ref", None),
                      upstream=not getattr(args, "no_upstream", False))
    out.write(added_line(src, args.prog) + "\n")


def cmd_remove(lib: Library, args: argparse.Namespace, out: TextIO) -> None:
    from .distill import sources

    n = sources.remove(lib, args.source)
    out.write(removed_line(args.source, n) + "\n")


def cmd_sources(lib: Library, args: argparse.Namespace, out: TextIO) -> None:
    from .distill import sources

    rows = [sources.describe(s) for s in lib.sources()]
    if args.json:
        json.dump(rows, out, ensure_ascii=False, sort_keys=True)
        out.write("\n")
        return
    out.write("\n".join(source_lines(rows, args.prog)) + "\n")


class TerminalProgress:
    """A one-line text progress bar on a terminal, redrawn in place."""

    def __init__(self, stream: TextIO, width: int = 24) -> None:
        self.stream = stream
        self.width = width
        self.shown = False

    def __call__(self, stage: str, done: int, total: int, detail: str, source: str = "") -> None:
        if stage == "done":
            self.close()
            return
        filled = self.width * done // total if total else 0
        bar = "#" * filled + "." * (self.width - filled)
        line = f"[{bar}] {visible(progress_phrase(stage, done, total, detail, source))}"
        columns = shutil.get_terminal_size((80, 20)).columns
        self.stream.write("\r" + line[: columns - 1].ljust(columns - 1))
        self.stream.flush()
        self.shown = True

    def close(self) -> None:
        if self.shown:
            columns = shutil.get_terminal_size((80, 20)).columns
            self.stream.write("\r" + " " * (columns - 1) + "\r")
            self.stream.flush()
            self.shown = False


def _write_outcome(outcome: Any, out: TextIO) -> None:
    """Print a pass's warnings (standard error) and report lines; raise its failure."""
    for warning in outcome.warnings:
        print(visible(f"{PROG}: {warning}"), file=sys.stderr)
    if outcome.lines:
        out.write("\n".join(outcome.lines) + "\n")
    if outcome.failure:
        raise CommandError(outcome.failure)


def cmd_refresh(lib: Library, args: argparse.Namespace, out: TextIO) -> None:
    from .distill.passes import refresh_pass

    bar = TerminalProgress(sys.stderr) if sys.stderr.isatty() else None
    try:
        outcome = refresh_pass(lib, args.sources or None, workers=args.workers,
                               validate=not args.no_validate, timeout=args.timeout,
                               llm=getattr(args, "llm", False), cluster=args.cluster, progress=bar)
    finally:
        if bar is not None:
            bar.close()
    _write_outcome(outcome, out)


def cmd_generate(lib: Library, args: argparse.Namespace, out: TextIO) -> None:
    from .distill.llm import Budget, LLMConfig, LLMUnavailable
    from .distill.passes import generate_pass

    try:
        config = LLMConfig.resolve(lib.path.parent)
    except LLMUnavailable as exc:
        raise CommandError(str(exc)) from None
    lib.source(args.source)
    settings = None
    if args.timeout:
        from .distill.sandbox import SandboxSettings

        settings = SandboxSettings(timeout=float(args.timeout))
    budget = Budget()
    for name, value in (("tokens", args.budget_tokens), ("cost_usd", args.budget_usd),
                        ("seconds", args.budget_seconds)):
        if value is not None:
            setattr(budget, name, value)
    _write_outcome(generate_pass(lib, [args.source], config, settings=settings, budget=budget,
                                 iterations=args.iterations, force=True), out)


def cmd_insert(lib: Library, args: argparse.Namespace, out: TextIO) -> None:
    from .provenance import cell_source, insert_blockers, insert_warnings
    from .settings import SettingsError, load_settings

    s = lib.get(args.id)
    try:
        policy = load_settings(lib.path.parent).policy
    except SettingsError as exc:
        raise CommandError(str(exc)) from None
    blockers = insert_blockers(s, policy)
    if blockers and not args.force:
        raise CommandError(f"{s.id} not inserted: {'; '.join(blockers)}; use --force to insert anyway")
    for warning in insert_warnings(s):
        print(visible(f"{PROG}: warning: {warning}"), file=sys.stderr)
    out.write(cell_source(s) + "\n")


def cmd_audit(lib: Library, args: argparse.Namespace, out: TextIO) -> None:
    from .audit import AuditError, audit, read_notebook, render

    if not args.notebook:
        raise CommandError("audit needs a notebook file: codedistiller audit NOTEBOOK.ipynb")
    try:
        report = render(audit(read_notebook(args.notebook), lib, notebook=args.notebook), args.format)
    except AuditError as exc:
        raise CommandError(str(exc)) from None
    if args.output:
        try:
            with open(args.output, "w", encoding="utf-8") as fh:
                fh.write(report)
        except OSError as exc:
            raise CommandError(f"cannot write {args.output}: {exc.strerror}") from None
        out.write(f"audit written to {args.output}\n")
    else:
        out.write(report)


def cmd_config(lib: Library, args: argparse.Namespace, out: TextIO) -> None:
    from .settings import SettingsError, load_settings, set_setting

    home = lib.path.parent
    try:
        settings = set_setting(home, args.name, args.value) if args.value is not None else load_settings(home)
    except SettingsError as exc:
        raise CommandError(str(exc)) from None
    values = settings.to_dict()
    if args.name and args.name not in values:
        raise CommandError(f"unknown setting {args.name!r}; use one of {', '.join(values)}")
    if args.name:
        values = {args.name: values[args.name]}
    if args.json:
        json.dump(values, out, sort_keys=True)
        out.write("\n")
    else:
        out.writelines(f"{k} = {json.dumps(v)}\n" for k, v in values.items())


def cmd_daemon(lib: Library, args: argparse.Namespace, out: TextIO) -> None:
    from .daemon import run_forever

    print(f"{PROG}: daemon for {lib.path.parent} every {args.interval} s (pid {os.getpid()})", file=sys.stderr)
    run_forever(lib, interval=args.interval, workers=args.workers, timeout=args.timeout, once=args.once,
                defaults=not args.no_defaults, cluster=args.cluster)


def cmd_mcp(lib: Library, args: argparse.Namespace, out: TextIO) -> None:
    try:
        from .mcpserver import build_server, stdio_host
    except ImportError as exc:
        if (exc.name or "").split(".")[0] != "mcp":
            raise
        raise CommandError("the MCP server needs the mcp extra: pip install 'jupyter-codedistiller[mcp]'") from None
    build_server(stdio_host(lib)).run("stdio")  # standard output is the protocol's: nothing else writes there


COMMANDS: dict[str, Callable[[Library, argparse.Namespace, TextIO], None]] = {
    "add": cmd_add,
    "remove": cmd_remove,
    "sources": cmd_sources,
    "refresh": cmd_refresh,
    "generate": cmd_generate,
    "search": cmd_search,
    "show": cmd_show,
    "why": cmd_why,
    "flag": cmd_flag,
    "resolve": cmd_resolve,
    "review": cmd_review,
    "export": cmd_export,
    "import": cmd_import,
    "status": cmd_status,
    "insert": cmd_insert,
    "audit": cmd_audit,
    "config": cmd_config,
    "daemon": cmd_daemon,
    "mcp": cmd_mcp,
}


def main(argv: list[str] | None = None, out: TextIO | None = None) -> int:
    """Run one command; returns the exit code."""
    out = out or sys.stdout
    argv = sys.argv[1:] if argv is None else argv
    try:
        args = parse(argv, PROG)
    except HelpShown as shown:
        out.write(shown.text)
        return 0
    except GrammarError as exc:
        print(visible(exc), file=sys.stderr)
        return 2
    handler = COMMANDS.get(args.command)
    if handler is None:
        print(f"{PROG}: {args.command} is not available here yet", file=sys.stderr)
        return 2
    try:
        with Library.open(args.home) as lib:
            handler(lib, args, out)
    except (LibraryError, CommandError) as exc:
        print(visible(f"{PROG}: error: {exc}"), file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return 0
    return 0


if __name__ == "__main__":
    sys.exit(main())
