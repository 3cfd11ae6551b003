"""Extraction: every kind of example a scientific repository holds, bad input, secrets, duplicates."""

from __future__ import annotations

import ast
import importlib.metadata
import random
import subprocess
import sys
import textwrap

import nbformat
import pytest
from nbformat import v4

from jupyter_codedistiller.distill import extract
from jupyter_codedistiller.distill.candidates import Candidate
from jupyter_codedistiller.distill.extract import dedupe, extract_file, is_candidate_file
from jupyter_codedistiller.distill.imports import imports_of, requirements_for
from jupyter_codedistiller.distill.secrets import contains_secret
from jupyter_codedistiller.titles import clean_title


def by_anchor(result: extract.ExtractResult) -> dict[str, object]:
    return {c.anchor: c for c in result.candidates}


def lines_of(text: str, start: int, end: int) -> str:
    return "\n".join(text.split("\n")[start - 1 : end])


# ---------------------------------------------------------------- which files


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("README.md", True),
        ("README.rst", True),
        ("README", True),
        ("pkg/README.txt", True),
        ("docs/index.rst", True),
        ("docs/user_guide/survival.md", True),
        ("doc/tutorial.txt", True),
        ("examples/plot_kaplan_meier.py", True),
        ("docs/examples/regression.py", True),
        ("demos/quick.py", True),
        ("demo_notebooks/analysis.ipynb", True),
        ("tutorials/01_intro.md", True),
        ("scripts/run_pipeline.py", True),
        ("notebooks/walkthrough.ipynb", True),
        ("src/lifelines/fitters/kaplan_meier.py", True),
        ("lifelines/utils.py", True),
        ("notebooks/.ipynb_checkpoints/walkthrough-checkpoint.ipynb", False),
        ("tests/test_fitters.py", False),
        ("lifelines/tests/test_utils.py", False),
        ("lifelines/test_utils.py", False),
        ("setup.py", False),
        ("conftest.py", False),
        ("docs/conf.py", False),
        (".github/workflows/ci.py", False),
        ("build/lib/lifelines/utils.py", False),
        ("dist/lifelines-0.1/README.md", False),
        ("node_modules/pkg/README.md", False),
        (".venv/lib/python3.11/site-packages/numpy/core.py", False),
        ("vendor/six.py", False),
        ("lifelines.egg-info/README.md", False),
        ("CHANGELOG.md", False),
        ("data/table.csv", False),
        ("requirements.txt", False),
        ("docs/_static/logo.png", False),
    ],
)
def test_is_candidate_file(path: str, expected: bool) -> None:
    assert is_candidate_file(path) is expected


# ---------------------------------------------------------------- Markdown: a lifelines-like README

README = """\
# lifelines

Survival analysis in Python, including Kaplan-Meier, Nelson-Aalen, and regression.

## Installation

```bash
pip install lifelines
```

```python
pip install lifelines
```

## Kaplan-Meier

Load the Waltons dataset, which has durations `T` and events `E`:

```python
from lifelines.datasets import load_waltons

df = load_waltons()
T = df["T"]
E = df["E"]
```

As an aside, the package version:

```python
import lifelines
print(lifelines.__version__)
```

Fit the **Kaplan-Meier** estimator to the durations:

```python
from lifelines import KaplanMeierFitter

kmf = KaplanMeierFitter()
kmf.fit(T, event_observed=E)
```

Plot the survival function:

```py
kmf.plot_survival_function()
```

The median, in a session:

```pycon
>>> kmf.median_survival_time_
56.0
>>> print(kmf.median_survival_time_)
56.0
>>> kmf.fit([])
Traceback (most recent call last):
ValueError: empty
```

## By group

    >>> for name, grouped in df.groupby("group"):
    ...     kmf.fit(grouped["T"], grouped["E"], label=name)
    ...     ax = kmf.plot_survival_function()
    ...
    <Axes: >

```javascript
console.log("not python")
```

```python
kmf.fit(T, E
```
"""


def test_markdown_readme_story() -> None:
    result = extract_file("README.md", README.encode())
    found = by_anchor(result)
    assert list(found) == [
        "md:kaplan-meier:1",
        "md:kaplan-meier:2",
        "md:kaplan-meier:3",
        "md:kaplan-meier:4",
        "md:kaplan-meier:5",
        "md:by-group:1",
    ]

    load = found["md:kaplan-meier:1"]
    assert load.kind == "markdown" and load.origin == "verbatim"
    assert load.title == "Kaplan-Meier"
    assert load.summary == "Load the Waltons dataset, which has durations T and events E:"
    assert load.imports == ["lifelines"]
    assert lines_of(README, load.line_start, load.line_end) == (
        'from lifelines.datasets import load_waltons\n\ndf = load_waltons()\nT = df["T"]\nE = df["E"]'
    )

    plot = found["md:kaplan-meier:4"]
    assert plot.origin == "assembled"
    assert lines_of(README, plot.line_start, plot.line_end) == "kmf.plot_survival_function()"
    # minimal: the load, the fit (which updates kmf), but not the unrelated version block
    assert "load_waltons()" in plot.code and "kmf.fit(T, event_observed=E)" in plot.code
    assert "__version__" not in plot.code
    assert plot.code.rstrip().endswith("kmf.plot_survival_function()")
    ast.parse(plot.code)

    session = found["md:kaplan-meier:5"]
    assert session.kind == "markdown"
    assert ">>>" not in session.code and "56.0" not in session.code
    assert "kmf.fit([])" not in session.code  # the demonstrated error is dropped
    assert session.code.rstrip().endswith("print(kmf.median_survival_time_)")

    group = found["md:by-group:1"]
    assert group.kind == "doctest" and group.origin == "assembled"
    assert "<Axes" not in group.code and "load_waltons()" in group.code
    assert group.summary == "lifelines > By group"


