"""SPDX license ids from license files and package metadata; ``unknown`` when it cannot be told.

A license text is recognised by phrases that only it carries, so a file that
merely mentions a license elsewhere is not mistaken for it. The full texts of
the GPL family cannot say whether "only" or "or later" was meant, so they give
the bare SPDX ids ``GPL-3.0``, ``LGPL-2.1``, ...; package metadata that says
which one (a classifier, an SPDX expression) gives the precise id.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from email.message import Message
from pathlib import Path

UNKNOWN = "unknown"

LICENSE_FILE = re.compile(r"^(licen[cs]e|copying|copyright|unlicense)([-._].*)?$", re.IGNORECASE)

# (SPDX id, phrases that must all occur in the normalised text), most specific first.
_TEXTS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("AGPL-3.0", ("gnu affero general public license", "version 3")),
    ("LGPL-3.0", ("gnu lesser general public license", "version 3")),
    ("LGPL-2.1", ("gnu lesser general public license", "version 2.1")),
    ("LGPL-2.1", ("gnu library general public license", "version 2.1")),
    ("LGPL-2.0", ("gnu library general public license", "version 2")),
    ("GPL-3.0", ("gnu general public license", "version 3, 29 june 2007")),
    ("GPL-2.0", ("gnu general public license", "version 2, june 1991")),
    ("Apache-2.0", ("apache license", "version 2.0")),
    ("MPL-2.0", ("mozilla public license", "2.0")),
    ("EPL-2.0", ("eclipse public license", "2.0")),
    ("BSL-1.0", ("boost software license", "version 1.0")),
    ("Artistic-2.0", ("the artistic license 2.0",)),
    ("Unlicense", ("this is free and unencumbered software released into the public domain",)),
    ("CC0-1.0", ("cc0 1.0 universal",)),
    ("CC0-1.0", ("creative commons legal code", "cc0 1.0")),
    ("CC-BY-4.0", ("attribution 4.0 international", "creative commons")),
    ("Zlib", ("this software is provided 'as-is', without any express or implied warranty",
              "altered source versions must be plainly marked")),
    ("BSD-4-Clause", ("redistribution and use in source and binary forms",
                      "all advertising materials mentioning features")),
    ("BSD-3-Clause", ("redistribution and use in source and binary forms",
                      "may be used to endorse or promote products derived from this software")),
    ("BSD-2-Clause", ("redistribution and use in source and binary forms",
                      "redistributions of source code must retain")),
    ("ISC", ("permission to use, copy, modify, and/or distribute this software for any purpose",
             "the above copyright notice and this permission notice appear in all copies")),
    ("ISC", ("permission to use, copy, modify, and distribute this software for any purpose",
             "the above copyright notice and this permission notice appear in all copies")),
    ("0BSD", ("permission to use, copy, modify, and/or distribute this software for any purpose",)),
    ("MIT", ("permission is hereby granted, free of charge, to any person obtaining a copy",
             "the above copyright notice and this permission notice shall be included")),
    ("MIT-0", ("permission is hereby granted, free of charge, to any person obtaining a copy",)),
    ("PSF-2.0", ("python software foundation license",)),
)

# Short names people write in a License field or classifier, normalised (lowercase, no
# punctuation), mapped to SPDX ids.
_NAMES = {
    "mit": "MIT", "mit license": "MIT", "the mit license": "MIT", "expat": "MIT",
    "mit0": "MIT-0", "mit no attribution": "MIT-0",
    "bsd2clause": "BSD-2-Clause", "bsd 2 clause": "BSD-2-Clause", "2 clause bsd": "BSD-2-Clause",
    "simplified bsd": "BSD-2-Clause", "freebsd": "BSD-2-Clause",
    "bsd3clause": "BSD-3-Clause", "bsd 3 clause": "BSD-3-Clause", "3 clause bsd": "BSD-3-Clause",
    "new bsd": "BSD-3-Clause", "modified bsd": "BSD-3-Clause", "revised bsd": "BSD-3-Clause",
    "new bsd license": "BSD-3-Clause", "bsd 3 clause license": "BSD-3-Clause",
    "apache 2.0": "Apache-2.0", "apache2": "Apache-2.0", "apache 2": "Apache-2.0",
    "apache license 2.0": "Apache-2.0", "apache license version 2.0": "Apache-2.0",
    "apache software license 2.0": "Apache-2.0", "apache software license": "Apache-2.0",
    "asl 2.0": "Apache-2.0", "apache2.0": "Apache-2.0",
    "bsd": "BSD", "bsd license": "BSD",
    "gpl": "GPL", "gplv2": "GPL-2.0-only", "gpl2": "GPL-2.0-only", "gpl 2": "GPL-2.0-only",
    "gplv2+": "GPL-2.0-or-later", "gplv3": "GPL-3.0-only", "gpl3": "GPL-3.0-only",
    "gpl 3": "GPL-3.0-only", "gplv3+": "GPL-3.0-or-later",
    "gnu general public license v2 (gplv2)": "GPL-2.0-only",
    "gnu general public license v2 or later (gplv2+)": "GPL-2.0-or-later",
    "gnu general public license v3 (gplv3)": "GPL-3.0-only",
    "gnu general public license v3 or later (gplv3+)": "GPL-3.0-or-later",
    "lgplv2": "LGPL-2.0-only", "lgplv2+": "LGPL-2.0-or-later", "lgpl 2.1": "LGPL-2.1-only",
    "lgplv3": "LGPL-3.0-only", "lgplv3+": "LGPL-3.0-or-later",
    "gnu lesser general public license v2 (lgplv2)": "LGPL-2.0-only",
    "gnu lesser general public license v2 or later (lgplv2+)": "LGPL-2.0-or-later",
    "gnu lesser general public license v3 (lgplv3)": "LGPL-3.0-only",
    "gnu lesser general public license v3 or later (lgplv3+)": "LGPL-3.0-or-later",
    "gnu library or lesser general public license (lgpl)": "LGPL",
    "gnu affero general public license v3": "AGPL-3.0-only",
    "gnu affero general public license v3 or later (agplv3+)": "AGPL-3.0-or-later",
    "agplv3": "AGPL-3.0-only", "agplv3+": "AGPL-3.0-or-later",
    "mpl 2.0": "MPL-2.0", "mpl2": "MPL-2.0", "mozilla public license 2.0 (mpl 2.0)": "MPL-2.0",
    "mozilla public license 2.0": "MPL-2.0",
    "isc": "ISC", "isc license": "ISC", "isc license (iscl)": "ISC",
    "unlicense": "Unlicense", "the unlicense": "Unlicense",
    "the unlicense (unlicense)": "Unlicense",
    "cc0": "CC0-1.0", "cc0 1.0": "CC0-1.0",
    "cc0 1.0 universal (cc0 1.0) public domain dedication": "CC0-1.0",
    "zlib": "Zlib", "zlib/libpng license": "Zlib",
    "boost software license 1.0 (bsl 1.0)": "BSL-1.0",
    "eclipse public license 2.0 (epl 2.0)": "EPL-2.0",
    "python software foundation license": "PSF-2.0", "psf": "PSF-2.0",
    "academic free license (afl)": "AFL-3.0", "artistic license": "Artistic-2.0",
}

# Names that say a family but not which member: only a license text can settle them.
_AMBIGUOUS = {"GPL", "LGPL", "BSD"}

_SPDX_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9.+-]*$")
_KNOWN_IDS = {spdx for spdx, _ in _TEXTS} | (set(_NAMES.values()) - _AMBIGUOUS)


def _normal(text: str) -> str:
    """Lowercase, one space between words, comment markers at line starts dropped."""
    text = text.lower().replace("\u2019", "'").replace("`", "'").replace('"', "'")
    text = re.sub(r"(?m)^\s*(?:#+|\*+|//+|;+|--)", " ", text)
    return re.sub(r"\s+", " ", text)


def from_text(text: str) -> str:
    """The SPDX id of a full license text, or ``unknown``.

    A file that bundles the licenses of vendored code (scipy's LICENSE.txt)
    states its own license first, so the license whose text starts earliest
    wins; at the same place the more specific one does.
    """
    normal = _normal(text)
    best: tuple[int, int, str] | None = None
    for rank, (spdx, phrases) in enumerate(_TEXTS):
        if all(p in normal for p in phrases):
            where = min(normal.find(p) for p in phrases)
            if best is None or (where, rank) < best[:2]:
                best = (where, rank, spdx)
    return best[2] if best else UNKNOWN


def from_name(name: str) -> str:
    """The SPDX id for a short license name ("MIT License", "BSD-3-Clause", "Apache 2.0")."""
    name = name.strip()
    if not name or "\n" in name:
        return UNKNOWN
    key = re.sub(r"[\s_]+", " ", name.lower().replace("-", " ")).strip()
    key = key.removesuffix(" license") if key not in _NAMES else key
    spdx = _NAMES.get(key) or _NAMES.get(key.replace(" ", "")) or _NAMES.get(key + " license")
    if spdx and spdx not in _AMBIGUOUS:
        return spdx
    canonical = {k.lower(): k for k in _KNOWN_IDS}
    return canonical.get(name.lower(), UNKNOWN)


def from_files(root: Path, names: Iterable[str] | None = None) -> str:
    """The SPDX id told by the license files at the top of ``root`` (LICENSE*, COPYING*, ...).

    ``names`` restricts the look to these relative paths (a package's
    ``License-File`` entries); the first file whose text is recognised wins.
    """
    if names is None:
        try:
            candidates = sorted(
                (p for p in root.iterdir() if LICENSE_FILE.match(p.name) and p.is_file()),
                key=lambda p: (not p.name.lower().startswith("licen"), len(p.name), p.name),
            )
        except OSError:
            return UNKNOWN
    else:
        candidates = [root / n for n in names]
    for path in candidates:
        try:
            if path.is_symlink() or path.stat().st_size > 200_000:
                continue
            text = path.read_text(encoding="utf-8", errors="replace")
        except OSError:
            continue
        spdx = from_text(text)
        if spdx != UNKNOWN:
            return spdx
    return UNKNOWN


def read_small_text(path: Path, limit: int = 200_000) -> str | None:
    """The UTF-8 text of ``path`` if it is a regular file (not a symbolic link) of at most
    ``limit`` bytes, else None: a repository's ``pyproject.toml -> /dev/zero`` is never read."""
    import stat

    try:
        st = path.lstat()
        if not stat.S_ISREG(st.st_mode) or st.st_size > limit:
            return None
        with open(path, "rb") as fh:
            return fh.read(limit + 1)[:limit].decode("utf-8")
    except (OSError, UnicodeDecodeError):
        return None


def from_pyproject(root: Path) -> str:
    """The SPDX id declared in ``root/pyproject.toml`` (``license = "MIT"`` or ``{text = ...}``)."""
    try:
        import tomllib
    except ImportError:  # Python 3.10
        return UNKNOWN
    text = read_small_text(root / "pyproject.toml")
    if text is None:
        return UNKNOWN
    try:
        data = tomllib.loads(text)
    except ValueError:
        return UNKNOWN
    declared = data.get("project", {}).get("license")
    if isinstance(declared, dict):
        declared = declared.get("text")
    if isinstance(declared, str):
        return _expression(declared) or from_name(declared)
    return UNKNOWN


def _expression(text: str) -> str | None:
    """``text`` itself when it reads as an SPDX expression of known ids (``MIT OR Apache-2.0``)."""
    words = [w for w in re.split(r"\s+|[()]", text.strip()) if w]
    if not words or any(not _SPDX_ID.match(w) for w in words):
        return None
    ids = [w for w in words if w.upper() not in ("AND", "OR", "WITH")]
    if ids and all(i.removesuffix("+") in _KNOWN_IDS or i.startswith("LicenseRef-") for i in ids):
        return text.strip()
    return None


def for_tree(root: Path) -> str:
    """The SPDX id of a source tree: its license files first, then its pyproject.toml."""
    spdx = from_files(root)
    return spdx if spdx != UNKNOWN else from_pyproject(root)


def from_metadata(meta: Message, license_texts: Iterable[str] = ()) -> str:
    """The SPDX id of a distribution from its core metadata.

    In order: ``License-Expression``; a short ``License`` field; the license
    classifiers (when they name exactly one license); the shipped license
    files' texts (``license_texts``); a ``License`` field holding a full text.
    """
    expression = (meta.get("License-Expression") or "").strip()
    if expression:
        return expression
    field = (meta.get("License") or "").strip()
    if field and field.upper() != "UNKNOWN":
        spdx = _expression(field) or from_name(field)
        if spdx != UNKNOWN:
            return spdx
    classified = {
        from_name(c.rsplit("::", 1)[-1])
        for c in meta.get_all("Classifier") or []
        if c.startswith("License ::")
    } - {UNKNOWN}
    if len(classified) == 1:
        return classified.pop()
    for text in license_texts:
        spdx = from_text(text)
        if spdx != UNKNOWN:
            return spdx
    if field and "\n" in field:
        return from_text(field)
    return UNKNOWN
