"""Credential detection: code holding a secret is never stored in the library.

``contains_secret(code)`` names the kind of credential found, or returns None.
Formats with a recognisable shape (cloud keys, tokens, PEM private keys,
passwords in URLs) always count, documentation examples included: dropping one
example costs little, storing a live key costs a lot. The generic rule
(``api_key = "<literal>"``) only counts random-looking literals, so ordinary
code such as ``api_key = os.environ["KEY"]`` or ``token = "<your token>"``
is not flagged.
"""

from __future__ import annotations

import math
import re
from collections import Counter

_PATTERNS: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("private key", re.compile(r"-----BEGIN (?:[A-Z0-9]+ )*PRIVATE KEY(?: BLOCK)?-----")),
    (
        "AWS access key id",
        re.compile(r"(?<![A-Z0-9])(?:AKIA|ASIA|AGPA|AIDA|AROA)[0-9A-Z]{16}(?![A-Z0-9])"),
    ),
    (
        "GitHub token",
        re.compile(r"(?<![A-Za-z0-9_])(?:gh[pousr]_[A-Za-z0-9]{36,}|github_pat_[A-Za-z0-9_]{22,})"),
    ),
    ("Slack token", re.compile(r"(?<![A-Za-z0-9])xox[baprs]-[A-Za-z0-9-]{10,}")),
    (
        "OpenAI-style API key",
        # sk-, an optional project/kind prefix, then 20+ key characters with a digit and a letter
        re.compile(
            r"(?<![A-Za-z0-9_-])sk-(?:proj-|ant-|live-|test-)?"
            r"(?=[A-Za-z0-9_-]*\d)(?=[A-Za-z0-9_-]*[A-Za-z])[A-Za-z0-9_-]{20,}"
        ),
    ),
    ("Google API key", re.compile(r"(?<![A-Za-z0-9_-])AIza[0-9A-Za-z_-]{35}")),
)

# scheme://user:password@host -- the password group is checked against placeholders.
_URL_PASSWORD = re.compile(
    r"\b[a-zA-Z][a-zA-Z0-9+.-]{0,20}://([^\s:/@'\"]{1,100}):([^\s/@'\"]{1,200})@[^\s/'\"]"
)

_SECRET_NAME = (
    r"[A-Za-z0-9_]{0,40}(?:api_?key|apikey|secret|token|passw(?:or)?d|pwd|access_?key|auth_?key"
    r"|private_?key|credentials?)[A-Za-z0-9_]{0,40}"
)
# name = "literal", name: str = "literal", name="literal" (keyword), "name": "literal" (dict)
_ASSIGNED_LITERAL = re.compile(
    r"""(?ix)
    (?:\b(""" + _SECRET_NAME + r""")\b[ \t]{0,20}(?::[ \t]{0,20}[A-Za-z_][\w\[\], .]{0,80})?[ \t]{0,20}=(?!=)
       |["'](""" + _SECRET_NAME + r""")["']\s*:)
    \s*[rbuf]{0,2}(["'])([^"'\n]{8,})\3
    """
)

_PLACEHOLDER = re.compile(
    r"(?i)your|my_?|xxx|\*\*\*|\.\.\.|<|>|\{|\}|\$|%s|%\(|example|placeholder|changeme|change_me"
    r"|dummy|fake|sample|redacted|replace|insert|enter|todo|here|secret|password|token|environ|getenv"
)


def _entropy(text: str) -> float:
    """Shannon entropy in bits per character."""
    counts = Counter(text)
    n = len(text)
    return -sum(c / n * math.log2(c / n) for c in counts.values())


def _random_looking(value: str) -> bool:
    """A literal that looks like a generated key rather than a word, a path or a sentence."""
    if len(value) < 16 or " " in value or _PLACEHOLDER.search(value):
        return False
    if "/" in value and "." in value:  # a path or a URL
        return False
    classes = sum(
        bool(re.search(pattern, value)) for pattern in (r"[a-z]", r"[A-Z]", r"[0-9]")
    )
    return classes >= 2 and _entropy(value) >= 3.0


_URL_PLACEHOLDER = re.compile(r"\*+|x+|X+|\.+|\$\{?\w+\}?|\{\w*\}|<[^>]*>|%s|%\(\w+\)s")


def contains_secret(code: str) -> str | None:
    """The kind of credential found in ``code`` (e.g. "GitHub token"), or None."""
    for kind, pattern in _PATTERNS:
        if pattern.search(code):
            return kind
    for match in _URL_PASSWORD.finditer(code):
        if not _URL_PLACEHOLDER.fullmatch(match.group(2)):
            return "password in URL"
    for match in _ASSIGNED_LITERAL.finditer(code):
        if _random_looking(match.group(4)):
            return "credential literal"
    return None
