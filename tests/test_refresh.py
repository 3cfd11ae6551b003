"""The incremental refresh against real git repositories: what is read, stored, retired, validated."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from jupyter_codedistiller.cli import main
from jupyter_codedistiller.distill import extract, sources
from jupyter_codedistiller.distill.candidates import CANDIDATE_KINDS
from jupyter_codedistiller.distill.refresh import refresh
from jupyter_codedistiller.library import Library, NotFound
from jupyter_codedistiller.model import Validation

from .gitrepos import SAMPLE_FILES, commit, file_url, make_repo


@pytest.fixture
def upstream(tmp_path: Path):
    return make_repo(tmp_path / "lab" / "survkit", SAMPLE_FILES)


@pytest.fixture
def added(library: Library, upstream) -> str:
    return sources.add(library, file_url(Path(upstream.working_tree_dir))).id


@pytest.fixture
def extracted(monkeypatch) -> list[str]:
    """The paths handed to the extractor, in order (the real extractor still does the work)."""
    calls: list[str] = []
    real = extract.extract_file

    def spy(path: str, data: bytes):
        calls.append(path)
        return real(path, data)

    monkeypatch.setattr(extract, "extract_file", spy)
    return calls


def by_path(library: Library) -> dict[str, list]:
    out: dict[str, list] = {}
    for s in library.all(include_retired=False):
        out.setdefault(s.source.path, []).append(s)
    return out


def test_first_refresh_distils_every_kind_with_provenance(library: Library, upstream,
                                                          added: str, extracted) -> None:
    seen: list[tuple[str, ...]] = []
    report = refresh(library, validate=False, progress=lambda *a: seen.append(a))
    rep = report.sources[0]
    head = upstream.head.commit.hexsha
    assert rep.error is None and rep.full and rep.pin == head
    assert sorted(extracted) == sorted(p for p in SAMPLE_FILES if extract.is_candidate_file(p))
    snippets = list(library.all())
    assert rep.added == len(snippets) >= 8 and rep.pending == rep.added
    assert {s.origin.details["extracted_from"] for s in snippets} == set(CANDIDATE_KINDS)
    assert {s.origin.kind for s in snippets} == {"verbatim", "assembled"}
    for s in snippets:
        assert s.source.commit == head and s.source.ref == "main"
        assert (s.source.kind, s.source.source_id, s.source.license) == ("git", added, "MIT")
        assert s.source.package == "survkit"  # from pyproject.toml
        assert s.source.line_start and s.validation.status == "pending" and s.revision == 1
    assembled = [s for s in snippets
                 if s.origin.kind == "assembled" and s.source.path == "README.md"][0]
    assert "times = [5, 1, 3]" in assembled.code
    assert "print(median_survival(times))" in assembled.code
    src = library.source(added)
    assert (src.state, src.last_commit, src.last_error) == ("ok", head, None)
    assert library.runs()[0]["counts"]["added"] == rep.added
    assert {stage for stage, *_ in seen} >= {"fetch", "extract", "store", "done"}
    # each step names its source apart from its detail, as the published entry does
    assert {a[4] for a in seen if a[0] != "done"} == {added}
    assert {a[3] for a in seen if a[0] == "extract"} <= set(SAMPLE_FILES)  # the path alone
    assert library.progress()["distiller"].step == "idle"
    assert "survival" in " ".join(library.search("median survival")[0].snippet.title.lower().split())


def test_one_changed_file_is_the_only_one_read_again(library: Library, upstream, added: str,
                                                     extracted) -> None:
    refresh(library, validate=False)
    before = {s.id: s for s in library.all()}
    extracted.clear()
    assert refresh(library, validate=False).totals()["files"] == 0 and extracted == []

    new = commit(upstream, {"examples/fit_groups.py": SAMPLE_FILES["examples/fit_groups.py"]
                            .replace("'control', ", "'control', 'control', ")})
    report = refresh(library, validate=False)
    assert extracted == ["examples/fit_groups.py"]
    t = report.totals()
    assert (t["updated"], t["added"], t["retired"], t["files"]) == (1, 0, 0, 1)
    after = {s.id: s for s in library.all()}
    assert set(after) == set(before)  # ids are stable
    changed = [i for i in after if after[i].revision != before[i].revision]
    assert len(changed) == 1 and after[changed[0]].revision == 2
    assert after[changed[0]].source.commit == new
    assert after[changed[0]].source.path == "examples/fit_groups.py"
    untouched = [after[i] for i in after if i not in changed]
    assert all(s.updated == before[s.id].updated and s.source.commit != new for s in untouched)
    assert library.source(added).last_commit == new


def test_deleted_and_renamed_files_retire_their_snippets(library: Library, upstream, added: str,
                                                         extracted) -> None:
    refresh(library, validate=False)
    old = by_path(library)
    extracted.clear()
    commit(upstream, delete=["docs/guide.rst"], rename={"survkit/core.py": "survkit/stats.py"})
    report = refresh(library, validate=False)
    assert extracted == ["survkit/stats.py"]
    now = by_path(library)
    assert "docs/guide.rst" not in now and "survkit/core.py" not in now
    assert len(now["survkit/stats.py"]) == len(old["survkit/core.py"])
    gone = [s.id for s in old["docs/guide.rst"] + old["survkit/core.py"]]
    assert report.totals()["retired"] == len(gone)
    assert all(library.get(i).lifecycle == "retired" for i in gone)
    assert library.search("group sizes", source=added)  # the rest is still found


def test_a_lost_checkout_is_cloned_again_and_read_in_full(library: Library, upstream,
                                                          added: str) -> None:
    refresh(library, validate=False)
    before = {s.id: s.revision for s in library.all()}
    shutil.rmtree(sources.checkout_path(library, added))
    commit(upstream, {"examples/fit_groups.py": "print('after the loss')\n"})
    report = refresh(library, validate=False)
    rep = report.sources[0]
    assert rep.error is None and rep.full and (rep.added, rep.updated, rep.retired) == (0, 1, 0)
    assert {s.id: s.revision for s in library.all()} == {
        i: r + (library.get(i).source.path == "examples/fit_groups.py") for i, r in before.items()}


def test_a_block_removed_from_a_changed_file_is_retired(library: Library, upstream,
                                                        added: str) -> None:
    refresh(library, validate=False)
    readme = {s.origin.details["anchor"]: s.id for s in by_path(library)["README.md"]}
    commit(upstream, {"README.md": "# survkit\n\nNo examples any more.\n"})
    report = refresh(library, validate=False)
    assert report.totals()["retired"] == len(readme)
    assert all(library.get(i).lifecycle == "retired" for i in readme.values())


def test_bad_files_are_reported_and_the_rest_is_stored(library: Library, upstream,
                                                       added: str) -> None:
    commit(upstream, {
        "examples/broken.py": "def oops(:\n    pass\n",
        "examples/latin1.py": "print('caf\xe9')\n".encode("latin-1"),
        "examples/binary.py": b"\x00\x01\x02\xff" * 50,
        "notebooks/malformed.ipynb": "{ this is not json",
        "examples/leaky.py": "import boto3\nkey = 'AKIAABCDEFGHIJKLMNOP'\nprint(key)\n",
    })
    report = refresh(library, validate=False)
    rep = report.sources[0]
    assert rep.error is None and rep.secrets == 1
    for name in ("broken.py", "latin1.py", "binary.py", "malformed.ipynb"):
        assert any(name in p for p in rep.problems), (name, rep.problems)
    assert all(p.startswith(f"{added}: ") for p in rep.problems)
    stored = by_path(library)
    assert "examples/leaky.py" not in stored and "examples/fit_groups.py" in stored
    assert not any("AKIA" in s.code for s in library.all())


def test_duplicate_code_in_one_source_is_one_snippet(library: Library, upstream,
                                                     added: str) -> None:
    code = SAMPLE_FILES["examples/fit_groups.py"]
    commit(upstream, {"examples/copy_of_fit_groups.py": code})
    refresh(library, validate=False)
    copies = [s for s in library.all() if "print(group_sizes(cohort))" in s.code
              and s.origin.details["extracted_from"] == "script"]
    assert len(copies) == 1
    # A later commit adding the same code again in another file adds nothing either.
    commit(upstream, {"examples/third_copy.py": code})
    assert refresh(library, validate=False).totals()["added"] == 0


def test_one_source_failing_does_not_stop_the_others(library: Library, tmp_path: Path,
                                                     upstream, added: str, capsys) -> None:
    doomed = make_repo(tmp_path / "doomed" / "gone", {"README.md": "# g\n\n```python\nx = 1\n```\n"})
    sources.add(library, file_url(Path(doomed.working_tree_dir)))
    refresh(library, validate=False)
    kept = library.count()
    shutil.rmtree(doomed.working_tree_dir)
    commit(upstream, {"examples/new_one.py": "print('new')\n"})
    report = refresh(library, validate=False)
    assert set(report.errors) == {"gone"} and "gone" in report.errors["gone"]
    assert report.totals()["added"] == 1 and library.count() == kept + 1
    gone = library.source("gone")
    assert gone.state == "error" and gone.last_error and gone.settings.last_error_when
    assert library.source(added).state == "ok"
    # The CLI prints the summary, then one error line, and exits non-zero.
    assert main(["refresh", "--no-validate"]) == 1
    captured = capsys.readouterr()
    assert "2 sources:" in captured.out
    assert captured.err.count("\n") == 1 and "gone:" in captured.err
    with pytest.raises(NotFound, match="nosuch"):
        refresh(library, ["nosuch"], validate=False)


def test_one_source_is_written_in_one_transaction(library: Library, upstream, added: str,
                                                  monkeypatch) -> None:
    refresh(library, validate=False)
    before = {s.id: (s.revision, s.lifecycle, s.code) for s in library.all()}
    first = library.source(added).last_commit
    commit(upstream, {"examples/fit_groups.py": "print('changed')\n"}, delete=["docs/guide.rst"])

    def crash(ids):
        raise RuntimeError("killed between upsert and retire")

    monkeypatch.setattr(library, "retire", crash)
    report = refresh(library, validate=False)
    assert "killed between upsert and retire" in report.errors[added]
    # Nothing of the half-done refresh is visible: not the update, not the pin.
    assert {s.id: (s.revision, s.lifecycle, s.code) for s in library.all()} == before
    assert library.source(added).last_commit == first
    assert library.source(added).state == "error"
    monkeypatch.undo()
    report = refresh(library, validate=False)
    assert report.errors == {} and report.totals()["updated"] == 1
    assert report.totals()["retired"] >= 1 and library.source(added).state == "ok"


def test_a_busy_source_is_skipped(library: Library, added: str) -> None:
    from jupyter_codedistiller.distill.refresh import SourceLock

    held = SourceLock(library, added)
    assert held.acquire()
    try:
        report = refresh(library, validate=False)
        assert report.totals()["added"] == 0
        assert report.problems == [f"{added}: skipped: another refresh is working on it"]
    finally:
        held.release()
    assert refresh(library, validate=False).totals()["added"] > 0


# ---------------------------------------------------------------- validation


@pytest.fixture
def validating(tmp_path: Path, library: Library) -> str:
    repo = make_repo(tmp_path / "lab" / "checks", {
        "examples/works.py": '"""Works."""\nfrom checks import answer\nprint(answer())\n',
        "examples/breaks.py": '"""Breaks."""\nraise ValueError("broken on purpose")\n',
        "checks/__init__.py": "def answer():\n    return 42\n",
    })
    return sources.add(library, file_url(Path(repo.working_tree_dir))).id


def test_validation_records_passes_and_failures(library: Library, validating: str) -> None:
    from jupyter_codedistiller.distill.sandbox import SandboxSettings

    steps: list[str] = []
    report = refresh(library, workers=2, settings=SandboxSettings(timeout=30),
                     progress=lambda stage, done, total, detail, source="": steps.append(stage))
    t = report.totals()
    assert (t["passed"], t["failed"], t["pending"]) == (1, 1, 0), report.problems
    assert "validate" in steps
    results = {s.source.path: s.validation for s in library.all()}
    works, breaks = results["examples/works.py"], results["examples/breaks.py"]
    assert works.status == "passed" and "42" in works.stdout_tail  # the checkout is importable
    assert breaks.status == "failed" and "broken on purpose" in breaks.stderr_tail
    assert works.interpreter and works.duration is not None
    assert "1 passed, 1 failed" in report.summary()
    # Validated snippets are not run again.
    assert refresh(library).totals()["passed"] == 0


def test_a_per_pass_limit_grows_each_pass_that_left_some_waiting(tmp_path: Path, library: Library) -> None:
    from jupyter_codedistiller.distill.refresh import PASS_GROWTH
    from jupyter_codedistiller.distill.sandbox import SandboxSettings

    files = {f"examples/ex{i:02d}.py": f'"""Example {i}."""\nprint({i})\n' for i in range(7)}
    repo = make_repo(tmp_path / "lab" / "many", files)
    src = sources.add(library, file_url(Path(repo.working_tree_dir)))
    src.settings.validate_per_pass = 1
    library.save_source(src)
    refresh(library, validate=False)
    settings = SandboxSettings(timeout=30)
    validated = []
    for _ in range(3):
        validated.append(refresh(library, settings=settings, workers=2).totals()["passed"])
    # 1, then 4, then the 2 left (the limit is 16 by then): three passes, not seven.
    assert validated == [1, PASS_GROWTH, 7 - 1 - PASS_GROWTH]
    assert library.source(src.id).settings.validate_per_pass == PASS_GROWTH ** 2
    assert library.status().validation == {"passed": 7}


def test_every_source_gets_its_most_wanted_validated_before_any_sources_others(
        tmp_path: Path, library: Library) -> None:
    from jupyter_codedistiller.distill.refresh import FIRST_LOOK
    from jupyter_codedistiller.distill.sandbox import SandboxSettings

    for name in ("alpha", "beta"):
        files = {f"examples/ex{i:02d}.py": f'"""Example {i}."""\nprint({i})\n' for i in range(FIRST_LOOK + 2)}
        sources.add(library, file_url(Path(make_repo(tmp_path / "lab" / name, files).working_tree_dir)))
    refresh(library, validate=False)
    order: list[str] = []
    report = refresh(library, settings=SandboxSettings(timeout=30), workers=1,
                     progress=lambda stage, done, total, detail, source="": stage == "validate" and done
                     and order.append(source.rpartition("/")[2]))
    assert report.totals()["passed"] == 2 * (FIRST_LOOK + 2), report.problems
    # one server, in order: alpha's first four, beta's first four, then the rest of each
    assert order == ["alpha"] * FIRST_LOOK + ["beta"] * FIRST_LOOK + ["alpha"] * 2 + ["beta"] * 2, order


def test_passed_snippets_go_stale_when_a_dependency_moves(library: Library,
                                                          validating: str) -> None:
    from jupyter_codedistiller.distill.sandbox import SandboxSettings

    settings = SandboxSettings(timeout=30)
    refresh(library, settings=settings)
    works = next(s for s in library.all() if s.source.path == "examples/works.py")
    assert works.validation.status == "passed"
    old = Validation(**{**works.validation.__dict__, "packages": {"nbformat": "0.0.1"}})
    library.set_validation(works.id, old, revision=works.revision)

    report = refresh(library, validate=False)
    assert report.totals()["stale"] == 1
    stale = library.get(works.id).validation
    assert stale.status == "stale" and "nbformat 0.0.1 -> " in stale.reason

    report = refresh(library, settings=settings)
    assert report.totals()["passed"] == 1
    assert library.get(works.id).validation.status == "passed"


def test_skipped_for_a_missing_package_is_retried_once_it_is_installed(library: Library,
                                                                        validating: str) -> None:
    from jupyter_codedistiller.distill.sandbox import SandboxSettings

    settings = SandboxSettings(timeout=30)
    refresh(library, settings=settings)
    works = next(s for s in library.all() if s.source.path == "examples/works.py")
    skipped = Validation(status="skipped", reason="needs package nbformat")
    library.set_validation(works.id, skipped, revision=works.revision)
    other = next(s for s in library.all() if s.source.path == "examples/breaks.py")
    library.set_validation(other.id, Validation(status="skipped", reason="needs package surely-not-installed-x"),
                           revision=other.revision)

    report = refresh(library, validate=False)
    assert report.totals()["stale"] == 1, "nbformat is installed; the other package is not"
    assert library.get(works.id).validation.reason == "environment changed: nbformat is installed now"
    assert library.get(other.id).validation.status == "skipped"
    refresh(library, settings=settings)
    assert library.get(works.id).validation.status == "passed"


def test_llm_made_snippets_survive_a_refresh_of_their_file(tmp_path) -> None:
    from jupyter_codedistiller.distill import sources as _sources
    from jupyter_codedistiller.distill.refresh import refresh as _refresh
    from jupyter_codedistiller.library import Library as _Library
    from jupyter_codedistiller.model import Origin as _Origin
    from jupyter_codedistiller.model import Snippet as _Snippet
    from jupyter_codedistiller.model import Source as _Source
    from jupyter_codedistiller.model import snippet_id as _sid

    from .gitrepos import SAMPLE_FILES, commit, file_url, make_repo

    repo = make_repo(tmp_path / "up", SAMPLE_FILES)
    with _Library(tmp_path / "lib" / "library.db") as lib:
        _sources.add(lib, file_url(tmp_path / "up"), name="up")
        _refresh(lib, validate=False)
        made = _Snippet(id=_sid("up", "llm:adapted", "x"), code="print('repaired')\n", title="repaired",
                        source=_Source(kind="git", path="examples/fit_groups.py", source_id="up"),
                        origin=_Origin(kind="adapted", model="m"))
        lib.upsert([made])
        commit(repo, {"examples/fit_groups.py": SAMPLE_FILES["examples/fit_groups.py"] + "print('more')\n"})
        _refresh(lib, validate=False)
        assert lib.get(made.id).lifecycle == "active"
        commit(repo, delete=["examples/fit_groups.py"])
        _refresh(lib, validate=False)
        assert lib.get(made.id).lifecycle == "retired"


def test_a_full_refresh_retires_llm_snippets_whose_file_is_gone(tmp_path) -> None:
    from jupyter_codedistiller.distill import sources as _sources
    from jupyter_codedistiller.distill.refresh import refresh as _refresh
    from jupyter_codedistiller.library import Library as _Library
    from jupyter_codedistiller.model import Origin as _Origin
    from jupyter_codedistiller.model import Snippet as _Snippet
    from jupyter_codedistiller.model import Source as _Source
    from jupyter_codedistiller.model import snippet_id as _sid

    from .gitrepos import SAMPLE_FILES, commit, file_url, make_repo

    repo = make_repo(tmp_path / "up", SAMPLE_FILES)
    with _Library(tmp_path / "lib" / "library.db") as lib:
        _sources.add(lib, file_url(tmp_path / "up"), name="up")
        _refresh(lib, validate=False)
        kept, lost = (_Snippet(id=_sid("up", "llm:adapted", path), code=f"print({path!r})\n", title="fix",
                               source=_Source(kind="git", path=path, source_id="up"),
                               origin=_Origin(kind="adapted", model="m"))
                      for path in ("examples/plot_gallery.py", "examples/fit_groups.py"))
        lib.upsert([kept, lost])
        commit(repo, delete=["examples/fit_groups.py"])
        _refresh(lib, validate=False, full=True)
        assert lib.get(kept.id).lifecycle == "active"
        assert lib.get(lost.id).lifecycle == "retired"


def test_a_warm_pool_that_keeps_dying_leaves_the_batch_pending(library: Library, validating: str,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    from jupyter_codedistiller.distill.sandbox import SandboxSettings, warm_available
    from jupyter_codedistiller.distill.sandbox.warm import PoolDied, WarmPool

    if warm_available() is not None:
        pytest.skip(f"no warm pool here: {warm_available()}")

    def dies(self: WarmPool, code: str, python_path: object = None) -> None:
        self.close()
        raise PoolDied("the warm interpreter ended or stopped answering")

    monkeypatch.setattr(WarmPool, "run", dies)
    report = refresh(library, settings=SandboxSettings(timeout=30), workers=1)
    assert report.totals()["pending"] == 2 and report.totals()["passed"] == 0
    assert any("could not validate 2 snippets: PoolDied" in p for p in report.problems)
    assert {s.validation.status for s in library.all()} == {"pending"}  # nothing stored was lost
    monkeypatch.undo()
    report = refresh(library, settings=SandboxSettings(timeout=30))
    assert (report.totals()["passed"], report.totals()["failed"]) == (1, 1)
    assert {s.validation.mode for s in library.all()} == {"warm"}


def test_most_wanted_snippets_are_validated_first() -> None:
    import dataclasses

    from jupyter_codedistiller.distill.refresh import _wanted

    from .conftest import make_snippet

    def snippet(name: str, api: str, code: str = "x = 1\n") -> object:
        return dataclasses.replace(make_snippet(name, code=code), api=api)

    found = [snippet("deep", "lifelines.fitters.coxph_fitter.CoxPHFitter.fit"),
             snippet("private", "lifelines._utils.helper"), snippet("none", ""),
             snippet("main-long", "lifelines.KaplanMeierFitter", "x = 1\n" * 20),
             snippet("main", "lifelines.KaplanMeierFitter"), snippet("top", "lifelines")]
    order = [s.api or "-" for s in sorted(found, key=_wanted)]
    assert order[:4] == ["lifelines", "lifelines.KaplanMeierFitter", "lifelines.KaplanMeierFitter",
                         "lifelines.fitters.coxph_fitter.CoxPHFitter.fit"]
    assert set(order[4:]) == {"-", "lifelines._utils.helper"}  # no public object: after, short first
    assert sorted(found, key=_wanted)[1].code == "x = 1\n"  # the short one of the same object first


def test_a_docstring_example_carries_the_public_name_its_package_exports(
        library: Library, tmp_path: Path) -> None:
    # binkit/__init__.py re-exports qcut from binkit/core/api.py, which imports it from the module
    # that defines it: the snippet is named binkit.qcut, and found by the words of either name.
    files = {
        "binkit/__init__.py": "from binkit.core.api import qcut as qcut\nfrom ._version import v\n",
        "binkit/core/__init__.py": "",
        "binkit/core/api.py": "from .tiles import qcut\n",
        "binkit/core/tiles.py": (
            'def qcut(values, q):\n    """Quantile-based discretization of values.\n\n'
            '    >>> from binkit.core.tiles import qcut\n    >>> qcut([1, 2, 3, 4], 2)\n    """\n'
            '    return values\n\n\n'
            'def inner(values):\n    """Not exported.\n\n    >>> inner([1, 2])\n    """\n    return values\n'),
    }
    repo = make_repo(tmp_path / "lab" / "binkit", files)
    sources.add(library, file_url(Path(repo.working_tree_dir)))
    refresh(library, validate=False)
    names = {s.api for s in library.all()}
    assert names == {"binkit.qcut", "binkit.core.tiles.inner"}
    for query in ("binkit qcut", "tiles quantile"):
        first = library.search(query)[0]
        assert first.snippet.api == "binkit.qcut" and not first.missing, query


