"""Fixture repositories shaped like the cases of issue 21, and the shape figures of their snippets.

Four real repositories (lifelines, PyDESeq2, pingouin, scikit-survival) showed
what went wrong; each case here is a small, runnable (standard library only)
copy of its shape:

- ``GALLERY``: a sphinx-gallery script with 6 cells, each step using the one
  before (PyDESeq2's growing prefixes);
- ``STAR``: ``from lifekit import *`` at the top of a long block of unrelated
  examples, then a short block using names from the package (lifelines);
- ``ONE_IMPORT``: a block that needs only ``import statkit as pg`` from a long
  unrelated QQ-plot block (pingouin's "Post-hoc tests");
- ``SKIP``: a docstring whose Attributes section holds ``# doctest: +SKIP``
  lines naming objects that never exist, and ``+ELLIPSIS`` output (pingouin);
- ``OUTPUT``: printed output kept in the documentation's code (a bare string
  after ``print_summary()``, ``#>`` lines);
- ``DUPLICATE``: the same example in the README and in the docs;
- ``TOO_LONG``: a block needing 40 earlier lines.

``shape(snippets)`` computes the figures ``benchmarks/snippet_shape.py``
prints and the tests hold: own-lines share, lengths, near-duplicates.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass
from itertools import combinations
from typing import Any

from jupyter_codedistiller.distill.extract import NEAR_DUPLICATE, code_lines, similarity

from .gitrepos import MIT_LICENSE

DESKIT = '''\
"""deskit: a toy differential count analysis."""


class CountSet:
    """Counts per gene over samples in two groups."""

    def __init__(self, counts, groups):
        self.counts = dict(counts)
        self.groups = list(groups)
        self.changes = None

    def normalise(self):
        totals = [sum(c[i] for c in self.counts.values()) or 1 for i in range(len(self.groups))]
        self.counts = {g: [v / t for v, t in zip(c, totals)] for g, c in self.counts.items()}
        return self

    def fit(self):
        def mean(values, group):
            picked = [v for v, g in zip(values, self.groups) if g == group]
            return sum(picked) / len(picked)

        self.changes = {g: mean(c, "b") - mean(c, "a") for g, c in self.counts.items()}
        return self

    def top(self, n):
        return sorted(self.changes.items(), key=lambda item: -abs(item[1]))[:n]
'''

GALLERY = '''\
"""
A differential count pipeline
=============================

Load counts, filter genes, normalise, fit and report the largest changes.
"""
import random
import statistics

from deskit import CountSet

# %%
# Load the counts
# ---------------
rng = random.Random(0)
counts = {f"gene{g}": [rng.randint(0, 50) for _ in range(6)] for g in range(40)}
groups = ["a", "a", "a", "b", "b", "b"]

# %%
# Filter genes
# ------------
# Genes with few reads carry no signal.
counts = {gene: c for gene, c in counts.items() if sum(c) >= 10}

# %%
# Build and normalise the count set
# ---------------------------------
cs = CountSet(counts, groups)
cs.normalise()

# %%
# Fit the model
# -------------
cs.fit()

# %%
# Summarise one gene
# ------------------
print(statistics.mean(next(iter(counts.values()))))

# %%
# Report the largest changes
# --------------------------
for gene, change in cs.top(5):
    print(gene, round(change, 4))
'''

LIFEKIT = '''\
"""lifekit: toy survival estimators."""

__all__ = ["KaplanMeier", "restricted_mean", "k_fold"]


class KaplanMeier:
    """A Kaplan-Meier estimate of survival."""

    def fit(self, durations, events):
        self.points = []
        at_risk, survival = len(durations), 1.0
        for t, e in sorted(zip(durations, events)):
            if e:
                survival *= 1 - 1 / at_risk
            self.points.append((t, survival))
            at_risk -= 1
        return self

    def survival_at(self, t):
        value = 1.0
        for time, s in self.points:
            if time <= t:
                value = s
        return value

    def print_summary(self):
        print(f"<lifekit.KaplanMeier: fitted with {len(self.points)} observations>")


def restricted_mean(durations, horizon):
    return sum(min(d, horizon) for d in durations) / len(durations)


def k_fold(values, k):
    return [(values[:i] + values[i + 1:], values[i:i + 1]) for i in range(k)]
'''

STAR_README = '''\
# lifekit

Toy survival estimators.

## Estimating and validating

```python
from lifekit import *

durations = [5, 6, 6, 2, 4, 4]
events = [1, 0, 0, 1, 1, 1]

# restricted mean survival time up to 5
rmst = restricted_mean(durations, 5)
print(f"RMST {rmst:.2f}")

# k-fold cross validation of the median estimate
scores = []
for train, test in k_fold(durations, 3):
    fitted = KaplanMeier().fit(train, events[: len(train)])
    scores.append(fitted.survival_at(test[0]))
print(scores)

# a QQ-style comparison of two arms
arm_a = sorted(durations[:3])
arm_b = sorted(durations[3:])
pairs = list(zip(arm_a, arm_b))
for a, b in pairs:
    print(a, b, a - b)
spread = max(durations) - min(durations)
print("spread", spread)
```

## Plotting multiple figures on a plot

```python
kmf = KaplanMeier()
kmf.fit(durations, events)
print(round(kmf.survival_at(4), 3))
```

## Summary

```python
from lifekit import KaplanMeier

summary_fit = KaplanMeier().fit([5, 6, 2], [1, 0, 1])
summary_fit.print_summary()

"""
<lifekit.KaplanMeier: fitted with 3 observations>
    median  5.0
