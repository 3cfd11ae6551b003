"""The public names of a package's objects, from its re-exports.

A function defined in ``pandas/core/reshape/tile.py`` is used as ``pandas.qcut``:
``pandas/__init__.py`` imports it from ``pandas.core.reshape.api``, which imports it
from ``pandas.core.reshape.tile``. An analyst searches for, and reads, the public
name. ``Exports.public_name`` follows the ``from X import name`` statements of the
defining module's enclosing packages' ``__init__.py`` files (and of the modules they
import from), statically: nothing is imported or run.
"""

from __future__ import annotations

import ast
from collections.abc import Callable

from .extract import module_name

MAX_DEPTH = 8  # re-exports followed through at most this many modules
MAX_FILES = 2000  # files parsed for one source at most


class Exports:
    """Public names for the objects of one source; ``read(path)`` gives a file's bytes or None."""

    def __init__(self, read: Callable[[str], bytes | None]) -> None:
        self._read = read
        self._imports: dict[str, dict[str, tuple[str, str]]] = {}  # module -> name -> (module, name)
        self._parsed = 0

    def _module_imports(self, prefix: str, module: str) -> dict[str, tuple[str, str]]:
        """name -> (module, name) for the ``from ... import`` statements at a module's top level."""
        if module in self._imports:
            return self._imports[module]
        self._imports[module] = found = {}
        if self._parsed >= MAX_FILES:
            return found
        base = prefix + module.replace(".", "/")
        for path, package in ((base + "/__init__.py", module), (base + ".py", module.rpartition(".")[0])):
            data = self._read(path)
            if data is None:
                continue
            self._parsed += 1
            try:
                tree = ast.parse(data)
            except (SyntaxError, ValueError, RecursionError, MemoryError):
                return found
            for node in tree.body:
                if isinstance(node, ast.ImportFrom):
                    source = node.module or ""
                    if node.level:
                        parts = package.split(".")
                        parts = parts[: len(parts) - (node.level - 1)] if node.level > 1 else parts
                        if not parts or not parts[0]:
                            continue
                        source = ".".join(parts + ([source] if source else []))
                    for alias in node.names:
                        if alias.name != "*":
                            found[alias.asname or alias.name] = (source, alias.name)
            return found
        return found

    def _origin(self, prefix: str, module: str, name: str) -> tuple[str, str]:
        """Where ``module.name`` is defined, following re-exports."""
        for _ in range(MAX_DEPTH):
            step = self._module_imports(prefix, module).get(name)
            if step is None or step == (module, name):
                break
            module, name = step
        return module, name

    def public_name(self, path: str, qualname: str, api: str) -> str:
        """The shortest name an enclosing package exports the object ``qualname`` of the file
        ``path`` under (``pandas.qcut``), or ``api`` as extracted when none does."""
        module = module_name(path)
        if not module or not qualname:
            return api
        at = path.find(module.replace(".", "/"))
        prefix = path[:at] if at > 0 else ""  # "src/" of "src/pkg/mod.py"
        head, _, rest = qualname.partition(".")
        parts = module.split(".")
        packages = parts[:-1] if not path.endswith("__init__.py") else parts
        for depth in range(1, len(packages) + 1):
            package = ".".join(packages[:depth])
            for alias, (source, name) in self._module_imports(prefix, package).items():
                if alias.startswith("_"):
                    continue
                if self._origin(prefix, source, name) == (module, head):
                    return f"{package}.{alias}" + (f".{rest}" if rest else "")
        return api