def test_markdown_skips_other_languages_and_reports_broken_python() -> None:
    result = extract_file("README.md", README.encode())
    codes = "\n".join(c.code for c in result.candidates)
    assert "pip install" not in codes and "console.log" not in codes
    broken_line = README.split("\n").index("kmf.fit(T, E") + 1
    assert result.problems == [
        f"README.md:{broken_line}: Python block does not parse ('(' was never closed), skipped"
    ]


def test_assembled_markdown_snippet_runs_on_its_own(tmp_path) -> None:
    doc = textwrap.dedent(
        """\
        # Summary statistics

        ```python
        import statistics
        ages = [61, 47, 58, 70, 52]
        ```

        ```python
        unused = "an unrelated block"
        ```

        ```python
        mean_age = statistics.mean(ages)
        ```

        ```python
        print(f"mean age {mean_age:.1f}")
        ```
        """
    )
    result = extract_file("docs/stats.md", doc.encode())
    last = result.candidates[-1]
    assert last.origin == "assembled" and "unrelated" not in last.code
    script = tmp_path / "snippet.py"
    script.write_text(last.code)
    run = subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, timeout=60, cwd=tmp_path
    )
    assert run.returncode == 0, run.stderr
    assert run.stdout == "mean age 57.6\n"


def test_myst_and_unlabeled_fences() -> None:
    doc = textwrap.dedent(
        """\
        # Analysis

        ```{code-cell} ipython3
        :tags: [hide-output]
        import statistics
        print(statistics.mean([1, 2, 3]))
        ```

        ```
        values = sorted([3, 1, 2])
        print(values)
        ```

        ```
        conda install -c conda-forge lifelines
        ```

        ```{note}
        print("a note, not code")
        ```
        """
    )
    result = extract_file("docs/analysis.md", doc.encode())
    codes = [c.code for c in result.candidates]
    assert codes == [
        "import statistics\nprint(statistics.mean([1, 2, 3]))\n",
        "values = sorted([3, 1, 2])\nprint(values)\n",
    ]
    assert result.problems == []


# ---------------------------------------------------------------- reStructuredText

GUIDE_RST = """\
==========
User guide
==========

Installation
------------

Install it with::

    pip install lifelines

Quickstart
----------

Load the Rossi recidivism data and fit a Cox model:

.. code-block:: python
   :caption: Fit a Cox proportional hazards model
   :linenos:

   from lifelines import CoxPHFitter
   from lifelines.datasets import load_rossi

   rossi = load_rossi()
   cph = CoxPHFitter()
   cph.fit(rossi, duration_col="week", event_col="arrest")

.. note::

   Print the summary table:

   .. code:: python

      cph.print_summary()

The hazard ratios are available as a series::

    ratios = cph.hazard_ratios_
    print(ratios.sort_values())

.. code-block:: bash

   python -m lifelines --help

Checking assumptions
--------------------

>>> import numpy as np
>>> np.log(2)
0.6931471805599453

.. testsetup::

   import pandas as pd

.. testcode::

   frame = pd.DataFrame({"week": [1, 2], "arrest": [0, 1]})
   print(frame.describe())
"""


def test_rst_blocks_headings_and_kinds() -> None:
    result = extract_file("docs/guide.rst", GUIDE_RST.encode())
    found = by_anchor(result)
    assert list(found) == [
        "rst:quickstart:1",
        "rst:quickstart:2",
        "rst:quickstart:3",
        "rst:checking-assumptions:1",
        "rst:checking-assumptions:2",
    ]
    fit = found["rst:quickstart:1"]
    assert fit.kind == "rst" and fit.origin == "verbatim"
    assert fit.title == "Fit a Cox proportional hazards model"  # the caption
    assert fit.summary == "Load the Rossi recidivism data and fit a Cox model:"
    assert lines_of(GUIDE_RST, fit.line_start, fit.line_start) == "   from lifelines import CoxPHFitter"
    assert fit.code.startswith("from lifelines import CoxPHFitter\n")

    nested = found["rst:quickstart:2"]  # inside a note directive
    assert nested.origin == "assembled" and nested.code.rstrip().endswith("cph.print_summary()")

    literal = found["rst:quickstart:3"]  # a :: literal block that parses as Python
    assert literal.kind == "rst" and literal.title == "Quickstart"
    assert literal.summary == "The hazard ratios are available as a series:"
    assert "cph.fit(rossi" in literal.code

    session = found["rst:checking-assumptions:1"]
    assert session.kind == "doctest"
    assert session.code == "import numpy as np\nnp.log(2)\n"

    testcode = found["rst:checking-assumptions:2"]
    assert testcode.origin == "assembled"
    assert testcode.code.startswith("import pandas as pd\n")  # from the testsetup block
    assert result.problems == []
    assert all("pip install" not in c.code and "--help" not in c.code for c in result.candidates)


