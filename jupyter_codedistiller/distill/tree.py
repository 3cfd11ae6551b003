"""A source's tree at its pinned commit or version, and which code its snippets run against.

One plan of "the tree at its commit", shared by ``refresh`` (its ``Plan`` adds what to read
this time) and the LLM pass (``generate.SourceContext`` adds the source and all its files):
the root folder, the pin, license, repository, the distribution the tree builds, and the
``python_path`` a snippet runs with, decided once here.

- A git source at a commit (``at_commit``): the code that runs is the installed distribution
  when the checkout's distribution is installed (the checkout is data then, never on the path),
  else the checkout itself (whose own version ``provides`` names).
- A package source at its installed version (``at_version``): the installed files.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from . import licenses, sources

if TYPE_CHECKING:
    from .sources import PackageInfo


@dataclass
class Tree:
    """The files of a source at one pin and how code from them runs."""

    root: Path
    files: list[str] = field(default_factory=list)
    commit: str | None = None
    version: str | None = None
    ref: str | None = None
    license: str = licenses.UNKNOWN
    repository: str | None = None
    package: str | None = None
    python_path: list[str] = field(default_factory=list)
    virtual: dict[str, bytes] = field(default_factory=dict)  # files a package has only in its metadata
    # Top-level modules of the distribution the snippets run against (a script folder holding
    # one would shadow it), and the version of the code that runs for it: the installed one, or
    # the checkout's own when the checkout runs (the sandbox names neither when it is on the path).
    dist_modules: set[str] = field(default_factory=set)
    provides: dict[str, str] = field(default_factory=dict)

    @property
    def pin(self) -> str | None:
        return self.commit or self.version

    def read(self, path: str, limit: int) -> str | None:
        """The file's text, at most ``limit`` characters; None when unreadable or binary."""
        try:
            data = sources.read_file(self.root, path, self.virtual)
        except OSError:
            return None
        if b"\0" in data[:8192]:
            return None
        return data.decode("utf-8", errors="replace")[:limit]


T = TypeVar("T", bound=Tree)


def at_commit(kind: type[T], checkout: Path, commit: str, *, ref: str | None,
              repository: str | None, **extra: Any) -> T:
    """The tree of a git checkout at ``commit`` (already checked out) as a ``kind``
    (``Tree`` or a subclass, given its own fields in ``extra``)."""
    import importlib.metadata as metadata

    tree = kind(root=checkout, commit=commit, ref=ref, license=licenses.for_tree(checkout),
                repository=repository, package=project_name(checkout), **extra)
    dist = None
    if tree.package:
        try:
            dist = metadata.distribution(tree.package)
        except metadata.PackageNotFoundError:
            dist = None
    if dist is not None:
        where = os.path.realpath(str(dist.locate_file("")))
        tree.python_path = [] if where in standard_site_dirs() else [where]
        tree.dist_modules = top_modules(dist, tree.package)
        tree.provides = {dist.metadata.get("Name") or tree.package: dist.version}
        return tree
    tree.python_path = [str(checkout)]
    if (checkout / "src").is_dir():
        tree.python_path.append(str(checkout / "src"))
    version = checkout_version(checkout, tree.package)
    if tree.package and version:
        tree.provides = {tree.package: version}
    return tree


def at_version(kind: type[T], info: PackageInfo, **extra: Any) -> T:
    """The tree of an installed distribution at its version as a ``kind`` (see ``at_commit``)."""
    import importlib.metadata as metadata

    tree = kind(root=info.root, version=info.version, license=info.license,
                repository=info.repository, package=info.name, virtual=info.virtual, **extra)
    if os.path.realpath(info.root) not in standard_site_dirs():
        tree.python_path = [str(info.root)]
    tree.provides = {info.name: info.version}
    try:
        tree.dist_modules = top_modules(metadata.distribution(info.name), info.name)
    except metadata.PackageNotFoundError:
        pass
    return tree


def project_name(root: Path) -> str | None:
    """The distribution a repository builds, from pyproject.toml or setup.cfg, if it says."""
    try:
        import tomllib

        name = tomllib.loads(licenses.read_small_text(root / "pyproject.toml") or "").get(
            "project", {}).get("name")
        if isinstance(name, str) and name:
            return name
    except (ImportError, ValueError, AttributeError):  # no tomllib before 3.11
        pass
    text = licenses.read_small_text(root / "setup.cfg") or ""
    m = re.search(r"^\[metadata\][^\[]*?^name\s*=\s*(\S+)", text, re.M | re.S)
    return m.group(1) if m else None


def standard_site_dirs() -> set[str]:
    """The interpreter's own site-packages folders (a package found there needs no path entry)."""
    import site
    import sysconfig

    dirs = {sysconfig.get_paths().get(k) for k in ("purelib", "platlib")}
    try:
        dirs.update(site.getsitepackages())
        dirs.add(site.getusersitepackages())
    except AttributeError:  # some virtualenvs' site module lacks these
        pass
    return {os.path.realpath(d) for d in dirs if d}


def top_modules(dist: Any, fallback: str | None) -> set[str]:
    """Top-level import names a distribution installs (from its files), or its name's."""
    names = set()
    for f in dist.files or ():
        top = f.parts[0] if f.parts else ""
        if top.endswith((".dist-info", ".egg-info", ".pth", ".data")) or top == "..":
            continue
        names.add(top.split(".", 1)[0] if len(f.parts) == 1 else top)
    names = {n for n in names if n.isidentifier()}
    if not names and fallback:
        names.add(re.sub(r"[-.]+", "_", fallback).lower())
    return names


def checkout_version(root: Path, package: str | None) -> str | None:
    """The version a checkout says it is: pyproject/setup.cfg metadata, else ``__version__``."""
    try:
        import tomllib

        version = tomllib.loads(licenses.read_small_text(root / "pyproject.toml") or "").get(
            "project", {}).get("version")
        if isinstance(version, str) and version:
            return version
    except (ImportError, ValueError, AttributeError):
        pass
    text = licenses.read_small_text(root / "setup.cfg") or ""
    m = re.search(r"^\[metadata\][^\[]*?^version\s*=\s*([\w.+!-]+)\s*$", text, re.M | re.S)
    if m:
        return m.group(1)
    module = re.sub(r"[-.]+", "_", package or "").lower()
    for base in (root, root / "src"):
        for rel in (f"{module}/__init__.py", f"{module}/_version.py", f"{module}/version.py",
                    f"{module}.py"):
            if module:
                found = re.search(r"^__version__\s*=\s*['\"]([^'\"]+)['\"]",
                                  licenses.read_small_text(base / rel) or "", re.M)
                if found:
                    return found.group(1)
    return None
