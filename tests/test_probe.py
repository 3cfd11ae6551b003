"""The one interpreter probe (distill/sandbox/probe.py), asked about real virtual environments."""

from __future__ import annotations

import os
import platform
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

from jupyter_codedistiller.distill.sandbox import probe


def make_venv(path: Path, distribution: str, version: str) -> str:
    """A virtual environment made by ``python -m venv`` from this interpreter, holding one
    installed distribution of its own; returns its python."""
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(path)], check=True, timeout=120)
    python = path / "bin" / "python"
    site = subprocess.run([str(python), "-I", "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
                          capture_output=True, text=True, check=True, timeout=60).stdout.strip()
    info = Path(site) / f"{distribution}-{version}.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {distribution}\nVersion: {version}\n")
    return str(python)


@pytest.fixture(scope="module")
def venvs(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, str]:
    base = tmp_path_factory.mktemp("venvs")
    return make_venv(base / "one", "venvonly", "1.2.3"), make_venv(base / "two", "venvonly", "4.5.6")


def test_a_venv_python_is_its_own_interpreter_though_it_links_to_the_same_file(venvs: tuple[str, str]) -> None:
    one, two = venvs
    # The premise of the old bug: both venvs and this process resolve to one real file.
    assert os.path.realpath(one) == os.path.realpath(two) == os.path.realpath(sys.executable)
    assert not probe.is_this_interpreter(one) and not probe.is_this_interpreter(two)
    assert probe.is_this_interpreter(None) and probe.is_this_interpreter(sys.executable)
    assert probe.installed_versions(["venvonly", "nbformat"], one) == {"venvonly": "1.2.3", "nbformat": None}
    assert probe.installed_versions(["venvonly"], two) == {"venvonly": "4.5.6"}
    assert probe.installed_versions(["venvonly"]) == {"venvonly": None}  # not in this process
    assert probe.python_version(one) == platform.python_version()
    assert probe.python_version(str(Path(one).parent / "missing-python")) == "unknown"


def test_the_llm_prompt_names_what_the_chosen_venv_holds(venvs: tuple[str, str]) -> None:
    from jupyter_codedistiller.distill.generate import _environment

    one, two = venvs
    ctx = SimpleNamespace(package="venvonly")  # _environment reads only the source's package
    first, second = _environment(ctx, one), _environment(ctx, two)
    assert "venvonly 1.2.3" in first.installed and "venvonly 4.5.6" in second.installed
    assert first.python_version == second.python_version == platform.python_version()
    assert "venvonly" not in _environment(ctx, None).installed


def test_an_interpreter_answering_garbage_gives_no_versions(tmp_path: Path) -> None:
    liar = tmp_path / "python"
    liar.write_text("#!/bin/sh\necho '[\"not\", \"a dict\"]'\n")
    liar.chmod(0o755)
    assert probe.installed_versions(["numpy"], str(liar)) == {}
    liar.write_text("#!/bin/sh\necho '{\"numpy\": {\"forged\": 1}}'\n")
    assert probe.installed_versions(["numpy"], str(liar)) == {"numpy": None}
