"""Assembly: def-use analysis across the blocks of one document, and session prompt stripping."""

from __future__ import annotations

import ast
import textwrap

import pytest

from jupyter_codedistiller.distill.assemble import (
    Block,
    Document,
    analyse,
    assemble,
    is_session,
    needed_blocks,
    session_lines,
)


def facts(code: str):
    return analyse(ast.parse(textwrap.dedent(code)))


def session_code(text: str) -> str:
    """The code ``session_lines`` reads from a session, as one text."""
    return "\n".join(line for _, line in session_lines(text.splitlines())).strip("\n") + "\n"


def blocks(*codes: str) -> list[Block]:
    return [Block(textwrap.dedent(code).strip() + "\n") for code in codes]


# ---------------------------------------------------------------- analysis


def test_imports_and_assignments_define_names_and_loads_need_them() -> None:
    result = facts(
        """
        import numpy as np
        import os.path
        from lifelines import KaplanMeierFitter as KMF
        kmf = KMF()
        kmf.fit(durations, events)
        """
    )
    assert {"np", "os", "KMF", "kmf"} <= result.defines
    assert result.imported == {"np", "os", "KMF"}
    assert result.needs == {"durations", "events"}
    assert "kmf" in result.modifies


def test_builtins_are_never_needs() -> None:
    result = facts("print(len(range(3)), sorted([2, 1]), __name__)")
    assert result.needs == frozenset()


def test_a_name_used_before_the_block_binds_it_is_needed() -> None:
    assert facts("df = df.dropna()").needs == {"df"}
    assert facts("total += 1").needs == {"total"}
    assert facts("x = 1\ny = x + 1").needs == frozenset()


def test_function_bodies_need_their_free_names_only() -> None:
    result = facts(
        """
        def summarise(frame, column="T"):
            counts = frame[column].value_counts()
            return scale * counts + offset

        offset = 3
        """
    )
    # ``offset`` is bound later in the same block, before any call could run
    assert result.needs == {"scale"}
    assert "summarise" in result.defines


def test_comprehension_targets_and_lambda_parameters_are_local() -> None:
    result = facts(
        """
        squares = [v * v for v in values if v > cutoff]
        table = {k: w for k, w in pairs}
        key = lambda item: item[0] + shift
        """
    )
    assert result.needs == {"values", "cutoff", "pairs", "shift"}


def test_class_bodies_with_as_except_as_walrus_and_global() -> None:
    result = facts(
        """
        class Model(Base):
            rate = default_rate
            def fit(self):
                return helper(self)

        with open(path) as handle:
            text = handle.read()
        try:
            value = int(text)
        except ValueError as error:
            reason = str(error)
        if (n := len(text)) > limit:
            pass

        def configure():
            global SETTINGS
            SETTINGS = {}
        """
    )
    assert result.needs == {"Base", "default_rate", "helper", "path", "limit"}
    assert {"Model", "handle", "text", "value", "error", "reason", "n", "SETTINGS"} <= result.defines


def test_in_place_updates_are_recorded_as_modifications() -> None:
    result = facts(
        """
        df["age"] = df["age"] / 365
        model.coef_ = None
        del cache["x"]
        kmf.fit(T, E).plot()
        """
    )
    assert result.modifies == {"df", "model", "cache", "kmf"}


def test_star_import_is_flagged() -> None:
    assert facts("from pylab import *").star is True


def test_unparsable_block_has_empty_analysis() -> None:
    block = Block("def broken(:\n")
    assert block.analysis.defines == frozenset() and block.analysis.needs == frozenset()
    with pytest.raises(SyntaxError):
        block.tree  # noqa: B018


# ---------------------------------------------------------------- needed blocks


STORY = blocks(
    "from lifelines.datasets import load_waltons\ndf = load_waltons()",  # 0
    "import math\nprint(math.pi)",  # 1 unrelated
    "T = df['T']\nE = df['E']",  # 2
    "from lifelines import KaplanMeierFitter\nkmf = KaplanMeierFitter()",  # 3
    "kmf.fit(T, event_observed=E)",  # 4 updates kmf in place
    "threshold = 0.5",  # 5 unrelated
    "kmf.plot_survival_function()\nprint(kmf.median_survival_time_)",  # 6
)


def test_needed_blocks_are_minimal_and_transitive() -> None:
    # 6 needs kmf (3) and its in-place fit (4), which needs T, E (2), which need df (0)
    assert needed_blocks(STORY, 6) == [0, 2, 3, 4]
    assert 1 not in needed_blocks(STORY, 6) and 5 not in needed_blocks(STORY, 6)


def test_assemble_joins_blocks_in_document_order() -> None:
    code, assembled = assemble(STORY, 6)
    assert assembled is True
    assert code.index("load_waltons()") < code.index("T = df") < code.index("kmf.fit(")
    assert code.rstrip().endswith("print(kmf.median_survival_time_)")
    assert "math" not in code and "threshold" not in code
    ast.parse(code)


def test_self_contained_block_is_verbatim() -> None:
    code, assembled = assemble(STORY, 1)
    assert (code, assembled) == ("import math\nprint(math.pi)\n", False)


def test_latest_definition_wins_and_rebinding_pulls_the_chain() -> None:
    doc = blocks(
        "import pandas as pd\ndf = pd.read_csv('a.csv')",
        "df = pd.read_csv('b.csv')",
        "df = df.dropna()",
        "df.describe()",
    )
    # block 3 uses df from 2, which reads df from 1 (not 0's df), which needs pd from 0
    assert needed_blocks(doc, 3) == [0, 1, 2]