def test_plain_text_docs_are_read_as_rst() -> None:
    doc = "Usage\n=====\n\n>>> import math\n>>> math.floor(2.5)\n2\n"
    result = extract_file("docs/usage.txt", doc.encode())
    assert [(c.anchor, c.kind, c.code) for c in result.candidates] == [
        ("rst:usage:1", "doctest", "import math\nmath.floor(2.5)\n")
    ]


# ---------------------------------------------------------------- notebooks


def walkthrough_notebook() -> bytes:
    nb = v4.new_notebook(
        cells=[
            v4.new_markdown_cell("# Survival walkthrough\n\nKaplan-Meier curves by treatment arm."),
            v4.new_code_cell("%matplotlib inline\nimport pandas as pd\nimport numpy as np"),
            v4.new_markdown_cell("## Load the trial data\n\nOne row per patient."),
            v4.new_code_cell('trial = pd.DataFrame({"T": [5, 8, 12], "E": [1, 0, 1]})'),
            v4.new_code_cell("!ls data\ntrial.head()"),
            v4.new_markdown_cell("## Summaries\n\nMedian follow-up."),
            v4.new_code_cell('print(np.median(trial["T"]))'),
            v4.new_code_cell("%%bash\necho not python"),
            v4.new_code_cell("trial.plot(("),
            v4.new_markdown_cell("Some prose without a heading."),
            v4.new_markdown_cell("## Notes"),
            v4.new_code_cell("threshold = 0.05"),
        ],
        metadata={"kernelspec": {"name": "python3", "language": "python", "display_name": "Py"}},
    )
    return nbformat.writes(nb).encode()


def test_notebook_sections_under_headings() -> None:
    result = extract_file("notebooks/walkthrough.ipynb", walkthrough_notebook())
    found = by_anchor(result)
    assert list(found) == ["nb:load-the-trial-data:1", "nb:summaries:1", "nb:pipeline"]

    load = found["nb:load-the-trial-data:1"]
    assert load.kind == "notebook" and load.origin == "assembled"
    assert load.title == "Load the trial data" and load.summary == "One row per patient."
    assert (load.line_start, load.line_end) == (4, 5)  # cell numbers
    assert "%matplotlib" not in load.code and "!ls" not in load.code
    assert load.code.startswith("import pandas as pd\n\ntrial = pd.DataFrame")  # not numpy: unused
    assert load.imports == ["pandas"]

    summaries = found["nb:summaries:1"]
    assert "echo" not in summaries.code and "trial.plot((" not in summaries.code
    assert "trial = pd.DataFrame" in summaries.code
    assert result.problems == [
        "notebooks/walkthrough.ipynb: cell 9 does not parse ('(' was never closed), skipped"
    ]


def test_notebook_in_another_language_is_skipped() -> None:
    nb = v4.new_notebook(
        cells=[v4.new_code_cell("library(survival)\nfit <- survfit(Surv(time, status) ~ 1)")],
        metadata={"kernelspec": {"name": "ir", "language": "R", "display_name": "R"}},
    )
    result = extract_file("analysis.ipynb", nbformat.writes(nb).encode())
    assert result.candidates == []
    assert result.problems == ["analysis.ipynb: a R notebook, not Python, skipped"]


def test_nbformat_is_imported_only_for_notebooks() -> None:
    code = (
        "import sys\n"
        "from jupyter_codedistiller.distill.extract import extract_file\n"
        "extract_file('README.md', b'```python\\nprint(1)\\n```\\n')\n"
        "print('nbformat' in sys.modules)\n"
    )
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert run.stdout.strip() == "False", run.stderr


# ---------------------------------------------------------------- example scripts

GALLERY = '''\
"""
Kaplan-Meier curves by group
============================

Simulate two arms and compare their survival.
"""
import random
import statistics

# %%
# Simulate durations
# ------------------
# Exponential durations for two arms.
rng = random.Random(0)
arms = {arm: [rng.expovariate(0.1) for _ in range(20)] for arm in "ab"}

# %% [markdown]
# ## Compare medians
# The median duration per arm.

# %%
medians = {arm: statistics.median(values) for arm, values in arms.items()}
print(medians)

# %%
print(statistics.mean([1, 2, 3]))

# %% Plot the spread
spread = {arm: max(values) - min(values) for arm, values in arms.items()}
'''


