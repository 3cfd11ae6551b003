"""The sandbox package's modules on their own: the child programs are real, importable modules."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from importlib import metadata
from pathlib import Path

import pytest

from jupyter_codedistiller.distill.sandbox import distributions, reasons, runner, setup
from jupyter_codedistiller.distill.sandbox.programs import CHILD_PROGRAMS, program


def test_child_programs_import_without_running_and_compile_for_old_interpreters() -> None:
    for name in CHILD_PROGRAMS:
        source = program(name)
        ast.parse(source, name, feature_version=(3, 8))
    assert callable(setup.main) and callable(runner.main)
    with pytest.raises(ValueError):
        program("../settings")


def test_facts_program_describes_an_interpreter_in_isolated_mode() -> None:
    out = subprocess.run([sys.executable, "-I", "-c", program("facts")], capture_output=True,
                         check=True, timeout=60)
    facts = json.loads(out.stdout)
    assert facts["executable"] == sys.executable and facts["version"].count(".") == 2


def test_used_distributions_follow_checkout_code_statically_and_name_installed_versions(
        tmp_path: Path) -> None:
    pkg = tmp_path / "survkit"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("from . import fit\n")
    (pkg / "fit.py").write_text("import nbformat\nfrom git import Repo\n")
    (tmp_path / "nbformat-0.0.0-FORGED.dist-info").mkdir()  # a checkout's claim is never read
    (tmp_path / "nbformat-0.0.0-FORGED.dist-info" / "METADATA").write_text(
        "Name: nbformat\nVersion: 0.0.0-FORGED\n")
    assert distributions.used_modules("import survkit", [str(tmp_path)]) >= {"survkit", "nbformat", "git"}
    site = [p for p in sys.path if p.endswith("site-packages")]
    found = distributions.used_distributions("import survkit\nimport json", site, [str(tmp_path)])
    assert found == {"nbformat": metadata.version("nbformat"), "GitPython": metadata.version("GitPython")}
    assert distributions.missing(["nbformat", "no-such-dist-xyz"], site) == ["no-such-dist-xyz"]


def test_setup_path_containment_is_by_component() -> None:
    assert setup.under("/tmp/x", "/tmp") and setup.under("/tmp", "/tmp")
    assert not setup.under("/tmpfoo", "/tmp")


@pytest.mark.parametrize(("stderr", "static", "reason"), [
    ("Traceback...\nModuleNotFoundError: No module named 'torchx'\n", set(), "needs package torchx"),
    ("Traceback...\nModuleNotFoundError: No module named 'scipy.nope'\n", set(), None),
    ("Traceback...\nFileNotFoundError: [Errno 2] No such file or directory: 'x.csv'\n", set(),
     "needs data file 'x.csv'"),
    ("Traceback...\nValueError: bad\n", {"network"}, "needs network"),
    ("Traceback...\nValueError: bad\n", set(), None),
])
def test_skip_reasons_come_from_the_run_first(stderr: str, static: set[str], reason: str | None) -> None:
    assert reasons.skip_reason(stderr, static, False, []) == reason


def test_static_needs_reads_what_the_code_visibly_does() -> None:
    assert reasons.static_needs("import urllib.request\nurllib.request.urlopen('https://x')") == {"network"}
    assert reasons.static_needs("model.to('cuda')") == {"gpu"}
    assert reasons.static_needs("x = input()") == {"input"}


def test_a_throwaway_uid_in_use_is_never_handed_out_again_until_released() -> None:
    from jupyter_codedistiller.distill.sandbox import supervise

    held = [supervise._next_uid() for _ in range(255)]
    try:
        assert len(set(held)) == 255
        last = supervise._next_uid()  # the one left
        assert last not in held
        with pytest.raises(RuntimeError, match="no free throwaway uid"):
            supervise._next_uid()
        supervise._release_uid(held[7])
        assert supervise._next_uid() == held[7]
        held.append(last)
    finally:
        for uid in held:
            supervise._release_uid(uid)
