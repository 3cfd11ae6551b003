"""``codedistiller`` / ``jupyter codedistiller``: the command line over the library.

Parses with the shared grammar, calls the core, prints text or JSON. Every
error is one line on standard error and a non-zero exit: 2 for bad usage,
1 for a request the library refused.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
from collections.abc import Callable
from typing import Any, TextIO

from .badges import badge_text
from .escapes import visible, visible_lines
from .grammar import GrammarError, HelpShown, parse
from .library import Library, LibraryError, SearchResult
from .model import ProgressEntry, Snippet, Source
from .titles import headline

PROG = "codedistiller"


class CommandError(Exception):
    """A command that cannot go on; the message is one line for a person."""


def search_filters(args: argparse.Namespace) -> dict[str, Any]:
    """The search filters set on the command line, by library keyword."""
    return {n: getattr(args, n) for n in Library.FILTERS if getattr(args, n, None)}


def terminal_text(text: str) -> str:
    """``text`` as lines for a terminal: each line ``escapes.visible`` (terminal escapes, bidi
    overrides, tabs written as escapes), so titles, code and outputs from repositories cannot
    steer the terminal. Only for text whose line breaks are meant; a field that must stay on
    its line (a title, a file name) goes through ``visible`` itself."""
    return "\n".join(visible_lines(text))


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


def snippet_text(s: Snippet) -> str:
    """A snippet as a person reads it on a terminal: header, badges, flags, code."""
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
    for f in s.flags:
        state = f"resolved by {f.resolved_by}: {f.resolution}" if f.resolved else "open"
        lines.append(f"flag {f.id} [{f.kind}] {f.reason} ({f.by}, {f.when}; {state})")
    return "\n".join([visible(line) for line in lines] + [""] + visible_lines(s.code.rstrip("\n")))


def provenance_text(s: Snippet) -> str:
    """The full provenance of ``s``: where, how made, how validated, who reviewed, flags."""
    src, v, o = s.source, s.validation, s.origin
    lines = [
        f"{s.title or '(untitled)'}  ({s.id}, revision {s.revision}, {s.lifecycle})",
        f"source     {src.kind} {src.url}",
    ]
    if src.commit:
        lines.append(f"commit     {src.commit}")
    if src.package:
        lines.append(f"package    {src.package} {src.version or ''}".rstrip())
    if src.layer == "repository":
        lines.append(f"upstream   repository at tag {src.tag} ({src.repository}@{src.commit})")
    elif src.layer == "sdist":
        lines.append(f"upstream   sdist {src.sdist} sha256 {src.sdist_sha256} from {src.index_url}")
    lines.append(f"file       {src.where()}")
    for place in s.also_at:  # near-duplicates merged into this snippet
        other = Source(kind=src.kind, path=str(place.get("path") or ""),
                       line_start=place.get("line_start"), line_end=place.get("line_end"))
        lines.append(f"also at    {other.where()}")
    link = src.link()
    if link:
        lines.append(f"link       {link}")
    lines.append(f"license    {src.license}")
    made = o.kind + (f" by {o.model}" if o.model else "")
    context = o.details.get("context_lines")
    if context:
        made += f" ({context} line{'s' if context != 1 else ''} of set-up from earlier in the file)"
    if o.prompt_version:
        made += f" (prompt {o.prompt_version})"
    lines.append(f"made       {made}")
    lines.append(f"validation {v.status}" + (f" ({v.reason})" if v.reason else "")
                 + (f" on {v.when}" if v.when else ""))
    if v.interpreter:
        lines.append(f"  python   {v.python_version} at {v.interpreter}")
    if v.duration is not None:
        lines.append(f"  took     {v.duration:.2f} s, exit code {v.exit_code}")
    if v.isolation:
        lines.append(f"  sandbox  {v.isolation}")
    if v.packages:
        lines.append("  packages " + ", ".join(f"{k} {val}" for k, val in sorted(v.packages.items())))
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
    lines.append(f"review     {s.review.status}")
    for e in s.review.history:
        lines.append(f"  {e.when} {e.status} revision {e.revision} by {e.by}"
                     + (f": {e.note}" if e.note else ""))
    lines.append(f"flags      {len(s.open_flags)} open, {len(s.flags)} in all")
    for f in s.flags:
        state = f"resolved by {f.resolved_by}: {f.resolution}" if f.resolved else "open"
        lines.append(f"  #{f.id} {f.when} [{f.kind}] {f.reason} by {f.by} ({state})")
    return "\n".join(visible(line) for line in lines)  # idempotent on the escaped tail lines


# ---------------------------------------------------------------- commands


def cmd_search(lib: Library, args: argparse.Namespace, out: TextIO) -> None:
    results = lib.search(" ".join(args.query), limit=args.limit,
                         include_retired=args.include_retired, **search_filters(args))
    if args.json:
        json.dump([r.to_dict() for r in results], out, ensure_ascii=False)
        out.write("\n")
        return

    progress = lib.building()
    if progress:
        out.write(building_note(progress) + "\n")
    if not results:
        out.write((results.notice or "no snippets match") + f"; the library holds {lib.count()}\n")
        return
    out.write("\n".join(result_lines(results)) + "\n")


def building_note(progress: dict[str, int]) -> str:
    """One line saying the library is still being built, and how far it is."""
    return (f"(the library is still being built: {progress['snippets']} snippets so far, "
            f"{progress['validated']} validated, {progress['pending']} waiting; results will grow)")


def cmd_show(lib: Library, args: argparse.Namespace, out: TextIO) -> None:
    s = lib.get(args.id)
    out.write((s.to_json() if args.json else snippet_text(s)) + "\n")


def cmd_why(lib: Library, args: argparse.Namespace, out: TextIO) -> None:
    s = lib.get(args.id)
    out.write((s.to_json() if args.json else provenance_text(s)) + "\n")


def cmd_flag(lib: Library, args: argparse.Namespace, out: TextIO) -> None:
    f = lib.flag(args.id, args.reason, kind=args.kind, by=args.by)
    out.write(visible(f"flag {f.id} raised on {lib.get(args.id).id} by {f.by}") + "\n")


def cmd_resolve(lib: Library, args: argparse.Namespace, out: TextIO) -> None:
    f = lib.resolve_flag(args.id, args.flag, note=args.note, by=args.by)
    out.write(visible(f"flag {f.id} resolved by {f.resolved_by}") + "\n")


def cmd_review(lib: Library, args: argparse.Namespace, out: TextIO) -> None:
    e = lib.review(args.id, "approved" if args.approve else "rejected", note=args.note, by=args.by)
    out.write(visible(f"revision {e.revision} of {lib.get(args.id).id} {e.status} by {e.by}") + "\n")


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
        json.dump(st, out, ensure_ascii=False, sort_keys=True)
        out.write("\n")
        return
    out.write(status_text(st))


def status_text(st: dict[str, Any]) -> str:
    """``Library.status()`` as lines for a terminal."""
    lines = [
        f"library    {st['path']} ({st['size_bytes'] // 1024} KiB, schema {st['schema_version']})",
        f"snippets   {st['snippets']} active, {st['retired']} retired, {st['flagged']} flagged",
    ]
    for key in ("validation", "review", "origin"):
        parts = ", ".join(f"{v} {k}" for k, v in sorted(st[key].items())) or "none"
        lines.append(f"{key:<10} {parts}")
    lines.append(f"sources    {len(st['sources'])}")
    for src in st["sources"]:
        pin = src.get("last_commit") or src.get("last_version") or "never distilled"
        lines.append(f"  {src['id']:<20} {src['state']:<7} {pin}  {src.get('last_refresh') or ''}")
    lines += [f"{key:<10} {progress_line(ProgressEntry.from_dict(value))}" for key, value in st["progress"].items()]
    if st.get("isolation"):
        from .distill.sandbox.settings import weakest_isolation

        weakest = weakest_isolation(st["isolation"])
        lines.append(f"sandbox    weakest isolation in use: {weakest} ({st['isolation'][weakest]} snippets)")
    return "\n".join(visible(line) for line in lines) + "\n"


def progress_line(entry: ProgressEntry) -> str:
    """What a long job published, as a phrase: ``validate lifelines 18/36 (path)``, ``idle``, ``not running``."""
    when = f" at {entry.updated}" if entry.updated else ""
    if entry.resting:
        text = "stopped" if "stopped" in (entry.state, entry.step) else "idle"
        if entry.last_cycle:
            text += f", last pass {entry.last_cycle}"
        if entry.detail and text.startswith("idle"):
            text += f": {entry.detail}"
        return text
    parts = [entry.step]
    if entry.source:
        parts.append(entry.source)
    if entry.total:
        parts.append(f"{entry.done}/{entry.total}")
    if entry.detail:
        parts.append(f"({entry.detail})")
    text = " ".join(parts)
    if entry.alive is False:
        return f"not running (last seen: {text}{when})"
    return text


def cmd_add(lib: Library, args: argparse.Namespace, out: TextIO) -> None:
    from .distill import sources

    src = sources.add(lib, args.source, name=args.name,
                      upstream=not getattr(args, "no_upstream", False))
    if src.kind == "package":
        what = f"{src.settings.get('package')} {src.settings.get('version_at_add')}"
    else:
        head = (src.settings.get("head_at_add") or "")[:12]
        what = f"{src.url} at {head}" + (f" on {src.settings['ref']}" if src.settings.get("ref")
                                         else "")
    out.write(visible(f"added {src.kind} source {src.id}: {what}, license {src.license}; "
                      f"distil it with `{args.prog} refresh {src.id}`") + "\n")


def cmd_remove(lib: Library, args: argparse.Namespace, out: TextIO) -> None:
    from .distill import sources

    n = sources.remove(lib, args.source)
    out.write(visible(f"removed source {args.source}; {n} snippets retired (kept for audits)") + "\n")


def cmd_sources(lib: Library, args: argparse.Namespace, out: TextIO) -> None:
    from .distill import sources

    rows = [sources.describe(s) for s in lib.sources()]
    if args.json:
        json.dump(rows, out, ensure_ascii=False, sort_keys=True)
        out.write("\n")
        return
    if not rows:
        out.write(f"no sources; add one with `{args.prog} add URL|PATH|pkg:NAME`\n")
        return
    for r in rows:
        pin = r["pin"][:12] if r["pin"] else "never distilled"
        out.write(visible(f"{r['id']:<20} {r['kind']:<8} {r['state']:<6} {pin:<15} "
                          f"{r['last_refresh'] or '-':<26} {r['url']}") + "\n")
        if r["last_error"]:
            out.write(visible(f"{'':<20} error: {r['last_error']}"
                              + (f" ({r['last_error_when']})" if r["last_error_when"] else "")) + "\n")
        for layer in r.get("layers") or []:
            out.write(visible(f"{'':<20} {layer}") + "\n")


class TerminalProgress:
    """A one-line text progress bar on a terminal, redrawn in place."""

    def __init__(self, stream: TextIO, width: int = 24) -> None:
        self.stream = stream
        self.width = width
        self.shown = False

    def __call__(self, stage: str, done: int, total: int, detail: str) -> None:
        if stage == "done":
            self.close()
            return
        filled = self.width * done // total if total else 0
        bar = "#" * filled + "." * (self.width - filled)
        line = f"[{bar}] {stage:<8} {done}/{total} {detail}"
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


def sandbox_settings(args: argparse.Namespace) -> Any:
    """The sandbox settings a command line asks for (``--timeout``), or None for the defaults."""
    if not getattr(args, "timeout", None):
        return None
    from .distill.sandbox import SandboxSettings

    return SandboxSettings(timeout=float(args.timeout))


def cluster_address(lib: Library, args: argparse.Namespace) -> str | None:
    """The Dask scheduler to validate on: ``--cluster``, else the library's ``cluster`` setting."""
    from .settings import SettingsError, load_settings

    if getattr(args, "cluster", None):
        return args.cluster
    try:
        return load_settings(lib.path.parent).cluster or None
    except SettingsError as exc:
        raise CommandError(str(exc)) from None