def test_gallery_script_cells() -> None:
    result = extract_file("examples/plot_km_groups.py", GALLERY.encode())
    found = by_anchor(result)
    assert list(found) == ["cell:simulate-durations", "cell:compare-medians", "cell:1",
                           "cell:plot-the-spread", "pipeline"]
    assert {c.kind for c in result.candidates[:-1]} == {"gallery-cell"}
    pipeline = found["pipeline"]  # the whole script, as it is
    assert (pipeline.kind, pipeline.origin, pipeline.code) == ("script", "verbatim", GALLERY)
    assert pipeline.title == "Kaplan-Meier curves by group"

    simulate = found["cell:simulate-durations"]
    assert simulate.title == "Simulate durations"
    assert simulate.summary == "Exponential durations for two arms."
    assert simulate.origin == "assembled"
    assert simulate.code.startswith("import random\n\nrng = random.Random(0)")  # only the import it uses
    medians = found["cell:compare-medians"]
    assert medians.title == "Compare medians" and medians.summary == "The median duration per arm."
    assert "rng.expovariate" in medians.code and medians.imports == ["random", "statistics"]
    assert lines_of(GALLERY, medians.line_start, medians.line_end).startswith("medians = {")

    untitled = found["cell:1"]
    assert untitled.title == "Kaplan-Meier curves by group (cell 1)"
    assert "rng" not in untitled.code  # needs only the header imports

    assert found["cell:plot-the-spread"].title == "Plot the spread"


def test_gallery_cells_run_standalone(tmp_path) -> None:
    result = extract_file("examples/plot_km_groups.py", GALLERY.encode())
    medians = by_anchor(result)["cell:compare-medians"]
    script = tmp_path / "cell.py"
    script.write_text(medians.code)
    run = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stderr
    assert run.stdout.startswith("{'a': ")


def test_whole_example_script() -> None:
    script = textwrap.dedent(
        '''\
        #!/usr/bin/env python
        """Fit a Cox model to the Rossi data.

        Shows the summary table and hazard ratios.
        """
        from lifelines import CoxPHFitter
        from lifelines.datasets import load_rossi

        cph = CoxPHFitter().fit(load_rossi(), "week", "arrest")
        cph.print_summary()
        '''
    )
    result = extract_file("examples/cox_rossi.py", script.encode())
    [candidate] = result.candidates
    assert candidate.anchor == "script" and candidate.kind == "script"
    assert candidate.title == "Fit a Cox model to the Rossi data."
    assert candidate.summary == "Shows the summary table and hazard ratios."
    assert candidate.code == script and candidate.origin == "verbatim"
    assert (candidate.line_start, candidate.line_end) == (1, 10)


def test_script_title_from_leading_comment_or_file_name() -> None:
    commented = b"# Copyright 2024 The Lab\n# Bootstrap a confidence interval\nimport random\nprint(random.random())\n"
    [candidate] = extract_file("scripts/bootstrap_ci.py", commented).candidates
    assert candidate.title == "Bootstrap a confidence interval"
    [named] = extract_file("examples/plot_hazard_ratio.py", b"print(1 + 1)\n").candidates
    assert named.title == "hazard ratio"


def test_file_metadata_is_never_a_title() -> None:
    """Authors, dates, licences and encodings say nothing about what the code does."""
    gallery = (
        '"""\n=====\nDemo of clustering\n=====\n\nClusters two blobs.\n"""\n\n'
        "# Authors: The Lab developers\n# SPDX-License-Identifier: BSD-3-Clause\n\n"
        "# %%\n# Data generation\n# ---------------\n# Two blobs of points.\n"
        "points = [(x, x % 3) for x in range(30)]\nprint(len(points))\n"
    )
    found = by_anchor(extract_file("examples/plot_blobs.py", gallery.encode()))
    assert found["cell:data-generation"].title == "Data generation"
    assert found["cell:data-generation"].summary == "Two blobs of points."
    documented = (
        '"""\nAuthor: A. Person <a@example.org>\nDate: 2012-08-25\n\n'
        'This example fits a negative binomial model. It compares variants.\n"""\n'
        "counts = [sum(range(k)) for k in range(10)]\nprint(counts)\n"
    )
    [script] = extract_file("examples/nbin.py", documented.encode()).candidates
    assert script.title.startswith("This example fits a negative binomial model")
    encoded = b"# -*- coding: utf-8 -*-\n# Encoding categorical features\nprint(sorted({'b', 'a'}))\n"
    [commented] = extract_file("scripts/encode.py", encoded).candidates
    assert commented.title == "Encoding categorical features"
    exported = (  # a notebook exported as a script, as statsmodels ships its examples
        b"#!/usr/bin/env python\n# coding: utf-8\n\n# DO NOT EDIT\n#\n# Autogenerated from the notebook:\n"
        b"# ordinal_regression.ipynb\n#\n# Edit the notebook and then sync the output with this file.\n"
        b"#\n# flake8: noqa\n# DO NOT EDIT\n\n\n# # Ordinal Regression\n\n"
        b"import statistics\nprint(statistics.median([3, 1, 2]))\n"
    )
    [script] = extract_file("examples/python/ordinal_regression.py", exported).candidates
    assert script.title == "Ordinal Regression"


