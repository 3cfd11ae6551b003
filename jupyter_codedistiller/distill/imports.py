"""What code imports, and which installed distributions provide it.

``imports_of(code)`` reads the top-level module names from the code with
``ast``; ``requirements_for(names)`` maps them to distribution names and the
versions installed in this environment. The environment scan is cached; call
``forget_environment()`` after installing or upgrading packages in-process.
"""

from __future__ import annotations

import ast
import importlib.metadata as metadata
import re
import sys
from functools import lru_cache

# Import names whose distribution is named differently, for modules that are not installed
# (installed ones are looked up in the environment's metadata).
KNOWN_DISTRIBUTIONS = {
    "Bio": "biopython",
    "PIL": "Pillow",
    "attr": "attrs",
    "bs4": "beautifulsoup4",
    "cv2": "opencv-python",
    "dateutil": "python-dateutil",
    "dotenv": "python-dotenv",
    "igraph": "python-igraph",
    "jwt": "PyJWT",
    "skbio": "scikit-bio",
    "skimage": "scikit-image",
    "sklearn": "scikit-learn",
    "yaml": "PyYAML",
}


def imports_from_tree(tree: ast.AST) -> list[str]:
    """Top-level module names imported anywhere in ``tree`` (absolute imports only), sorted."""
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
    names.discard("__future__")
    return sorted(names)


_IMPORT_LINE = re.compile(r"^[ \t]*(?:from[ \t]+([A-Za-z_]\w*)[\w.]*[ \t]+import\b|import[ \t]+(.+))", re.M)


def imports_of(code: str) -> list[str]:
    """Top-level module names the code imports, sorted; a best-effort line scan if it does not parse."""
    try:
        return imports_from_tree(ast.parse(code))
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        pass
    names: set[str] = set()
    for match in _IMPORT_LINE.finditer(code):
        if match.group(1):
            names.add(match.group(1))
        else:
            for part in match.group(2).split(","):
                name = part.strip().split(" ")[0].split(".")[0]
                if name.isidentifier():
                    names.add(name)
    names.discard("__future__")
    return sorted(names)


@lru_cache(maxsize=1)
def _distributions_by_module() -> dict[str, list[str]]:
    try:
        return dict(metadata.packages_distributions())
    except Exception:  # a broken distribution in the environment must not stop extraction
        return {}


@lru_cache(maxsize=4096)
def installed_version(distribution: str) -> str | None:
    """The installed version of ``distribution``, or None."""
    try:
        return metadata.version(distribution)
    except Exception:
        return None


def forget_environment() -> None:
    """Drop the cached environment scan (after packages were installed or upgraded)."""
    _distributions_by_module.cache_clear()
    installed_version.cache_clear()


def normalise(name: str) -> str:
    """A distribution name in its canonical comparison form (PEP 503: lower case, runs of -_. as -)."""
    return re.sub(r"[-_.]+", "-", name).lower()


def distributions_for(module: str) -> list[str]:
    """Distribution names providing the top-level ``module`` (its own name when unknown)."""
    found = _distributions_by_module().get(module)
    if found:
        unique = sorted(set(found), key=str.lower)
        # a namespace shared by many distributions (google, azure): prefer the eponymous one
        same = [d for d in unique if normalise(d) == normalise(module)]
        return same or unique
    return [KNOWN_DISTRIBUTIONS.get(module, module)]


def requirements_for(imports: list[str]) -> dict[str, str | None]:
    """Distribution name -> installed version (None when not installed); stdlib excluded."""
    stdlib = sys.stdlib_module_names
    requirements: dict[str, str | None] = {}
    for module in imports:
        if module in stdlib or not module.isidentifier():
            continue
        for distribution in distributions_for(module):
            requirements[distribution] = installed_version(distribution)
    return dict(sorted(requirements.items(), key=lambda item: item[0].lower()))
