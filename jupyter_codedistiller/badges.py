"""The badges every interface shows for a snippet: validation, review, origin, flags."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Literal

from .model import Snippet

ORIGIN_LABELS = {
    "verbatim": "verbatim",
    "assembled": "assembled",
    "adapted": "LLM-adapted",
    "generated": "LLM-generated",
}


BadgeKind = Literal["validation", "review", "origin", "flags", "lifecycle"]
BadgeLevel = Literal["good", "info", "warn", "bad"]


@dataclass(frozen=True)
class Badge:
    """One badge: what it is about, the words shown, and how worrying it is."""

    kind: BadgeKind
    label: str
    level: BadgeLevel

    def to_dict(self) -> dict[str, str]:
        return asdict(self)


def badges(s: Snippet) -> list[Badge]:
    """The badges for ``s``, in display order."""
    v = s.validation
    if v.status == "passed":
        day = (v.when or "")[:10]
        out = [Badge("validation", f"passed {day}".strip(), "good")]
    elif v.status == "skipped":
        out = [Badge("validation", f"skipped: {v.reason}" if v.reason else "skipped", "info")]
    elif v.status in ("failed", "timeout"):
        out = [Badge("validation", v.status, "bad")]
    elif v.status == "stale":
        out = [Badge("validation", "stale", "warn")]
    else:
        out = [Badge("validation", "not validated", "info")]
    review_level = {"approved": "good", "rejected": "bad"}.get(s.review.status, "info")
    out.append(Badge("review", s.review.status, review_level))
    origin_level = "warn" if s.origin.llm and s.review.status != "approved" else "info"
    out.append(Badge("origin", ORIGIN_LABELS.get(s.origin.kind, s.origin.kind), origin_level))
    n = len(s.open_flags)
    if n:
        out.append(Badge("flags", f"flagged ({n})", "bad"))
    if s.lifecycle == "retired":
        out.append(Badge("lifecycle", "retired", "warn"))
    return out


def badge_text(s: Snippet) -> str:
    """The badges as plain text: ``[passed 2026-11-25] [unreviewed] [verbatim]``."""
    return " ".join(f"[{b.label}]" for b in badges(s))
