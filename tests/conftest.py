"""Shared fixtures: a fresh library home per test, and a way to make realistic snippets."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from jupyter_codedistiller.library import Library
from jupyter_codedistiller.model import Origin, Snippet, Source, Validation, snippet_id, utcnow


@pytest.fixture(autouse=True)
def _isolated_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """No test reads or writes the real user's library or identity."""
    monkeypatch.setenv("CODEDISTILLER_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("CODEDISTILLER_USER", "tester")
    # No test reaches a package index or code host: upstream layers are on only where a test
    # serves them locally (tests/test_upstream.py).
    monkeypatch.setenv("CODEDISTILLER_FETCH_UPSTREAM", "off")
    monkeypatch.setenv("JUPYTER_DATA_DIR", str(tmp_path / "jupyter-data"))
    monkeypatch.setenv("JUPYTER_CONFIG_DIR", str(tmp_path / "jupyter-config"))
    os.environ.pop("OPENAI_API_KEY", None)


@pytest.fixture
def home(tmp_path: Path) -> Path:
    return tmp_path / "home"


@pytest.fixture
def library(home: Path) -> Iterator[Library]:
    with Library.open(home) as lib:
        yield lib


def make_snippet(
    name: str,
    *,
    title: str = "Kaplan-Meier fit by treatment group",
    summary: str = "Fit survival curves per group with lifelines.",
    code: str | None = None,
    package: str = "lifelines",
    validation: str = "passed",
    origin: str = "verbatim",
    model: str | None = None,
    license: str = "MIT",
    tags: list[str] | None = None,
) -> Snippet:
    """A realistic snippet whose id derives from ``name``."""
    code = code or (
        "from lifelines import KaplanMeierFitter\n"
        "from lifelines.datasets import load_waltons\n"
        "df = load_waltons()\n"
        f"kmf = KaplanMeierFitter()  # {name}\n"
        "kmf.fit(df['T'], df['E'])\n"
    )
    return Snippet(
        id=snippet_id("fixture", f"examples/{name}.py", "script"),
        code=code,
        title=title,
        summary=summary,
        tags=tags if tags is not None else ["survival"],
        imports=[package],
        requirements={package: "0.29.0"},
        source=Source(
            kind="git",
            url="https://example.org/lab/survival-examples.git",
            commit="0123456789abcdef0123456789abcdef01234567",
            path=f"examples/{name}.py",
            line_start=1,
            line_end=5,
            package=package,
            license=license,
            source_id="fixture",
        ),
        origin=Origin(kind=origin, model=model),
        validation=Validation(status=validation, when=utcnow() if validation != "pending" else None),
    )