"""
print(summary_fit.survival_at(4))
#> 0.6666666666666667
```
'''

DOCS_INTRO = '''\
# Introduction

## Summary

```python
from lifekit import KaplanMeier

# the same summary as in the README
summary_fit = KaplanMeier().fit([5, 6, 2], [1, 0, 1])
summary_fit.print_summary()
print(summary_fit.survival_at(4))
```
'''

TOO_LONG = "# Building a table\n\n## Rows\n\n```python\ntable = []\n" + "".join(
    f"table.append(({i}, {i * i}))\n" for i in range(40)
) + "```\n\n## Count\n\n```python\nprint(len(table))\n```\n"

STATKIT = '''\
"""statkit: toy statistics."""
import statistics


def qq(sample):
    ordered = sorted(sample)
    return [(i / len(ordered), v) for i, v in enumerate(ordered)]


def pairwise(groups):
    names = sorted(groups)
    return {(a, b): statistics.mean(groups[b]) - statistics.mean(groups[a])
            for i, a in enumerate(names) for b in names[i + 1:]}
'''

REGRESSION = '''\
"""Linear regression."""


class Fit(dict):
    """A fitted line."""


def linear_regression(x, y):
    """Fit a line by least squares.

    Examples
    --------
    >>> from statkit.regression import linear_regression
    >>> lm = linear_regression([1, 2, 3], [2, 4, 6])
    >>> print(lm)  # doctest: +ELLIPSIS
    ... 'slope': 2.0...
    >>> lm["slope"]
    2.0

    Attributes
    ----------
    >>> lm.residuals_  # doctest: +SKIP
    >>> model.df_resid_  # doctest: +SKIP
    """
    n = len(x)
    mx, my = sum(x) / n, sum(y) / n
    slope = sum((a - mx) * (b - my) for a, b in zip(x, y)) / sum((a - mx) ** 2 for a in x)
    return Fit(slope=slope, intercept=my - slope * mx)
'''

ONE_IMPORT = '''\
# Guide

## QQ plot

```python
import random

import statkit as pg

rng = random.Random(1)
sample = [rng.gauss(0, 1) for _ in range(50)]
points = pg.qq(sample)
lowest = points[0]
highest = points[-1]
print(lowest, highest)
middle = points[len(points) // 2]
print(middle)
for fraction, value in points[:5]:
    print(f"{fraction:.2f} {value:.3f}")
outliers = [v for _, v in points if abs(v) > 2]
print(len(outliers))
```

## Post-hoc tests

```python
scores = {"a": [1, 2, 3], "b": [2, 3, 5], "c": [4, 4, 6]}
print(pg.pairwise(scores))
```
'''

FILES: dict[str, str] = {
    "LICENSE": MIT_LICENSE,
    "pyproject.toml": '[project]\nname = "shapes"\nversion = "0.1.0"\n',
    "deskit/__init__.py": DESKIT,
    "lifekit/__init__.py": LIFEKIT,
    "statkit/__init__.py": STATKIT,
    "statkit/regression.py": REGRESSION,
    "examples/plot_pipeline.py": GALLERY,
    "README.md": STAR_README,
    "docs/intro.md": DOCS_INTRO,
    "docs/guide.md": ONE_IMPORT,
    "docs/table.md": TOO_LONG,
}


@dataclass
class Shape:
    """What the snippets of one source look like."""

    snippets: int
    own_share_median: float
    length_median: float
    length_p90: float
    near_duplicates: int
    over_60_not_own: int  # longer than 60 lines while their own code is not
    skipped_for_context: int


def lines_of(code: str) -> int:
    return len(code.rstrip("\n").split("\n"))


def own_share(code: str, context_lines: int) -> float:
    total = lines_of(code)
    return max(0.0, 1.0 - context_lines / total) if total else 1.0


def shape(records: list[dict[str, Any]]) -> Shape:
    """Figures over ``records`` ({code, context_lines, skipped, source}); near-duplicates per source."""
    lengths = sorted(lines_of(r["code"]) for r in records)
    shares = [own_share(r["code"], r["context_lines"]) for r in records]
    near = 0
    by_source: dict[str, list[frozenset[str]]] = {}
    for r in records:
        by_source.setdefault(r["source"], []).append(code_lines(r["code"]))
    for sets in by_source.values():
        near += sum(1 for a, b in combinations(sets, 2) if similarity(a, b) >= NEAR_DUPLICATE)
    p90 = lengths[min(len(lengths) - 1, int(0.9 * len(lengths)))] if lengths else 0
    return Shape(
        snippets=len(records),
        own_share_median=statistics.median(shares) if shares else 0.0,
        length_median=statistics.median(lengths) if lengths else 0.0,
        length_p90=p90,
        near_duplicates=near,
        over_60_not_own=sum(1 for r in records if lines_of(r["code"]) > 60
                            and lines_of(r["code"]) - r["context_lines"] <= 60),
        skipped_for_context=sum(1 for r in records if "too much context" in (r["skipped"] or "")),
    )