def test_myst_roles_are_their_text() -> None:
    doc = (
        "# Trimming\n\n{func}`stats.mstats.trimmed_mean` trims, like :func:`stats.tmean`.\n\n"
        "```python\nimport statistics\nprint(statistics.mean([1, 2, 3]))\n```\n"
    )
    [block] = extract_file("doc/trimming.md", doc.encode()).candidates
    assert block.summary == "stats.mstats.trimmed_mean trims, like stats.tmean."
    assert clean_title("{func}`stats.mstats.trimmed_mean`") == "stats.mstats.trimmed_mean"


def test_trivial_script_is_not_a_candidate() -> None:
    result = extract_file("examples/common.py", b"import numpy as np\nimport pandas as pd\n")
    assert result.candidates == [] and result.problems == []


# ---------------------------------------------------------------- docstrings

MODULE = '''\
"""Kaplan-Meier estimation."""
import numpy as np

from .datasets import load_waltons


def median_survival(durations):
    """Median of the durations.

    Examples
    --------
    >>> median_survival(np.array([5, 8, 12]))
    8.0
    """
    return float(np.median(durations))


def _helper(x):
    """
    >>> _helper(1)
    1
    """
    return x


class KaplanMeier:
    """Kaplan-Meier estimator of the survival function.

    >>> km = KaplanMeier()
    >>> km.fit(load_waltons())
    """

    def fit(self, frame):
        """Fit the estimator to a frame.

        >>> KaplanMeier().fit(load_waltons()).fitted
        True
        """
        self.fitted = True
        return self

    def _reset(self):
        """>>> KaplanMeier()._reset()"""


class _Private:
    def method(self):
        """>>> _Private().method()"""


def legacy():
    """
    >>> print "python 2"
    """
'''


def test_docstring_examples_of_public_api() -> None:
    result = extract_file("src/survkit/estimators.py", MODULE.encode())
    found = by_anchor(result)
    assert list(found) == ["doc:median_survival", "doc:KaplanMeier", "doc:KaplanMeier.fit"]
    assert {c.kind for c in result.candidates} == {"docstring"}

    median = found["doc:median_survival"]
    # the first sentence, whole, without the name (shown on its own line as the API)
    assert median.title == "Median of the durations."
    assert median.api == "survkit.estimators.median_survival"
    assert median.summary == ""  # nothing but the title to say: the summary does not repeat it
    assert median.origin == "assembled"
    assert median.code == (
        "from survkit.estimators import median_survival\nimport numpy as np\n\n"
        "median_survival(np.array([5, 8, 12]))\n"
    )
    assert lines_of(MODULE, median.line_start, median.line_end).strip().startswith(
        ">>> median_survival("
    )

    fit = found["doc:KaplanMeier.fit"]
    # the relative import of the module is made absolute
    assert "from survkit.datasets import load_waltons" in fit.code
    assert fit.code.rstrip().endswith("KaplanMeier().fit(load_waltons()).fitted")
    legacy_line = MODULE.split("\n").index('    >>> print "python 2"') + 1
    assert result.problems == [
        f"src/survkit/estimators.py:{legacy_line}: docstring example of legacy does not parse"
        " (Missing parentheses in call to 'print'. Did you mean print(...)?), skipped"
    ]


def test_module_without_examples_yields_nothing() -> None:
    result = extract_file("survkit/utils.py", b'def f():\n    """No examples."""\n')
    assert result.candidates == [] and result.problems == []


# ---------------------------------------------------------------- bad input