def report_lines(report: Any, out: TextIO) -> None:
    """Write a refresh or LLM report: its summary, then one line per problem."""
    out.write(terminal_text(report.summary()) + "\n")
    for problem in report.problems:
        out.write(f"  {visible(problem)}\n")


def _raise_errors(report: Any) -> None:
    if report.errors:
        raise CommandError("; ".join(f"{sid}: {msg}" for sid, msg in report.errors.items()))


def run_refresh(lib: Library, args: argparse.Namespace, out: TextIO, progress: Any = None) -> Any:
    """The refresh command, shared by the CLI and the magic: static refresh, then the LLM pass
    when ``--llm`` asks for it and a key is configured. Raises CommandError naming failed sources."""
    from .distill.refresh import refresh

    settings = sandbox_settings(args)
    llm = None
    if getattr(args, "llm", False):
        from .distill.llm import LLMConfig, LLMUnavailable

        try:
            llm = LLMConfig.resolve(lib.path.parent)
        except LLMUnavailable as exc:  # the static refresh goes on without it
            print(visible(f"{PROG}: {exc}"), file=sys.stderr)
    report = refresh(lib, args.sources or None, workers=args.workers,
                     validate=not args.no_validate, settings=settings, progress=progress,
                     cluster=cluster_address(lib, args))
    report_lines(report, out)
    if llm is not None:
        _llm_pass(lib, [r.source_id for r in report.sources if not r.error], llm, settings, out)
    _raise_errors(report)
    return report


