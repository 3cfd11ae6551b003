"""The refresh a person starts: the static refresh, then the LLM pass when asked for.

The command line (``codedistiller refresh``), the magic (``%distill refresh``) and the
API (whose refresh job runs that command in a child process, since repository code never
runs in the server) all run it through ``refresh_pass``; each only draws its progress and
prints the outcome. The daemon runs ``refresh.refresh`` itself, on its own schedule.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ..library import Library, LibraryError
from .refresh import Progress


@dataclass
class PassOutcome:
    """What a refresh pass did: its reports (the refresh's, then the LLM pass's), warnings for
    the person (the LLM pass could not start), and why it failed, if it did."""

    reports: list[Any] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    failure: str | None = None

    @property
    def lines(self) -> list[str]:
        """The reports as lines for a person (``textview.report_lines``)."""
        from ..textview import report_lines

        return [line for report in self.reports for line in report_lines(report)]


def cluster_address(lib: Library, asked: str | None = None) -> str | None:
    """The Dask scheduler to validate on: ``asked``, else the library's ``cluster`` setting."""
    from ..settings import SettingsError, load_settings

    if asked:
        return asked
    try:
        return load_settings(lib.path.parent).cluster or None
    except SettingsError as exc:
        raise LibraryError(str(exc)) from None


def _failure(report: Any) -> str | None:
    errors = report.errors
    return "; ".join(f"{sid}: {msg}" for sid, msg in errors.items()) if errors else None


def refresh_pass(lib: Library, sources: list[str] | None = None, *, workers: int | None = None,
                 validate: bool = True, timeout: float | None = None, llm: bool = False,
                 cluster: str | None = None, progress: Progress | None = None) -> PassOutcome:
    """Refresh ``sources`` (default: all) in ``lib``, drawing ``progress``; with ``llm``, then run
    the LLM pass over the sources that refreshed, when a key is configured (else a warning).

    Unknown sources, a bad cluster setting and a broken library raise LibraryError; failed
    sources and a failed LLM pass are the outcome's ``failure``, after its reports."""
    from .refresh import refresh

    settings = None
    if timeout:
        from .sandbox import SandboxSettings

        settings = SandboxSettings(timeout=float(timeout))
    outcome = PassOutcome()
    config = None
    if llm:
        from .llm import LLMConfig, LLMUnavailable

        try:
            config = LLMConfig.resolve(lib.path.parent)
        except LLMUnavailable as exc:  # the static refresh goes on without it
            outcome.warnings.append(str(exc))
    report = refresh(lib, sources or None, workers=workers, validate=validate, settings=settings,
                     progress=progress, cluster=cluster_address(lib, cluster))
    outcome.reports.append(report)
    if config is not None:
        llm_outcome = generate_pass(lib, [r.source_id for r in report.sources if not r.error], config,
                                    settings=settings)
        outcome.reports += llm_outcome.reports
        outcome.failure = llm_outcome.failure
    failures = [f for f in (_failure(report), outcome.failure) if f]
    outcome.failure = "; ".join(failures) or None
    return outcome


def generate_pass(lib: Library, source_ids: list[str], config: Any, *, settings: Any = None,
                  **options: Any) -> PassOutcome:
    """The LLM pass over ``source_ids`` with ``config`` (``llm.LLMConfig``); ``options`` go to
    ``generate.llm_pass`` (budget, iterations, force). An endpoint error is the failure."""
    from .generate import llm_pass
    from .llm import LLMError

    try:
        report = llm_pass(lib, source_ids, config=config, settings=settings, **options)
    except LLMError as exc:
        return PassOutcome(failure=str(exc))
    return PassOutcome(reports=[report], failure=_failure(report))
