"""The shape of distilled snippets on fixture repositories shaped like issue 21's cases.

Prints, for the current extraction and assembly and, as the same-run
reference, for the previous way (whole earlier blocks prepended, no context
cap, only exact duplicates merged): how many snippets, the median share of a
snippet's lines that are its own, median and 90th percentile length in lines,
near-duplicate pairs within the source (line sets at least 90 % alike), the
snippets over 60 lines whose own code is not, and those skipped for needing
too much context. The fixtures are ``tests/snippet_shapes.py``: a 6-cell
gallery, a star import, one import from a long unrelated block, doctest
``+SKIP``, printed output in the docs, a duplicated example, a long chain.

    .venv/bin/python benchmarks/snippet_shape.py

Both variants extract the same files in the same run (pipeline snippets of the
gallery exist in both); extraction time is printed beside the figures.
"""

from __future__ import annotations

import argparse
import sys
import time
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from jupyter_codedistiller.distill import extract  # noqa: E402
from jupyter_codedistiller.distill.assemble import Assembly, Document  # noqa: E402
from tests.snippet_shapes import FILES, Shape, shape  # noqa: E402


def whole_blocks(self: Document, index: int, cap: int = 0) -> Assembly:
    """The previous assembly: every earlier block that defines a needed name, whole, no cap."""
    parts = [self.blocks[k].code.strip("\n") for k in self.needed_blocks(index)]
    own = self.blocks[index].code.strip("\n")
    context = sum(len(p.split("\n")) for p in parts)
    return Assembly("\n\n".join([*parts, own]) + "\n", context, self.own(index).imports)


def exact_only(candidates: list) -> list:
    seen: set[str] = set()
    kept = []
    for c in candidates:
        key = " ".join(c.code.split())
        if key not in seen:
            seen.add(key)
            kept.append(c)
    return kept


@contextmanager
def previous_assembly():
    saved = (Document.assemble, extract.dedupe)
    Document.assemble, extract.dedupe = whole_blocks, exact_only
    try:
        yield
    finally:
        Document.assemble, extract.dedupe = saved


def distil() -> tuple[list[dict], float]:
    """Records of every candidate, as the refresh would store them, and the extraction time."""
    started = time.perf_counter()
    found = []
    for path, text in FILES.items():
        if extract.is_candidate_file(path):
            found += extract.extract_file(path, text.encode()).candidates
    kept = extract.dedupe(found)
    seconds = time.perf_counter() - started
    return [{"code": c.code, "context_lines": c.context_lines, "skipped": c.skipped,
             "source": "fixtures"} for c in kept], seconds


def row(name: str, figures: Shape, seconds: float) -> str:
    return (f"| {name} | {figures.snippets} | {figures.own_share_median:.0%} | {figures.length_median:g} | "
            f"{figures.length_p90:g} | {figures.near_duplicates} | {figures.over_60_not_own} | "
            f"{figures.skipped_for_context} | {seconds * 1000:.0f} ms |")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.parse_args()
    current, t_current = distil()
    with previous_assembly():
        previous, t_previous = distil()
    print("# snippet shape on the issue-21 fixtures (tests/snippet_shapes.py)\n")
    print("| assembly | snippets | own lines (median) | length median | length p90 | near-duplicates "
          "| > 60 lines, own code not | skipped: too much context | extraction |")
    print("|---|---|---|---|---|---|---|---|---|")
    print(row("fewest earlier statements, cap 30, near-duplicates merged (now)", shape(current), t_current))
    print(row("reference: whole earlier blocks, no cap, exact duplicates only", shape(previous), t_previous))


if __name__ == "__main__":
    main()
