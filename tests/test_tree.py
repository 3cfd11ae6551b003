"""The tree at its pin (distill/tree.py): one plan for refresh and the LLM pass, on real repositories."""

from __future__ import annotations

import dataclasses
from importlib import metadata
from pathlib import Path

from jupyter_codedistiller.distill import sources, tree
from jupyter_codedistiller.distill.generate import source_context
from jupyter_codedistiller.distill.refresh import _plan_git, _plan_package, refresh
from jupyter_codedistiller.library import Library

from .gitrepos import MIT_LICENSE, file_url, make_repo

PYPROJECT = '[project]\nname = "{name}"\nversion = "{version}"\n'


def _repo(path: Path, name: str, version: str = "0.4.2") -> Path:
    repo = make_repo(path, {"pyproject.toml": PYPROJECT.format(name=name, version=version),
                            "LICENSE": MIT_LICENSE, f"src/{name}/__init__.py": "X = 1\n",
                            "examples/run.py": f"import {name}\nprint({name}.X)\n"})
    return Path(repo.working_tree_dir)


def test_a_checkout_whose_distribution_is_not_installed_runs_its_own_code(tmp_path: Path) -> None:
    root = _repo(tmp_path / "survkit", "survkit_demo")
    head = sources.head_commit(root)
    found = tree.at_commit(tree.Tree, root, head, ref="main", repository=None)
    assert found.pin == head and found.package == "survkit_demo" and found.license == "MIT"
    assert found.python_path == [str(root), str(root / "src")]
    assert found.provides == {"survkit_demo": "0.4.2"} and found.dist_modules == set()
    assert found.read("examples/run.py", 100).startswith("import survkit_demo")


def test_a_checkout_of_an_installed_distribution_runs_the_installed_one(tmp_path: Path) -> None:
    root = _repo(tmp_path / "nbformat", "nbformat", version="0.0.1")
    found = tree.at_commit(tree.Tree, root, sources.head_commit(root), ref=None, repository=None)
    assert str(root) not in found.python_path  # the checkout is data, never on the path
    assert found.provides == {"nbformat": metadata.version("nbformat")}
    assert "nbformat" in found.dist_modules


def test_refresh_and_the_llm_pass_see_one_tree(library: Library, tmp_path: Path) -> None:
    # A fork of an installed distribution: both must run the installed one (the LLM pass used
    # to put the checkout on the path while refresh validated against the installed package).
    root = _repo(tmp_path / "nbformat-fork", "nbformat", version="0.0.1")
    src = sources.add(library, file_url(root))
    refresh(library, validate=False)
    src = library.source(src.id)
    plan = _plan_git(library, src, full=True)
    ctx = source_context(library, src.id)
    for name in [f.name for f in dataclasses.fields(tree.Tree) if f.name != "files"]:
        assert getattr(plan, name) == getattr(ctx, name), name
    assert sorted(plan.files) == sorted(ctx.files)  # a full plan reads every file the context has

    pkg = sources.add(library, "pkg:nbformat", upstream=False)
    plan, ctx = _plan_package(library, pkg, full=True), source_context(library, pkg.id)
    for name in [f.name for f in dataclasses.fields(tree.Tree) if f.name != "files"]:
        assert getattr(plan, name) == getattr(ctx, name), name
    assert ctx.version == metadata.version("nbformat") and "nbformat" in ctx.dist_modules