def test_public_names_follow_re_exports_only_as_far_as_they_go() -> None:
    from jupyter_codedistiller.distill.exports import Exports

    files = {"p/__init__.py": b"from .a import f\nfrom .b import *\nfrom . import (\n", "p/a.py": b"from .a import f\n"}
    names = Exports(files.get)
    assert names.public_name("p/a.py", "f", "p.a.f") == "p.a.f"  # __init__ does not parse
    files["p/__init__.py"] = b"from .a import f as _f, f as g\n"
    names = Exports(files.get)
    assert names.public_name("p/a.py", "f", "p.a.f") == "p.g"  # a self-import is not a loop
    assert names.public_name("p/a.py", "f.method", "p.a.f.method") == "p.g.method"
    assert names.public_name("p/b.py", "h", "p.b.h") == "p.b.h"


def test_sources_refreshed_together_are_recorded_each_and_an_interruption_keeps_what_was_stored(
        library: Library, tmp_path: Path, upstream, added: str) -> None:
    from jupyter_codedistiller.distill.sandbox import SandboxSettings

    other = make_repo(tmp_path / "lab" / "second", {
        "README.md": "# second\n",
        **{f"examples/step_{i}.py": f"print('step {i}')\n" for i in range(3)}})
    second = sources.add(library, file_url(Path(other.working_tree_dir))).id
    results: list[str] = []

    def stop_after_two(stage: str, done: int, total: int, detail: str, source: str = "") -> None:
        if stage == "validate" and done:
            results.append(source)
            if len(results) == 2:
                raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        refresh(library, workers=1, settings=SandboxSettings(timeout=30), progress=stop_after_two)
    runs = {r["source_id"]: r for r in library.runs()}
    assert set(runs) == {added, second}
    assert all(r["finished"] and r["error"] == "interrupted" for r in runs.values()), runs
    statuses = [s.validation.status for s in library.all()]
    assert statuses.count("pending") == len(statuses) - 2 > 0  # both sources stored, two validated
    # The locks went with the interrupted run: the next refresh validates the rest of both.
    report = refresh(library, workers=2, settings=SandboxSettings(timeout=30))
    assert not report.problems and report.totals()["pending"] == 0, report.problems
    assert "pending" not in {s.validation.status for s in library.all()}
    assert {r["source_id"] for r in library.runs(limit=2)} == {added, second}