def test_method_calls_on_modules_do_not_pull_blocks() -> None:
    doc = blocks(
        "import matplotlib.pyplot as plt",
        "plt.plot([1, 2])\nplt.title('first figure')",
        "plt.hist([1, 2, 2])",
    )
    assert needed_blocks(doc, 2) == [0]


def test_unresolved_names_fall_back_to_a_star_import() -> None:
    doc = blocks("from pylab import *", "x = 1", "plot(linspace(0, 1))")
    assert needed_blocks(doc, 2) == [0]


def test_a_star_import_becomes_an_import_of_just_the_names_used() -> None:
    doc = Document(blocks(
        "from pylab import *\nx = linspace(0, 1)\nprint(x)\nfigure()",
        "y = 2",
        "plot(x)\nshow()",
    ))
    made = doc.assemble(2)
    # the block's plot and show, and linspace for the x it needs; not figure, not the prints
    assert made.code == "from pylab import linspace, plot, show\nx = linspace(0, 1)\n\nplot(x)\nshow()\n"
    assert made.context_lines == 2 and made.imports == ["pylab"]


def test_several_star_imports_stay_as_they_are() -> None:
    doc = Document(blocks("from pylab import *", "from numpy import *", "plot(linspace(0, 1))"))
    assert doc.assemble(2).code == "from pylab import *\n\nfrom numpy import *\n\nplot(linspace(0, 1))\n"


def test_names_nobody_defines_are_left_alone() -> None:
    doc = blocks("a = 1", "print(undefined_name)")
    assert needed_blocks(doc, 1) == []
    assert assemble(doc, 1) == ("print(undefined_name)\n", False)


def test_function_defined_earlier_brings_its_own_needs() -> None:
    doc = blocks(
        "import statistics",
        "scale = 2",
        "def spread(xs):\n    return scale * statistics.stdev(xs)",
        "print(spread([1, 2, 3]))",
    )
    assert needed_blocks(doc, 3) == [0, 1, 2]


# ---------------------------------------------------------------- sessions


SESSION = """\
>>> import statistics
>>> data = [2, 4, 4, 5]
>>> for x in data:
...     print(x)
...
2
4
4
5
>>> statistics.mean(data)
3.75
>>> statistics.mean([])
Traceback (most recent call last):
    ...
statistics.StatisticsError: mean requires at least one data point
>>> result = statistics.median(data)
"""


def test_session_lines_drop_prompts_outputs_and_demonstrated_errors() -> None:
    code = session_code(SESSION)
    assert code == (
        "import statistics\n"
        "data = [2, 4, 4, 5]\n"
        "for x in data:\n"
        "    print(x)\n"
        "\n"
        "statistics.mean(data)\n"
        "result = statistics.median(data)\n"
    )
    ast.parse(code)


def test_session_lines_keep_their_offsets() -> None:
    lines = SESSION.splitlines()
    offsets = [offset for offset, _ in session_lines(lines)]
    assert offsets[:4] == [0, 1, 2, 3]
    assert lines[offsets[-1]].startswith(">>> result")


def test_ipython_prompts() -> None:
    text = "In [1]: import math\n\nIn [2]: for i in range(2):\n   ...:     print(math.sqrt(i))\n   ...:\n0.0\n1.0\n"
    assert is_session(text)
    assert session_code(text) == "import math\nfor i in range(2):\n    print(math.sqrt(i))\n"


def test_is_session() -> None:
    assert is_session("\n  >>> x = 1\n")
    assert not is_session("x = 1\n>>> y = 2\n")
    assert not is_session("")


# ---------------------------------------------------------------- statements, cap, directives


def test_an_import_brings_its_line_not_the_block_around_it() -> None:
    doc = Document(blocks(
        "import statistics\nvalues = [3, 1, 2]\nprint(statistics.mean(values))\nunrelated = 5",
        "print(statistics.median([4, 5]))",
    ))
    made = doc.assemble(1)
    assert made.code == "import statistics\n\nprint(statistics.median([4, 5]))\n"
    assert (made.context_lines, made.assembled, made.skipped) == (1, True, "")


def test_more_context_than_the_cap_is_skipped_with_the_reason() -> None:
    doc = Document(blocks("t = []\n" + "t.append(1)\n" * 10, "print(len(t))"))
    assert doc.assemble(1, cap=20).context_lines == 11
    made = doc.assemble(1, cap=5)
    assert made.code == "print(len(t))\n" and made.context_lines == 0
    assert made.skipped == "needs too much context: over 5 lines from earlier in the document"


def test_doctest_skip_statements_are_dropped_and_ellipsis_output_is_output() -> None:
    session = (
        ">>> fit = dict(slope=2.0)\n"
        ">>> print(fit)  # doctest: +ELLIPSIS\n"
        "... 'slope': 2.0...\n"
        ">>> fit.residuals_  # doctest: +SKIP\n"
        ">>> for k in fit:  # doctest: +NORMALIZE_WHITESPACE\n"
        "...     print(k)\n"
        "slope\n"
    )
    assert session_code(session) == "fit = dict(slope=2.0)\nprint(fit)\nfor k in fit:\n    print(k)\n"