def cmd_refresh(lib: Library, args: argparse.Namespace, out: TextIO) -> None:
    bar = TerminalProgress(sys.stderr) if sys.stderr.isatty() else None
    try:
        run_refresh(lib, args, out, bar)
    finally:
        if bar is not None:
            bar.close()


def _llm_pass(lib: Library, source_ids: list[str], config: Any, settings: Any, out: TextIO,
              **options: Any) -> None:
    from .distill.generate import llm_pass
    from .distill.llm import LLMError

    try:
        report = llm_pass(lib, source_ids, config=config, settings=settings, **options)
    except LLMError as exc:
        raise CommandError(str(exc)) from None
    report_lines(report, out)
    _raise_errors(report)


def cmd_generate(lib: Library, args: argparse.Namespace, out: TextIO) -> None:
    from .distill.llm import Budget, LLMConfig, LLMUnavailable

    try:
        config = LLMConfig.resolve(lib.path.parent)
    except LLMUnavailable as exc:
        raise CommandError(str(exc)) from None
    lib.source(args.source)
    settings = sandbox_settings(args)
    budget = Budget()
    for name, value in (("tokens", args.budget_tokens), ("cost_usd", args.budget_usd),
                        ("seconds", args.budget_seconds)):
        if value is not None:
            setattr(budget, name, value)
    _llm_pass(lib, [args.source], config, settings, out, budget=budget, iterations=args.iterations,
              force=True)


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
