"""The default library: curated scientific and biomedical packages, whichever are installed.

An empty library gets these installed distributions as ``pkg:`` sources, the
smallest first, so that the first validated snippets appear within a minute.
Big packages are validated over several passes (``validate_per_pass``).
"""

from __future__ import annotations

from ..library import Library
from ..model import RegisteredSource

CURATED = (
    "lifelines",
    "scikit-survival",
    "pydeseq2",
    "pingouin",
    "statsmodels",
    "scikit-learn",
    "scipy",
    "pandas",
    "anndata",
    "scanpy",
    "biopython",
)
VALIDATE_PER_PASS = 40


def installed_curated() -> list[tuple[str, int]]:
    """(distribution, number of installed files) for each curated package installed, smallest first."""
    from importlib import metadata

    found = []
    for name in CURATED:
        try:
            dist = metadata.distribution(name)
        except metadata.PackageNotFoundError:
            continue
        found.append((name, len(dist.files or ())))
    return sorted(found, key=lambda item: item[1])


def ensure_default_sources(library: Library, *, per_pass: int | None = VALIDATE_PER_PASS) -> list[RegisteredSource]:
    """Register the installed curated packages if the library has never had a source; returns what was added."""
    from .sources import SourceError, add

    if library.sources(include_removed=True):
        return []
    added = []
    for order, (name, _) in enumerate(installed_curated(), 1):
        try:
            src = add(library, f"pkg:{name}")
        except SourceError:
            continue
        src.settings.default, src.settings.validate_per_pass, src.settings.order = True, per_pass, order
        library.save_source(src)
        added.append(src)
    return added

