"""The provenance marker written above inserted code, and the record kept in cell metadata.

The marker is one comment line, defined here and nowhere else::

    # codedistiller: id=cd-0123456789abcdef rev=2 sha=3f2a9c1b7d4e src=https://host/org/repo@1a2b3c4 path=examples/km.py#L10-L42 license=MIT validation=passed origin=assembled

Fields are ``key=value`` pairs separated by spaces; values are percent-encoded
so they never hold a space. ``sha`` is the first 12 hex digits of the SHA-256
of the inserted code (without the marker), so an audit can tell whether the
cell was edited even when the notebook lost its metadata.
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import quote, unquote

from .model import Snippet, code_digest, utcnow

MARKER_PREFIX = "# codedistiller:"
METADATA_KEY = "codedistiller"
_PAIR = re.compile(r"([a-z]+)=(\S*)")


def _enc(value: object) -> str:
    return quote(str(value), safe="/:@#.-_~+,=")


def source_label(s: Snippet) -> str:
    """``url@commit`` for git sources, ``pkg:name==version`` for packages."""
    src = s.source
    if src.kind == "package":
        return f"pkg:{src.package}=={src.version or '?'}"
    where = src.repository or src.url or src.source_id or "local"
    pin = src.commit[:12] if src.commit else (src.ref or "")
    return f"{where}@{pin}" if pin else where


def path_label(s: Snippet) -> str:
    """``path#L10-L42`` (``#cell3-cell4`` in a notebook): the marker's ``path`` field."""
    return s.source.path + s.source.anchor()


def marker_line(s: Snippet) -> str:
    """The one-line provenance comment for ``s``."""
    values = {
        "id": s.id,
        "rev": s.revision,
        "sha": inserted_digest(s.code)[:12],
        "src": source_label(s),
        "path": path_label(s),
        "license": s.source.license or "unknown",
        "validation": s.validation.status,
        "origin": s.origin.kind + (f"/{s.origin.model}" if s.origin.model else ""),
    }
    return MARKER_PREFIX + " " + " ".join(f"{k}={_enc(v)}" for k, v in values.items())


def parse_marker(line: str) -> dict[str, str] | None:
    """The fields of a marker line, or None if ``line`` is not one."""
    line = line.strip()
    if not line.startswith(MARKER_PREFIX):
        return None
    fields = {k: unquote(v) for k, v in _PAIR.findall(line[len(MARKER_PREFIX):])}
    return fields if "id" in fields else None


def cell_source(s: Snippet) -> str:
    """What an inserted cell holds: the marker line, then the code."""
    return marker_line(s) + "\n" + s.code.rstrip("\n")


def split_cell(source: str) -> tuple[dict[str, str] | None, str]:
    """A cell's marker fields (or None) and the code below the marker."""
    first, _, rest = source.partition("\n")
    fields = parse_marker(first)
    return (fields, rest) if fields else (None, source)


def inserted_digest(code: str) -> str:
    """The digest the audit compares: SHA-256 of the code with trailing newlines dropped."""
    return code_digest(code.rstrip("\n"))


def cell_metadata(s: Snippet, agent: dict[str, str] | None = None) -> dict[str, Any]:
    """The record kept in a cell's ``metadata.codedistiller`` when it is inserted.

    ``agent`` (``{"client": ..., "via": "mcp", "for": ...}``) says that a coding
    agent, not a person, inserted it; the audit reports it.
    """
    record = {
        "id": s.id,
        "revision": s.revision,
        "code_sha256": inserted_digest(s.code),
        "inserted": utcnow(),
        "title": s.title,
        "source": source_record(s),
        "origin": {"kind": s.origin.kind, "model": s.origin.model},
        "validation": {"status": s.validation.status, "when": s.validation.when},
        "review": {"status": s.review.status},
    }
    if agent:
        record["agent"] = dict(agent)
    return record


def source_record(s: Snippet) -> dict[str, Any]:
    """Where ``s`` came from, as cell metadata and audits record it (with the browsable link)."""
    src = s.source
    return {
        "kind": src.kind, "url": src.url, "repository": src.repository, "commit": src.commit,
        "path": src.path, "line_start": src.line_start, "line_end": src.line_end,
        "package": src.package, "version": src.version, "license": src.license, "link": src.link(),
        **({"layer": src.layer, "tag": src.tag, "sdist": src.sdist, "sdist_sha256": src.sdist_sha256,
            "index_url": src.index_url} if src.layer else {}),
    }


def insert_blockers(s: Snippet, policy: str = "open") -> list[str]:
    """Why inserting ``s`` needs ``--force``, one short clause each; empty when nothing blocks.

    Whatever the policy, open flags, a failed validation, a rejection or
    retirement block; the team policy ``validated`` also blocks what has not
    passed, and ``reviewed`` what no person approved.
    """
    reasons = []
    if policy == "validated" and s.validation.status != "passed":
        reasons.append(f"the team policy is 'validated' and its validation is {s.validation.status}")
    if policy == "reviewed" and s.review.status != "approved":
        reasons.append(f"the team policy is 'reviewed' and it is {s.review.status}")
    if s.open_flags:
        n = len(s.open_flags)
        reasons.append(f"it has {n} open flag{'s' if n > 1 else ''} "
                       f"({'; '.join(f.reason for f in s.open_flags[:3])})")
    if s.validation.status in ("failed", "timeout"):
        reasons.append("its validation " + ("failed" if s.validation.status == "failed"
                                            else "timed out"))
    if s.review.status == "rejected":
        reasons.append("a reviewer rejected it")
    if s.lifecycle == "retired":
        reasons.append("it is retired (gone upstream)")
    return reasons


def insert_warnings(s: Snippet) -> list[str]:
    """What the person inserting ``s`` must be told even when nothing blocks it."""
    out = []
    if s.origin.llm and s.review.status != "approved":
        verb = "generated" if s.origin.kind == "generated" else "adapted"
        model = f" ({s.origin.model})" if s.origin.model else ""
        out.append(f"this code was {verb} by an LLM{model} and no person has reviewed it; "
                   "read it before you run it")
    return out
