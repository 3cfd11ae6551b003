"""The one command grammar shared by the CLI (``codedistiller ...``) and the magic (``%distill ...``).

Only ``argparse`` is imported here so that building the parser stays cheap
enough for ``%load_ext``.
"""

from __future__ import annotations

import argparse
from typing import NoReturn

from .model import FLAG_KINDS, ORIGIN_KINDS, REVIEW_STATUSES, VALIDATION_STATUSES


class GrammarError(Exception):
    """The command line does not fit the grammar; the message is one line."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        raise GrammarError(f"{self.prog}: {message}")

    def print_help(self, file: object = None) -> NoReturn:
        # argparse's --help action prints, then exits; the text travels in HelpShown instead.
        raise HelpShown(self.format_help())

    def exit(self, status: int = 0, message: str | None = None) -> NoReturn:
        if status:
            raise GrammarError((message or f"{self.prog}: error").strip())
        raise HelpShown(self.format_help())


class CommandError(Exception):
    """A parsed command that cannot go on (CLI and magic alike); the message is one line for a person."""


class HelpShown(Exception):
    """``--help`` was asked for; the exception carries the help text."""

    def __init__(self, text: str) -> None:
        super().__init__(text)
        self.text = text


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a number of at least 1, got {value}")
    return value


def _filters(p: argparse.ArgumentParser) -> None:
    p.add_argument("--package", help="only snippets from this package")
    p.add_argument("--validation", choices=VALIDATION_STATUSES, help="only this validation status")
    p.add_argument("--review", choices=REVIEW_STATUSES, help="only this review status")
    p.add_argument("--origin", choices=ORIGIN_KINDS, help="only this origin")
    p.add_argument("--license", help="only this SPDX license id")
    p.add_argument("--tag", help="only snippets with this tag")
    p.add_argument("--source", help="only snippets from this registered source")
    p.add_argument("--include-retired", action="store_true", help="show retired snippets too")


def search_filters(args: argparse.Namespace) -> dict[str, str]:
    """The search filters a parsed command sets, by library keyword (``Library.FILTERS``)."""
    from .library import Library

    return {n: getattr(args, n) for n in Library.FILTERS if getattr(args, n, None)}


def build_parser(prog: str = "codedistiller") -> argparse.ArgumentParser:
    """The parser for every subcommand; errors raise GrammarError instead of exiting."""
    parser = _Parser(
        prog=prog,
        description="A local library of validated, provenance-carrying code examples.",
    )
    parser.add_argument("--home", help="library home (default: $CODEDISTILLER_HOME)")
    parser.set_defaults(prog=prog)  # lets a command's hints name the interface it was typed in
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    sub.required = True

    p = sub.add_parser("search", help="rank the library for a query")
    p.add_argument("query", nargs="*", help="words to look for")
    p.add_argument("--limit", type=_positive, default=10, help="how many results (default 10)")
    p.add_argument("--json", action="store_true", help="print JSON")
    _filters(p)

    p = sub.add_parser("show", help="show one snippet")
    p.add_argument("id", help="snippet id, or result number from the last search (magic)")
    p.add_argument("--json", action="store_true", help="print JSON")

    p = sub.add_parser("why", help="show a snippet's full provenance")
    p.add_argument("id", help="snippet id, or result number from the last search (magic)")
    p.add_argument("--json", action="store_true", help="print JSON")

    p = sub.add_parser("insert", help="insert a snippet's code with its provenance marker")
    p.add_argument("id", help="snippet id, or result number from the last search")
    p.add_argument("--force", action="store_true", help="insert even if flagged, failed or rejected")

    p = sub.add_parser("flag", help="flag a snippet as doubtful")
    p.add_argument("id", help="snippet id")
    p.add_argument("--reason", required=True, help="why it is doubtful")
    p.add_argument("--kind", choices=FLAG_KINDS, default="other", help="kind of problem")
    p.add_argument("--by", help="who is flagging (default: $CODEDISTILLER_USER, git user, OS user)")

    p = sub.add_parser("resolve", help="resolve a flag")
    p.add_argument("id", help="snippet id")
    p.add_argument("flag", type=_positive, help="flag number (see `show`)")
    p.add_argument("--note", default="", help="how it was resolved")
    p.add_argument("--by", help="who is resolving")

    p = sub.add_parser("review", help="approve or reject a snippet's current revision")
    p.add_argument("id", help="snippet id")
    group = p.add_mutually_exclusive_group(required=True)
    group.add_argument("--approve", action="store_true", help="approve it")
    group.add_argument("--reject", action="store_true", help="reject it")
    p.add_argument("--note", default="", help="a note for the record")
    p.add_argument("--by", help="who is reviewing")

    p = sub.add_parser("export", help="write the library as JSON Lines")
    p.add_argument("file", help="output file, or - for standard output")

    p = sub.add_parser("import", help="merge a JSON Lines file into the library")
    p.add_argument("file", help="input file, or - for standard input")

    p = sub.add_parser("status", help="library size, states and sources")
    p.add_argument("--json", action="store_true", help="print JSON")

    p = sub.add_parser("add", help="register a source: git URL, local git path or pkg:NAME")
    p.add_argument("source", help="git URL, path to a git working copy, or pkg:NAME")
    p.add_argument("--name", help="short id for the source (default: derived)")
    p.add_argument("--ref", help="git only: the branch or tag to follow (default: the one checked out)")
    p.add_argument("--no-upstream", action="store_true",
                   help="pkg:NAME only: read the installed files, not the upstream repository or sdist")

    p = sub.add_parser("remove", help="unregister a source and retire its snippets")
    p.add_argument("source", help="source id")

    p = sub.add_parser("sources", help="list registered sources")
    p.add_argument("--json", action="store_true", help="print JSON")

    p = sub.add_parser("refresh", help="distil new and changed examples from the sources")
    p.add_argument("sources", nargs="*", help="source ids (default: all)")
    p.add_argument("--workers", type=_positive, help="parallel validations (default: cores)")
    p.add_argument("--no-validate", action="store_true", help="extract only; do not run")
    p.add_argument("--timeout", type=_positive, help="seconds per validation run")
    p.add_argument("--llm", action="store_true",
                   help="then let an LLM write or repair examples (needs OPENAI_API_KEY)")
    p.add_argument("--cluster", metavar="ADDRESS",
                   help="validate on a Dask cluster (tcp://SCHEDULER:8786; 'local' for this machine; "
                   "default: the cluster setting)")

    p = sub.add_parser("generate", help="let an LLM write and repair examples for one source")
    p.add_argument("source", help="source id")
    p.add_argument("--iterations", type=_positive, default=3,
                   help="sandbox runs per example, repairs included (default 3)")
    p.add_argument("--budget-tokens", type=_positive, help="token budget for the source")
    p.add_argument("--budget-usd", type=float, help="cost budget in USD (needs llm_prices)")
    p.add_argument("--budget-seconds", type=_positive, help="wall-time budget in seconds")
    p.add_argument("--timeout", type=_positive, help="seconds per validation run")

    p = sub.add_parser("daemon", help="keep the library fresh in the background (one per library)")
    p.add_argument("--interval", type=_positive, default=3600, help="seconds between passes (default 3600)")
    p.add_argument("--workers", type=_positive, help="parallel validations (default: 1 or 2)")
    p.add_argument("--timeout", type=_positive, help="seconds per validation run")
    p.add_argument("--once", action="store_true", help="one pass, then exit")
    p.add_argument("--cluster", metavar="ADDRESS",
                   help="validate on a Dask cluster (default: the cluster setting, else this machine)")
    p.add_argument("--no-defaults", action="store_true",
                   help="do not give an empty library the default sources (installed curated packages)")

    p = sub.add_parser("audit", help="report where a notebook's code came from")
    p.add_argument("notebook", nargs="?", help="the .ipynb file (magic: default the running notebook)")
    p.add_argument("--format", choices=("md", "html", "json"), default="md", help="report format")
    p.add_argument("--output", "-o", help="write the report to this file")

    p = sub.add_parser("config", help="show or change a library setting (e.g. policy)")
    p.add_argument("name", nargs="?", help="setting name, e.g. policy")
    p.add_argument("value", nargs="?", help="new value, e.g. open, validated or reviewed")
    p.add_argument("--json", action="store_true", help="print JSON")

    p = sub.add_parser("mcp", help="serve the library to coding agents over MCP (stdio; needs the mcp extra)")

    return parser


def parse(argv: list[str], prog: str = "codedistiller") -> argparse.Namespace:
    """Parse ``argv``; raises GrammarError (one line) or HelpShown."""
    return build_parser(prog).parse_args(argv)
