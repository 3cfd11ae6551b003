"""The child programs' source text: real modules of this package, run in the child with ``-c``.

They run under the snippet's interpreter (which may not be the distiller's) and
with ``-I -S``, so they are passed as text rather than imported from site.
"""

from __future__ import annotations

import functools
from pathlib import Path

CHILD_PROGRAMS = ("setup", "runner", "facts", "zygote")


@functools.cache
def program(name: str) -> str:
    """The source of the child program ``name`` (one of ``CHILD_PROGRAMS``)."""
    if name not in CHILD_PROGRAMS:
        raise ValueError(f"no child program {name!r}")
    return (Path(__file__).parent / f"{name}.py").read_text(encoding="utf-8")