@pytest.mark.parametrize(
    ("path", "data", "problem"),
    [
        ("docs/logo.md", b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", "docs/logo.md: binary file, skipped"),
        ("docs/x.rst", "café".encode("latin-1"), "docs/x.rst: not UTF-8 text, skipped"),
        ("examples/bad.py", b"def fit(:\n    pass\n", "examples/bad.py:1: syntax error (invalid syntax), skipped"),
        (
            "pkg/mod.py",
            b'def f(:\n    """>>> f()"""\n',
            "pkg/mod.py:1: syntax error (invalid syntax), skipped",
        ),
        (
            "nb/broken.ipynb",
            b'{"cells": [',
            "nb/broken.ipynb: not a valid notebook (NotJSONError: Notebook does not appear to be JSON:",
        ),
        (
            "nb/schema.ipynb",
            b'{"nbformat": 4, "nbformat_minor": 5, "cells": []}',
            "nb/schema.ipynb: not a valid notebook (ValidationError:",
        ),
        ("nb/list.ipynb", b"[1, 2, 3]", "nb/list.ipynb: not a valid notebook ("),
    ],
)
def test_bad_input_becomes_one_problem_line(path: str, data: bytes, problem: str) -> None:
    result = extract_file(path, data)
    assert result.candidates == []
    assert len(result.problems) == 1 and result.problems[0].startswith(problem)
    assert "\n" not in result.problems[0]


def test_oversized_file_is_skipped() -> None:
    data = b"```python\nprint(1)\n```\n" + b"x" * extract.MAX_FILE_BYTES
    result = extract_file("docs/huge.md", data)
    assert result.candidates == []
    assert result.problems == ["docs/huge.md: 1.0 MB is over the 1 MB limit, skipped"]


def test_size_limit_is_a_module_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(extract, "MAX_FILE_BYTES", 10)
    result = extract_file("README.md", README.encode())
    assert result.candidates == [] and "over the" in result.problems[0]


def test_garbage_never_raises() -> None:
    rng = random.Random(7)
    paths = ["README.md", "docs/a.rst", "nb.ipynb", "examples/e.py", "pkg/m.py", "README"]
    samples = [bytes(rng.randrange(1, 256) for _ in range(300)) for _ in range(20)]
    samples += [README.encode()[:n] for n in range(0, len(README), 97)]
    samples += [walkthrough_notebook()[:n] for n in range(0, 2000, 250)]
    samples += [b"(" * 5000, b">>> " + b"[" * 3000, b'"""\n>>> x = (\n"""']
    for path in paths:
        for data in samples:
            result = extract_file(path, data)
            assert isinstance(result.candidates, list)
            assert all(p.startswith(path) and "\n" not in p for p in result.problems)


def test_unsupported_file_type_yields_nothing() -> None:
    result = extract_file("data/table.csv", b"a,b\n1,2\n")
    assert result.candidates == [] and result.problems == []


# ---------------------------------------------------------------- secrets

TOKEN = "ghp_" + "Zq81Lm04Xw9c" * 3


@pytest.mark.parametrize(
    ("code", "kind"),
    [
        ('session = boto3.Session(aws_access_key_id="AKIAIOSFODNN7EXAMPLE")', "AWS access key id"),
        (f'gh = Github("{TOKEN}")', "GitHub token"),
        ('auth = "github_pat_11AAAAAAA0abcdefghijkl_mnopqrstuvwxyz0123456789ABCDEFGHIJKLMNOPQRSTUV"', "GitHub token"),
        ('client = OpenAI(api_key="sk-proj-' + "Ab3dEf6h" * 5 + '")', "OpenAI-style API key"),
        ('WebClient(token="xoxb-2048-1024-QwErTyUiOpAsDf")', "Slack token"),
        ('KEY = """-----BEGIN RSA PRIVATE KEY-----\nMIIEpAIBAAKCAQEA\n"""', "private key"),
        ('KEY = "-----BEGIN OPENSSH PRIVATE KEY-----"', "private key"),
        ('api_key = "9f8e7d6c5b4a3f2e1d0c9b8a"', "credential literal"),
        ('settings = {"client_secret": "Q2x1c3RlclNlY3JldDEyMzQ"}', "credential literal"),
        ('requests.get("https://analyst:Tr0ub4dor3@data.example.org/cohort.csv")', "password in URL"),
        ('create_engine("postgresql://user:pass@localhost/trial")', "password in URL"),
    ],
)
def test_secrets_found(code: str, kind: str) -> None:
    assert contains_secret(code) == kind


@pytest.mark.parametrize(
    "code",
    [
        'api_key = os.environ["OPENAI_API_KEY"]',
        'api_key = os.getenv("API_KEY")',
        'token = "<your token here>"',
        'API_KEY = "YOUR_API_KEY"',
        'password = getpass.getpass("Password: ")',
        'api_key = "xxxxxxxxxxxxxxxxxxxxxxxx"',
        'token_file = "~/.config/lab/token.json"',
        'secret_name = "production-database"',
        'tokenizer = AutoTokenizer.from_pretrained("bert-base-uncased")',
        "from sklearn.linear_model import LogisticRegression",
        'url = "postgresql://{user}:{password}@{host}/db"',
        'url = "https://${USER}:${PASSWORD}@host/repo.git"',
        'clone("ssh://git@github.com:22/lab/repo.git")',
        'df = pd.read_csv("https://raw.githubusercontent.com/lab/data/main/cohort.csv")',
        'key = "sk-" + suffix',
        "task_id = 'AKIA'",
    ],
)
def test_ordinary_code_is_not_a_secret(code: str) -> None:
    assert contains_secret(code) is None


def test_candidates_with_secrets_are_dropped_and_counted() -> None:
    doc = textwrap.dedent(
        f"""\
        # Fetching data

        ```python
        from github import Github
        gh = Github("{TOKEN}")
        ```

        ```python
        import os
        from github import Github
        gh = Github(os.environ["GITHUB_TOKEN"])
        print(gh.get_user().login)
        ```
        """
    )
    result = extract_file("README.md", doc.encode())
    assert result.secrets == 1
    assert [c.anchor for c in result.candidates] == ["md:fetching-data:2"]
    assert all(TOKEN not in c.code for c in result.candidates)


def test_a_later_block_that_would_pull_in_a_secret_is_dropped_too() -> None:
    doc = f'# Setup\n\n```python\nTOKEN = "{TOKEN}"\nprint(len(TOKEN))\n```\n\n```python\nprint(TOKEN)\n```\n'
    result = extract_file("docs/setup.md", doc.encode())
    assert result.candidates == [] and result.secrets == 2


# ---------------------------------------------------------------- duplicates and anchors


def test_same_code_twice_in_one_file_is_one_candidate() -> None:
    doc = textwrap.dedent(
        """\
        # Quickstart

        ```python
        import statistics
        print(statistics.mean([1, 2, 3]))
        ```

        # Again, later

        ```python
        import statistics
        print( statistics.mean([1, 2, 3]) )
        ```

        ```python
        import statistics

        print(statistics.mean([1,  2, 3]))
        ```
        """
    )
    result = extract_file("docs/dup.md", doc.encode())
    assert [c.anchor for c in result.candidates] == ["md:quickstart:1", "md:again-later:1"]


def test_dedupe_keeps_the_first_occurrence() -> None:
    first = Candidate(path="a.md", anchor="md:x:1", code="x = 1\nprint(x)\n", kind="markdown")
    again = Candidate(path="b.md", anchor="md:y:1", code="x = 1\n\nprint(x)  \n", kind="markdown")
    other = Candidate(path="a.md", anchor="md:x:2", code="print(2)\n", kind="markdown")
    assert dedupe([first, again, other]) == [first, other]


def test_anchors_are_stable_when_an_unrelated_block_is_added_above() -> None:
    before = by_anchor(extract_file("README.md", README.encode()))
    edited = README.replace(
        "## Kaplan-Meier\n",
        "## Citing\n\n```python\nimport lifelines\nprint(lifelines.citation())\n```\n\n"
        "## Kaplan-Meier\n",
    )
    after = by_anchor(extract_file("README.md", edited.encode()))
    assert set(after) == set(before) | {"md:citing:1"}
    for anchor, candidate in before.items():
        assert after[anchor].code == candidate.code
        assert after[anchor].line_start == candidate.line_start + 7


def test_a_block_added_inside_a_section_shifts_only_later_ordinals_there() -> None:
    before = by_anchor(extract_file("README.md", README.encode()))
    edited = README.replace(
        "Fit the **Kaplan-Meier**",
        "```python\nprint('an unrelated example')\n```\n\nFit the **Kaplan-Meier**",
    )
    after = by_anchor(extract_file("README.md", edited.encode()))
    assert after["md:kaplan-meier:3"].code == "print('an unrelated example')\n"
    for anchor in ("md:kaplan-meier:1", "md:kaplan-meier:2", "md:by-group:1"):
        assert after[anchor].code == before[anchor].code


def test_gallery_and_docstring_anchors_do_not_depend_on_position() -> None:
    shifted = GALLERY.replace("# %%\n# Simulate", "# %%\n# Setup\nsetup = print('setup')\n\n# %%\n# Simulate")
    assert set(by_anchor(extract_file("examples/g.py", GALLERY.encode()))) <= set(
        by_anchor(extract_file("examples/g.py", shifted.encode()))
    )
    moved = MODULE.replace(
        '"""Kaplan-Meier estimation."""\n',
        '"""Kaplan-Meier estimation."""\n\n\ndef first():\n    """>>> first()"""\n',
    )
    assert set(by_anchor(extract_file("survkit/km.py", MODULE.encode()))) <= set(
        by_anchor(extract_file("survkit/km.py", moved.encode()))
    )


# ---------------------------------------------------------------- imports and requirements


def test_imports_of_code() -> None:
    code = (
        "from __future__ import annotations\nimport os.path, numpy as np\n"
        "from lifelines.datasets import load_rossi\nfrom . import local\n"
    )
    assert imports_of(code) == ["lifelines", "numpy", "os"]
    assert imports_of("import pandas as pd\nprint(") == ["pandas"]  # best effort when broken


def test_requirements_for_maps_to_installed_distributions() -> None:
    requirements = requirements_for(["os", "sys", "nbformat", "git", "sklearn", "surely_not_installed_mod"])
    assert "os" not in requirements and "sys" not in requirements
    assert requirements["nbformat"] == importlib.metadata.version("nbformat")
    assert requirements["GitPython"] == importlib.metadata.version("GitPython")
    assert requirements["scikit-learn"] is None or isinstance(requirements["scikit-learn"], str)
    assert requirements["surely_not_installed_mod"] is None


def test_docstring_code_directive_examples_are_extracted() -> None:
    source = (
        "class KaplanMeierFitter:\n"
        '    """\n'
        "    Class for fitting the Kaplan-Meier estimate.\n\n"
        "    Examples\n"
        "    --------\n"
        "    .. code:: python\n\n"
        "        from lifelines import KaplanMeierFitter\n"
        "        kmf = KaplanMeierFitter()\n"
        "        for group in ['a', 'b']:\n"
        "            kmf.fit([1, 2, 3], label=group)\n\n"
        "    Attributes\n"
        "    ----------\n"
        '    """\n\n\n'
        "def other():\n"
        '    """No example here.\n\n    .. code-block:: bash\n\n        pip install lifelines\n    """\n'
    )
    result = extract_file("lifelines/fitters/km.py", source.encode())
    assert [c.anchor for c in result.candidates] == ["doc:KaplanMeierFitter"]
    c = result.candidates[0]
    assert c.kind == "docstring" and c.line_start == 9 and c.line_end == 12
    assert c.code.splitlines()[-1] == "    kmf.fit([1, 2, 3], label=group)"
    assert "Attributes" not in c.code


def test_printed_output_documented_in_code_is_dropped() -> None:
    doc = (
        "# Fit\n\n```python\nimport statistics\nvalues = [1, 2, 4]\nprint(statistics.mean(values))\n"
        '"""\n2.3333333333333335\n"""\n'
        "print(max(values))\n#> 4\n# Output:\n#   4\nlabel = 'a string kept'\n\"not after a print: kept\"\n```\n"
    )
    [candidate] = extract_file("README.md", doc.encode()).candidates
    assert "2.333" not in candidate.code and "#> 4" not in candidate.code
    assert "Output" not in candidate.code and "#   4" not in candidate.code
    assert "label = 'a string kept'" in candidate.code and "not after a print: kept" in candidate.code
    assert candidate.code.rstrip().endswith('"not after a print: kept"')


TEMPLATED = '''
from textwrap import dedent
from pandas.util._decorators import Appender, Substitution, doc

_shared_docs = {}
_shared_docs["cut"] = """
Bin values of a %(klass)s into discrete intervals.

Examples
--------
>>> import %(module)s
>>> %(module)s.cut([1, 5, 9], bins=3)
"""
_shared_docs["agg"] = """
Aggregate each column of a {klass}.

>>> import {module}
>>> {module}.{klass}().agg("mean")
"""
_reader_doc = (
    """{summary}

Examples
--------
>>> import io
"""
    + """>>> table = io.StringIO("a,b").read().split({sep})
"""
)


@Appender(_shared_docs["cut"] % {"klass": "Series", "module": "binning"})
def cut(values, bins):
    return values


@Appender(_reader_doc.format(summary="Read a comma-separated table of values.", sep="','"))
def read_table(text):
    return text


class Frame:
    _shared_docs["pivot"] = """
    Reshape a %s frame by given index and column values.

    >>> import binning
    >>> binning.Frame().pivot(index="a")
    """

    @Substitution("wide")
    @Appender(_shared_docs["pivot"])
    def pivot(self, index):
        return self

    @doc(_shared_docs["agg"], klass="Frame", module="frames")
    def agg(self, how):
        return self


def summarise(values):
    return values


summarise.__doc__ = dedent(f"""
    Summarise the values of a {'column'} at once.

    >>> import binning
    >>> binning.summarise([1, 2, 3])
    """)


@Appender(_elsewhere["qcut"])
def qcut(values, q):
    return values
'''


def test_docstrings_made_by_templates_still_yield_their_examples() -> None:
    result = extract_file("binning/core.py", TEMPLATED.encode())
    found = {c.anchor: c for c in result.candidates}
    assert set(found) == {"doc:cut", "doc:read_table", "doc:Frame.pivot", "doc:Frame.agg", "doc:summarise"}
    assert found["doc:cut"].title == "Bin values of a Series into discrete intervals."
    assert "binning.cut([1, 5, 9], bins=3)" in found["doc:cut"].code
    assert found["doc:read_table"].title == "Read a comma-separated table of values."
    assert "split(',')" in found["doc:read_table"].code
    assert found["doc:Frame.pivot"].title == "Reshape a wide frame by given index and column values."
    assert found["doc:Frame.agg"].title == "Aggregate each column of a Frame."
    assert 'frames.Frame().agg("mean")' in found["doc:Frame.agg"].code
    assert found["doc:summarise"].title == "Summarise the values of a column at once."
    # the line a template's example is on is the template's, so provenance points at real text
    lines = TEMPLATED.splitlines()
    assert ".cut([1, 5, 9], bins=3)" in lines[found["doc:cut"].line_end - 1]


def test_a_template_that_would_grow_past_reason_is_left_alone() -> None:
    from jupyter_codedistiller.distill import doctemplates

    source = "big = '>>> x = 1\\n' + 'a' * 10\n" + "\n".join("big = big + big" for _ in range(30)) + (
        "\n@Appender(big)\ndef f():\n    pass\n")
    result = extract_file("pkg/big.py", source.encode(), seconds=5)
    assert result.candidates == [] and result.complete
    assert doctemplates.MAX_CHARS < 2 ** 30


def test_what_templates_make_is_bounded_over_a_whole_module() -> None:
    # Each string under the one-string limit, but thousands of them: without a module budget
    # this file would make 2,000 x 160,000 characters (and as many decorators stack up one
    # docstring), reading a 100 KB file into hundreds of MB.
    import ast

    from jupyter_codedistiller.distill import doctemplates

    half = "x" * 80_000
    source = (f"a = {half!r}\n" + "\n".join(f"b{i} = a + a" for i in range(2000))
              + "\n" + "\n".join("@Appender(a)" for _ in range(400)) + "\ndef f():\n    pass\n")
    tree = ast.parse(source)
    texts = doctemplates.module_texts(tree)
    made = sum(len(text) for key, (text, _) in texts.strings.items() if key != "a")
    assert 0 < made <= doctemplates.MAX_MADE
    assert doctemplates.made_docstring(tree.body[-1], texts, {}) is None  # over the limit, not built on
    result = extract_file("pkg/many.py", source.encode(), seconds=30)
    assert result.candidates == [] and result.complete
