"""Snippets an analyst would insert (issue 21): minimal, runnable, no near-duplicates, truthful.

One fixture repository (``tests/snippet_shapes.py``) holds a copy of each
shape that went wrong in real repositories; it is distilled once with the
real refresh and validated in the real sandbox. Each test reads the stored
records of one case.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator

import pytest

from jupyter_codedistiller.distill import sources
from jupyter_codedistiller.distill.refresh import refresh
from jupyter_codedistiller.distill.sandbox import SandboxSettings
from jupyter_codedistiller.library import Library
from jupyter_codedistiller.model import Snippet
from jupyter_codedistiller.textview import provenance_text

from .gitrepos import file_url, make_repo
from .snippet_shapes import FILES, shape

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="the sandbox targets Linux")


@pytest.fixture(scope="module")
def stored(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[tuple[str, str], Snippet]]:
    root = tmp_path_factory.mktemp("shapes")
    make_repo(root / "repo", FILES)
    library = Library(root / "library.db")
    sources.add(library, file_url(root / "repo"))
    report = refresh(library, workers=2, settings=SandboxSettings(timeout=60))
    assert not report.errors, report.errors
    snippets = library.all(include_retired=False)
    yield {(s.source.path, s.origin.details["anchor"]): s for s in snippets}
    library.close()


def lines(code: str) -> list[str]:
    return code.rstrip("\n").split("\n")


def test_every_stored_snippet_runs_or_says_why_not(stored: dict) -> None:
    for (path, anchor), s in stored.items():
        if anchor == "md:count:1":
            continue
        assert s.validation.status == "passed", (path, anchor, s.validation.stderr_tail)


def test_a_gallery_is_one_pipeline_plus_cells_showing_their_own_step(stored: dict) -> None:
    path = "examples/plot_pipeline.py"
    cells = {anchor: s for (p, anchor), s in stored.items() if p == path and anchor.startswith("cell:")}
    assert len(cells) == 6
    pipeline = stored[(path, "pipeline")]
    assert pipeline.origin.details["extracted_from"] == "script" and pipeline.origin.kind == "verbatim"
    assert pipeline.code == FILES[path]
    filtering = cells["cell:filter-genes"]
    # its own step and only the set-up it needs: no CountSet, no groups, no statistics
    assert lines(filtering.code)[-1] == "counts = {gene: c for gene, c in counts.items() if sum(c) >= 10}"
    assert "CountSet" not in filtering.code and "groups" not in filtering.code
    assert "statistics" not in filtering.code and filtering.origin.details["context_lines"] == 3
    summary = cells["cell:summarise-one-gene"]
    assert "cs.fit()" not in summary.code and "CountSet" not in summary.code
    for s in cells.values():
        assert s.origin.details["context_lines"] < len(lines(pipeline.code))
        assert s.code != pipeline.code


def test_a_star_import_brings_an_import_of_what_is_used_not_its_block(stored: dict) -> None:
    plot = stored[("README.md", "md:plotting-multiple-figures-on-a-plot:1")]
    assert plot.code == (
        "from lifekit import KaplanMeier\ndurations = [5, 6, 6, 2, 4, 4]\nevents = [1, 0, 0, 1, 1, 1]\n\n"
        "kmf = KaplanMeier()\nkmf.fit(durations, events)\nprint(round(kmf.survival_at(4), 3))\n"
    )
    assert "restricted_mean" not in plot.code and "k_fold" not in plot.code
    assert plot.validation.stdout_tail.strip() == "0.5"


def test_one_import_from_a_long_unrelated_block_is_one_line(stored: dict) -> None:
    posthoc = stored[("docs/guide.md", "md:post-hoc-tests:1")]
    assert lines(posthoc.code)[0] == "import statkit as pg"
    assert "qq" not in posthoc.code and "random" not in posthoc.code
    assert posthoc.origin.details["context_lines"] == 1 and posthoc.imports == ["statkit"]


def test_doctest_skip_lines_are_not_run_and_ellipsis_output_is_not_code(stored: dict) -> None:
    example = stored[("statkit/regression.py", "doc:linear_regression")]
    assert "residuals_" not in example.code and "df_resid_" not in example.code
    assert "'slope': 2.0..." not in example.code and "doctest" not in example.code
    assert "print(lm)" in example.code
    assert example.validation.status == "passed"


def test_printed_output_from_the_docs_is_not_kept_in_the_code(stored: dict) -> None:
    summaries = [s for (p, a), s in stored.items() if a == "md:summary:1"]
    assert len(summaries) == 1
    [summary] = summaries
    assert "<lifekit.KaplanMeier" not in summary.code and "#>" not in summary.code
    assert "median  5.0" not in summary.code
    # what the run printed is the real output, not the documentation's copy
    assert "fitted with 3 observations" in summary.validation.stdout_tail


def test_near_duplicates_in_a_source_are_one_snippet_that_links_the_others(stored: dict) -> None:
    [summary] = [s for (p, a), s in stored.items() if a == "md:summary:1"]
    [other] = summary.also_at
    assert {summary.source.path, other.path} == {"README.md", "docs/intro.md"}
    assert other.anchor == "md:summary:1" and other.line_start


def test_a_block_needing_too_much_context_is_skipped_with_the_reason(stored: dict) -> None:
    count = stored[("docs/table.md", "md:count:1")]
    assert count.code == "print(len(table))\n"
    assert count.validation.status == "skipped"
    assert count.validation.reason == "needs too much context: over 30 lines from earlier in the document"


def test_shape_of_the_fixture_snippets(stored: dict) -> None:
    records = [{"code": s.code, "context_lines": s.origin.details.get("context_lines", 0),
                "skipped": s.validation.reason if s.validation.status == "skipped" else "",
                "source": s.source.source_id} for s in stored.values()]
    figures = shape(records)
    assert figures.own_share_median >= 0.6, figures
    assert figures.over_60_not_own == 0, figures
    assert figures.near_duplicates == 0, figures
    assert figures.skipped_for_context == 1, figures


def test_the_record_round_trips_also_at_and_why_shows_it(stored: dict) -> None:
    [summary] = [s for (p, a), s in stored.items() if a == "md:summary:1"]
    again = Snippet.from_json(summary.to_json())
    assert again.also_at == summary.also_at
    other = summary.also_at[0]
    why = provenance_text(summary).splitlines()
    assert f"also at    {other.path} lines {other.line_start}-{other.line_end}" in why
    posthoc = stored[("docs/guide.md", "md:post-hoc-tests:1")]
    assert "made       assembled (1 line of set-up from earlier in the file)" in provenance_text(posthoc)

