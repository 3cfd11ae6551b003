"""Which installed distributions a snippet used, worked out by trusted code only.

The record of a run never takes anything from the snippet's process: the
distributions and versions are read here, in the supervisor, from the
interpreter's installed metadata (its ``sys.path`` as probed with ``-I``, never
the checkout's claims), and the modules a snippet used are read from its text
and, for code of the checkout it imports, from the checkout's files (parsed,
never run; bounded).
"""

from __future__ import annotations

import ast
import os
import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from importlib import metadata

from ..imports import normalise

MAX_LOCAL_FILES = 400  # checkout modules followed per snippet
MAX_LOCAL_BYTES = 4 * 1024 * 1024


@dataclass
class Installed:
    """The distributions found on some paths: top-level module -> names, name -> version."""

    fingerprint: tuple
    tops: dict[str, list[str]] = field(default_factory=dict)
    versions: dict[str, str] = field(default_factory=dict)  # normalised name -> version
    names: dict[str, str] = field(default_factory=dict)  # normalised name -> the name as spelled

    def version(self, name: str) -> str | None:
        return self.versions.get(normalise(name))


_lock = threading.Lock()
_cache: dict[tuple[str, ...], Installed] = {}


def fingerprint(paths: Sequence[str]) -> tuple:
    """Changes when a distribution is installed, removed or upgraded on ``paths``."""
    out = []
    for p in paths:
        try:
            out.append((p, os.stat(p).st_mtime_ns))
        except OSError:
            out.append((p, None))
    return tuple(out)


def installed(paths: Sequence[str]) -> Installed:
    """The distributions installed on ``paths`` (cached until one of the directories changes)."""
    key = tuple(p for p in paths if p and os.path.isdir(p))
    stamp = fingerprint(key)
    with _lock:
        found = _cache.get(key)
        if found is not None and found.fingerprint == stamp:
            return found
    found = Installed(stamp)
    for dist in metadata.distributions(path=list(key)):
        try:
            name = dist.metadata["Name"]
            version = dist.version
        except Exception:  # a broken dist-info: not a distribution we can name
            continue
        if not name or not version:
            continue
        norm = normalise(name)
        if norm in found.versions:  # shadowed by an earlier path entry, as at import time
            continue
        found.versions[norm], found.names[norm] = version, name
        tops = (dist.read_text("top_level.txt") or "").split()
        if not tops:
            tops = sorted({str(f).split("/")[0].split(".")[0] for f in (dist.files or ())
                           if not str(f).split("/")[0].endswith((".dist-info", ".egg-info", ".data"))
                           and not str(f).startswith("..")})
        for top in tops:
            found.tops.setdefault(top, []).append(name)
    with _lock:
        _cache[key] = found
    return found


def _module_file(name: str, roots: Sequence[str]) -> str | None:
    parts = name.split(".")
    for root in roots:
        base = os.path.join(root, *parts)
        for candidate in (base + ".py", os.path.join(base, "__init__.py")):
            if os.path.isfile(candidate):
                return candidate
    return None


def _is_local(top: str, roots: Sequence[str]) -> bool:
    return any(os.path.isfile(os.path.join(r, top + ".py")) or os.path.isdir(os.path.join(r, top))
               for r in roots)


def _imports(tree: ast.AST, package: str) -> set[str]:
    """Dotted module names imported in ``tree``; relative ones resolved against ``package``."""
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[:len(base) - node.level + 1] if node.level > 1 else base
                if not base or not base[0]:
                    continue
                stem = ".".join(base + ([node.module] if node.module else []))
            elif node.module:
                stem = node.module
            else:
                continue
            found.add(stem)
            found.update(f"{stem}.{alias.name}" for alias in node.names if alias.name != "*")
    return found


def used_modules(code: str, roots: Sequence[str]) -> set[str]:
    """Top-level modules the snippet imports, plus those the checkout code it imports does."""
    try:
        tree = ast.parse(code)
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return set()
    roots = [os.path.realpath(r) for r in roots if os.path.isdir(r)]
    queue = sorted(_imports(tree, ""))
    tops: set[str] = set()
    seen: set[str] = set()
    files = spent = 0
    while queue:
        name = queue.pop()
        if name in seen:
            continue
        seen.add(name)
        top = name.partition(".")[0]
        tops.add(top)
        if not roots or not _is_local(top, roots) or files >= MAX_LOCAL_FILES:
            continue
        path = _module_file(name, roots)
        if path is None:
            continue
        try:
            size = os.path.getsize(path)
            if spent + size > MAX_LOCAL_BYTES:
                continue
            with open(path, "rb") as f:
                sub = ast.parse(f.read())
        except (OSError, SyntaxError, ValueError, RecursionError, MemoryError):
            continue
        files, spent = files + 1, spent + size
        package = name if path.endswith("__init__.py") else name.rpartition(".")[0]
        queue.extend(sorted(_imports(sub, package) - seen))
    tops.discard("__future__")
    return tops


def used_distributions(code: str, paths: Sequence[str], roots: Sequence[str]) -> dict[str, str]:
    """Installed distribution -> version for what the snippet (and checkout code it imports) uses.

    ``paths``: the interpreter's own ``sys.path`` (installed metadata);
    ``roots``: the checkout directories on the snippet's path, whose modules are
    followed, not looked up (a checkout names no installed version of itself).
    """
    inst = installed(paths)
    roots = [r for r in roots if os.path.isdir(r)]
    found: dict[str, str] = {}
    for top in sorted(used_modules(code, roots)):
        if _is_local(top, roots):
            continue
        for name in inst.tops.get(top, ()):
            version = inst.version(name)
            if version:
                found[name] = version
    return found


def missing(names: Iterable[str], paths: Sequence[str]) -> list[str]:
    """The distributions among ``names`` not installed on ``paths``."""
    inst = installed(paths)
    return [n for n in names if inst.version(n) is None]
