"""Notebook audit: which cells came from the library, what changed since, what the library says now.

Reads provenance markers and ``metadata.codedistiller`` (see ``provenance``),
compares each cell with the library, and reports as JSON, Markdown (ending in
a methods-ready paragraph and an attribution list) or HTML. Every piece of text
that came from a repository or the notebook is escaped: as HTML in HTML, as
literal one-line text in Markdown (``escapes.markdown_text``: no raw HTML, links
or markup of its own, no control characters).
"""

from __future__ import annotations

import html
import json
import os
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from .escapes import markdown_text
from .library import Library, LibraryError
from .model import LLM_ORIGINS, Snippet
from .provenance import METADATA_KEY, inserted_digest, source_record, split_cell

FORMATS = ("md", "html", "json")


class AuditError(Exception):
    """The notebook cannot be read; the message is one line."""


@dataclass
class CellInput:
    """One code cell as the audit sees it."""

    index: int
    source: str
    metadata: dict[str, Any] = field(default_factory=dict)


def read_notebook(path: str | os.PathLike[str]) -> list[CellInput]:
    """The code cells of a notebook file, numbered from 1 as JupyterLab shows them."""
    import nbformat

    try:
        nb = nbformat.read(os.fspath(path), as_version=4)
    except FileNotFoundError:
        raise AuditError(f"no notebook at {path}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise AuditError(f"cannot read {path}: {exc}") from None
    except Exception as exc:  # nbformat raises several unrelated types for a malformed file
        raise AuditError(f"{path} is not a readable notebook: {str(exc).splitlines()[0][:200]}") from None
    cells = []
    for i, cell in enumerate(nb.cells, 1):
        if cell.get("cell_type") == "code":
            cells.append(CellInput(index=i, source=cell.get("source", ""), metadata=dict(cell.get("metadata", {}))))
    return cells


def _current(s: Snippet) -> dict[str, Any]:
    return {
        "revision": s.revision,
        "lifecycle": s.lifecycle,
        "validation": s.validation.status,
        "validated_on": s.validation.when,
        "review": s.review.status,
        "reviewed_by": next((e.by for e in reversed(s.review.history) if e.revision == s.revision), None),
        "flags": [
            {"id": f.id, "kind": f.kind, "reason": f.reason, "by": f.by, "when": f.when} for f in s.open_flags
        ],
    }


def _edited(code_now: str, record: dict[str, Any], marker: dict[str, str] | None) -> bool | None:
    digest = inserted_digest(code_now)
    if record.get("code_sha256"):
        return digest != record["code_sha256"]
    if marker and marker.get("sha"):
        return not digest.startswith(marker["sha"])
    return None


def _agent(record: dict[str, Any]) -> dict[str, str] | None:
    """Who inserted the cell when a coding agent did (``metadata.codedistiller.agent``), as short one-line text."""
    agent = record.get("agent")
    if not isinstance(agent, dict):
        return None
    out = {k: _one_line(agent.get(k))[:100] for k in ("client", "via", "for") if agent.get(k)}
    out.setdefault("client", "an unnamed agent")
    return out


def _cell_entry(cell: CellInput, library: Library) -> dict[str, Any] | None:
    marker, code = split_cell(cell.source)
    record = cell.metadata.get(METADATA_KEY) if isinstance(cell.metadata.get(METADATA_KEY), dict) else {}
    if not marker and not record:
        return None
    marker = marker or {}
    sid = record.get("id") or marker.get("id")
    try:
        revision = int(record.get("revision") or marker.get("rev") or 0) or None
    except (TypeError, ValueError):
        revision = None
    rec_source = record.get("source") if isinstance(record.get("source"), dict) else {}
    entry: dict[str, Any] = {
        "index": cell.index,
        "snippet_id": sid,
        "revision": revision,
        "edited": _edited(code, record, marker),
        "known": False,
        "current": None,
        "origin": {"kind": marker.get("origin", "").split("/")[0] or None, "model": None},
        "license": marker.get("license") or rec_source.get("license") or "unknown",
        "source": {"label": marker.get("src"), "path": marker.get("path")},
        "notes": [],
        "agent": _agent(record),
    }
    if entry["agent"]:
        a = entry["agent"]
        entry["notes"].append(f"inserted by a coding agent ({a['client']}"
                              + (f" via {a['via']}" if a.get("via") else "")
                              + (f", for {a['for']}" if a.get("for") else "") + ")")
    if rec_source:
        entry["source"].update({k: rec_source.get(k) for k in ("url", "repository", "commit", "path", "package",
                                                                "version", "link")})
    try:
        s = library.get(sid) if sid else None
    except LibraryError:
        s = None
    if s is None or (sid and s.id != sid):
        entry["notes"].append("not in this library (pasted from elsewhere, or from another library)")
        return entry
    entry["known"] = True
    entry["title"] = s.title
    entry["current"] = _current(s)
    entry["origin"] = {"kind": s.origin.kind, "model": s.origin.model}
    entry["license"] = s.source.license
    entry["source"] = {**source_record(s), "name": s.package_or_repository}
    entry["validation"] = {
        "status": s.validation.status, "when": s.validation.when, "python_version": s.validation.python_version,
        "isolation": s.validation.isolation, "packages": dict(s.validation.packages),
    }
    notes = entry["notes"]
    if revision and s.revision > revision:
        notes.append(f"the library has a newer revision ({s.revision}, inserted {revision})")
    if s.lifecycle == "retired":
        notes.append("retired: gone from its upstream source")
    if s.open_flags:
        notes.append("flagged: " + "; ".join(f"[{f.kind}] {f.reason}" for f in s.open_flags))
    if s.validation.status in ("failed", "timeout", "stale"):
        notes.append(f"validation is now {s.validation.status}")
    if s.review.status == "rejected":
        notes.append("rejected by a reviewer")
    if s.origin.llm:
        made = "generated" if s.origin.kind == "generated" else "adapted"
        notes.append(f"{made} by an LLM ({s.origin.model or 'model not recorded'}), "
                     + ("approved by a person" if s.review.status == "approved" else "not approved by a person"))
    if entry["edited"]:
        notes.append("edited since insertion")
    return entry


def audit(cells: list[CellInput], library: Library, notebook: str = "") -> dict[str, Any]:
    """The audit of ``cells`` against ``library`` as plain data (the JSON report)."""
    entries = [e for c in cells if (e := _cell_entry(c, library)) is not None]
    known = [e for e in entries if e["known"]]
    cur = [e["current"] for e in known]
    llm = [e for e in known if e["origin"]["kind"] in LLM_ORIGINS]
    summary = {
        "code_cells": len(cells),
        "from_library": len(entries),
        "unknown": len(entries) - len(known),
        "edited": sum(1 for e in entries if e["edited"]),
        "newer_revision": sum(1 for e in known if e["revision"] and e["current"]["revision"] > e["revision"]),
        "retired": sum(1 for c in cur if c["lifecycle"] == "retired"),
        "flagged": sum(1 for c in cur if c["flags"]),
        "validation": dict(Counter(c["validation"] for c in cur)),
        "review": dict(Counter(c["review"] for c in cur)),
        "llm": len(llm),
        "llm_unreviewed": sum(1 for e in llm if e["current"]["review"] != "approved"),
        "agent_inserted": sum(1 for e in entries if e["agent"]),
        "licenses": dict(Counter(e["license"] for e in entries)),
    }
    return {"notebook": notebook, "library": str(library.path), "cells": entries, "summary": summary}


# ---------------------------------------------------------------- reports


def _one_line(text: Any) -> str:
    return " ".join(str(text if text is not None else "").split())


def methods_paragraph(report: dict[str, Any]) -> str:
    """A paragraph for a paper's methods or supplement describing where the notebook's code came from."""
    known = [e for e in report["cells"] if e["known"]]
    if not report["cells"]:
        return "No cell of this notebook was inserted from a jupyter-codedistiller library."
    parts = []
    for e in known:
        src = e["source"]
        where = src.get("repository") or src.get("url") or src.get("name")
        if src.get("package") and src.get("kind") == "package":
            pin = f"version {src.get('version') or 'unknown'}"
        else:
            pin = f"commit {(src.get('commit') or 'unknown')[:12]}"
        lines = f", lines {src['line_start']}-{src['line_end']}" if src.get("line_start") else ""
        parts.append(f"cell {e['index']} from {_one_line(where)} at {pin} ({_one_line(src.get('path'))}{lines}; "
                     f"license {_one_line(e['license'])})")
    text = [
        f"Code in {len(report['cells'])} of the notebook's {report['summary']['code_cells']} code cells was taken "
        "from a local library of examples distilled from public scientific repositories with jupyter-codedistiller"
        + (": " + "; ".join(parts) + "." if parts else ".")
    ]
    validated = [e for e in known if e["validation"]["status"] == "passed"]
    if validated:
        envs = sorted({f"Python {e['validation']['python_version'] or '?'}" for e in validated})
        pkgs = sorted({f"{k} {v}" for e in validated for k, v in e["validation"]["packages"].items()})
        text.append(
            f"Before use, {len(validated)} of these snippets were executed in an isolated sandbox and ran "
            f"without error ({', '.join(envs)}" + (f"; {', '.join(pkgs)}" if pkgs else "") + ")."
        )
    not_validated = [e for e in known if e["validation"]["status"] != "passed"]
    if not_validated:
        text.append("Cells " + ", ".join(str(e["index"]) for e in not_validated)
                    + " hold snippets that were not validated successfully.")
    llm = [e for e in known if e["origin"]["kind"] in LLM_ORIGINS]
    if llm:
        models = sorted({e["origin"]["model"] or "an unrecorded model" for e in llm})
        approved = [e for e in llm if e["current"]["review"] == "approved"]
        text.append(
            f"{len(llm)} cell(s) hold code written or adapted by a large language model ({', '.join(models)}); "
            f"{len(approved)} of them were reviewed and approved by a person."
        )
    else:
        text.append("No inserted code was written by a large language model.")
    by_agent = [e for e in report["cells"] if e.get("agent")]
    if by_agent:
        clients = sorted({e["agent"]["client"] for e in by_agent})
        text.append(f"{len(by_agent)} cell(s) were inserted by a coding agent ({', '.join(clients)}) "
                    "rather than by a person.")
    edited = [e for e in report["cells"] if e["edited"]]
    if edited:
        text.append("Cells " + ", ".join(str(e["index"]) for e in edited) + " were modified after insertion.")
    unknown = [e for e in report["cells"] if not e["known"]]
    if unknown:
        text.append("Cells " + ", ".join(str(e["index"]) for e in unknown)
                    + " carry a provenance marker that this library cannot confirm.")
    return " ".join(text)


def attribution(report: dict[str, Any]) -> list[str]:
    """One line per source used: its name, link and license."""
    seen: dict[tuple[str, str], None] = {}
    for e in report["cells"]:
        src = e["source"]
        name = src.get("repository") or src.get("url") or src.get("name") or src.get("label") or "unknown source"
        seen.setdefault((_one_line(name), _one_line(e["license"])), None)
    return [f"{name}: license {lic}" for name, lic in seen]


def _state(e: dict[str, Any]) -> str:
    if not e["known"]:
        return "unknown to this library"
    c = e["current"]
    bits = [f"revision {c['revision']}", c["lifecycle"], f"validation {c['validation']}", f"review {c['review']}"]
    if c["flags"]:
        bits.append(f"{len(c['flags'])} open flag(s)")
    return ", ".join(bits)


def to_markdown(report: dict[str, Any]) -> str:
    """The audit as Markdown: totals, one row per cell, methods paragraph, attribution."""
    s = report["summary"]
    out = [f"# Provenance audit: {markdown_text(report['notebook']) or 'notebook'}", "", "## Totals", ""]
    out += [
        f"- code cells: {s['code_cells']}; from the library: {s['from_library']}; unknown markers: {s['unknown']}",
        f"- edited since insertion: {s['edited']}; newer revision available: {s['newer_revision']}",
        f"- flagged: {s['flagged']}; retired: {s['retired']}",
        f"- validation: {markdown_text(', '.join(f'{v} {k}' for k, v in sorted(s['validation'].items())) or 'none')}",
        f"- review: {markdown_text(', '.join(f'{v} {k}' for k, v in sorted(s['review'].items())) or 'none')}",
        f"- LLM-made: {s['llm']} ({s['llm_unreviewed']} not approved by a person)",
        "", "## Cells", "",
        "| cell | snippet | inserted rev | edited | now | origin | license | notes |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for e in report["cells"]:
        origin = e["origin"]["kind"] or "?"
        if e["origin"].get("model"):
            origin += f" ({e['origin']['model']})"
        edited = {True: "yes", False: "no", None: "unknown"}[e["edited"]]
        cells = [str(e["index"]), e["snippet_id"] or "?", str(e["revision"] or "?"), edited, _state(e), origin,
                 e["license"], "; ".join(e["notes"])]
        out.append("| " + " | ".join(markdown_text(c) for c in cells) + " |")
    out += ["", "## Methods", "", markdown_text(methods_paragraph(report)), "", "## Attribution", ""]
    out += [f"- {markdown_text(line)}" for line in attribution(report)] or ["- none"]
    return "\n".join(out) + "\n"


def to_html(report: dict[str, Any]) -> str:
    """The audit as a self-contained HTML fragment; every value escaped."""
    e_ = html.escape
    s = report["summary"]
    rows = []
    for e in report["cells"]:
        link = (e["source"] or {}).get("link")
        snippet = e_(e["snippet_id"] or "?")
        if link and str(link).startswith(("https://", "http://")):
            snippet = f'<a href="{e_(link)}" rel="noopener noreferrer">{snippet}</a>'
        edited = {True: "yes", False: "no", None: "unknown"}[e["edited"]]
        rows.append(
            "<tr>" + "".join(f"<td>{c}</td>" for c in (
                e_(str(e["index"])), snippet, e_(str(e["revision"] or "?")), e_(edited), e_(_state(e)),
                e_((e["origin"]["kind"] or "?") + (f" ({e['origin']['model']})" if e["origin"].get("model") else "")),
                e_(e["license"]), e_("; ".join(e["notes"])),
            )) + "</tr>"
        )
    totals = (f"{s['from_library']} of {s['code_cells']} code cells from the library; {s['edited']} edited; "
              f"{s['flagged']} flagged; {s['unknown']} unknown; {s['llm']} LLM-made "
              f"({s['llm_unreviewed']} not approved)")
    return (
        '<div class="codedistiller-audit">'
        f"<h3>Provenance audit: {e_(report['notebook'] or 'notebook')}</h3>"
        f"<p>{e_(totals)}</p>"
        "<table><thead><tr><th>cell</th><th>snippet</th><th>inserted rev</th><th>edited</th><th>now</th>"
        "<th>origin</th><th>license</th><th>notes</th></tr></thead><tbody>"
        + "".join(rows) + "</tbody></table>"
        f"<h4>Methods</h4><p>{e_(methods_paragraph(report))}</p>"
        "<h4>Attribution</h4><ul>" + "".join(f"<li>{e_(a)}</li>" for a in attribution(report)) + "</ul></div>"
    )


def render(report: dict[str, Any], fmt: str) -> str:
    """The report in ``fmt`` (md, html or json)."""
    if fmt == "json":
        return json.dumps(report, indent=2, sort_keys=True, ensure_ascii=False) + "\n"
    if fmt == "html":
        return to_html(report) + "\n"
    if fmt == "md":
        return to_markdown(report)
    raise AuditError(f"format must be one of {', '.join(FORMATS)}; got {fmt!r}")
