"""Validation on a real Dask cluster: a ``dask scheduler`` and ``dask worker`` processes on 127.0.0.1."""

from __future__ import annotations

import os
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

pytest.importorskip("distributed")

from jupyter_codedistiller.distill import sources  # noqa: E402
from jupyter_codedistiller.distill.cluster import MISMATCH, ClusterError, ClusterExecutor  # noqa: E402
from jupyter_codedistiller.distill.refresh import refresh  # noqa: E402
from jupyter_codedistiller.distill.sandbox import SandboxSettings  # noqa: E402
from jupyter_codedistiller.library import Library  # noqa: E402

from .daskcluster import ROOT, WAIT, LocalCluster, wait_for  # noqa: E402
from .gitrepos import SAMPLE_FILES, file_url, make_repo  # noqa: E402
from .hostile.integrity import library_problems  # noqa: E402

SETTINGS = SandboxSettings(timeout=60)


@pytest.fixture
def cluster(tmp_path: Path):
    c = LocalCluster(tmp_path / "dask")
    try:
        c.start_worker("w0")
        c.start_worker("w1")
        yield c
    finally:
        c.close()


def outcomes(library: Library) -> dict[tuple[str, str], str]:
    return {(s.source.path, s.origin.details["anchor"]): s.validation.status
            for s in library.all(include_retired=False)}


def slow_repo(path: Path, n: int, seconds: float) -> str:
    """A repository of ``n`` example scripts that each take ``seconds``."""
    files = {"LICENSE": SAMPLE_FILES["LICENSE"]}
    for i in range(n):
        files[f"examples/step_{i:02d}.py"] = (f'"""Step {i}."""\nimport time\n\ntime.sleep({seconds})\n'
                                             f"print('step', {i})\n")
    make_repo(path, files)
    return file_url(path)


def test_fixture_repository_validates_on_the_cluster_as_it_does_here(tmp_path: Path, cluster) -> None:
    upstream = make_repo(tmp_path / "lab" / "survkit", SAMPLE_FILES)
    url = file_url(Path(upstream.working_tree_dir))
    here = Library(tmp_path / "here" / "library.db")
    there = Library(tmp_path / "there" / "library.db")
    try:
        sources.add(here, url)
        sources.add(there, url)
        local = refresh(here, workers=2, settings=SETTINGS)
        seen: list[str] = []
        remote = refresh(there, settings=SETTINGS, cluster=cluster.address,
                         progress=lambda stage, done, total, detail, source="": seen.append(detail))
        assert local.errors == {} and remote.errors == {}
        assert outcomes(there) == outcomes(here)
        assert {"passed"} <= set(outcomes(there).values())
        assert remote.totals()["passed"] == local.totals()["passed"] and remote.totals()["pending"] == 0
        records = [s.validation for s in there.all(include_retired=False)]
        assert {v.worker for v in records} <= set(cluster_workers(cluster)) and all(v.host for v in records)
        assert all(v.worker is None for s in here.all() for v in [s.validation])
        assert any("2 workers" in line and "snippets/min" in line for line in seen)
    finally:
        here.close()
        there.close()


def worker_names(cluster: LocalCluster) -> dict[str, str]:
    from distributed import Client

    with Client(cluster.address, timeout=WAIT, set_as_default=False) as client:
        return {w["name"]: addr for addr, w in client.scheduler_info(n_workers=-1)["workers"].items()}


def test_workers_run_their_own_copy_of_the_checkout(tmp_path: Path, cluster) -> None:
    files = {"LICENSE": SAMPLE_FILES["LICENSE"], "labkit/__init__.py": "NAME = 'labkit'\n",
             "examples/where.py": '"""Where labkit is."""\nimport labkit\n\nprint(labkit.__file__)\n'}
    make_repo(tmp_path / "lab" / "labkit", files)
    library = Library(tmp_path / "home" / "library.db")
    try:
        sources.add(library, file_url(tmp_path / "lab" / "labkit"))
        report = refresh(library, settings=SETTINGS, cluster=cluster.address)
        assert report.errors == {}
        (where,) = [s.validation for s in library.all() if s.source.path == "examples/where.py"]
        assert where.status == "passed", where
        checkout = str(sources.checkout_path(library, library.sources()[0].id))
        assert "codedistiller-checkouts" in where.stdout_tail and checkout not in where.stdout_tail
    finally:
        library.close()


def cluster_workers(cluster: LocalCluster) -> list[str]:
    from distributed import Client

    with Client(cluster.address, timeout=WAIT, set_as_default=False) as client:
        return list(client.scheduler_info(n_workers=-1)["workers"])


def test_batches_are_per_package_and_in_flight_tasks_bounded(tmp_path: Path, cluster) -> None:
    from jupyter_codedistiller.model import Snippet

    library = Library(tmp_path / "home" / "library.db")
    try:
        sources.add(library, slow_repo(tmp_path / "lab" / "slow", 6, 0.2))
        refresh(library, validate=False)
        jobs = [(s, [str(sources.checkout_path(library, s.source.source_id))]) for s in library.all()]
        with ClusterExecutor(cluster.address, batch_max=1, in_flight_per_thread=1) as executor:
            results = list(executor.validate_many(jobs, settings=SETTINGS))
            assert sorted(s.id for s, _ in results) == sorted(s.id for s, _ in jobs)
            assert {v.status for _, v in results} == {"passed"}
            assert executor.peak_in_flight == 2  # one per worker thread, though 6 batches were ready
            a, b = Snippet(id="a", code="x", requirements={"pandas": "2.2"}), Snippet(id="b", code="y")
            c = Snippet(id="c", code="z", requirements={"pandas": "2.2"})
            executor.batch_max = 8
            assert executor.batches([(a, []), (b, []), (c, [])], workers=1) == [[1], [0, 2]]
    finally:
        library.close()


def test_the_next_source_is_extracted_while_the_cluster_validates_the_last(tmp_path: Path, cluster) -> None:
    library = Library(tmp_path / "home" / "library.db")
    try:
        slow = sources.add(library, slow_repo(tmp_path / "lab" / "aslow", 6, 1.0)).id
        quick = sources.add(library, slow_repo(tmp_path / "lab" / "bquick", 2, 0.1)).id
        events: list[tuple[str, str, int, int]] = []
        report = refresh(library, settings=SETTINGS, cluster=cluster.address,
                         progress=lambda stage, done, total, detail, source="": events.append(
                             (source, stage, done, total)))
        assert [s.id for s in library.sources()] == [slow, quick]  # refreshed in this order
        assert [r.source_id for r in report.sources] == [slow, quick]
        assert report.errors == {} and report.totals()["passed"] == 8 and report.totals()["pending"] == 0
        slow_done = max(i for i, (sid, stage, done, total) in enumerate(events)
                        if sid == slow and stage == "validate")
        quick_fetch = min(i for i, (sid, stage, *_ ) in enumerate(events) if sid == quick and stage == "fetch")
        assert quick_fetch < slow_done  # not one source after the other
    finally:
        library.close()


def test_killing_a_worker_mid_run_loses_nothing(tmp_path: Path, cluster) -> None:
    library = Library(tmp_path / "home" / "library.db")
    try:
        sources.add(library, slow_repo(tmp_path / "lab" / "slow", 10, 1.5))
        doomed = cluster.workers[0]
        killed: list[int] = []

        def progress(stage: str, done: int, total: int, detail: str, source: str = "") -> None:
            if stage == "validate" and done >= 1 and not killed:  # both workers are busy now
                cluster.kill(doomed)
                killed.append(done)

        names = worker_names(cluster)
        report = refresh(library, settings=SETTINGS, cluster=cluster.address, progress=progress)
        assert killed and killed[0] < 10
        assert report.errors == {} and report.totals()["pending"] == 0, report.problems
        assert len(outcomes(library)) == 10 and set(outcomes(library).values()) == {"passed"}
        by_worker = [s.validation.worker for s in library.all()]
        # Batches of 3 (10 snippets, 2 workers): w0 was killed as the first batch came back, so
        # at most that one is its; what it held (queued or running) was run again by w1.
        assert by_worker.count(names["w0"]) <= 3 and by_worker.count(names["w1"]) >= 7
    finally:
        library.close()


def test_losing_the_scheduler_mid_run_ends_the_refresh_with_the_rest_pending(tmp_path: Path, cluster) -> None:
    library = Library(tmp_path / "home" / "library.db")
    try:
        sources.add(library, slow_repo(tmp_path / "lab" / "a", 8, 1.0))
        sources.add(library, slow_repo(tmp_path / "lab" / "b", 2, 0.1))
        killed: list[int] = []

        def progress(stage: str, done: int, total: int, detail: str, source: str = "") -> None:
            if stage == "validate" and done >= 1 and not killed:
                cluster.kill(cluster.scheduler)
                killed.append(done)

        report = refresh(library, settings=SETTINGS, cluster=cluster.address, progress=progress)
        first, second = report.sources  # validated side by side: the second may have finished first
        assert first.passed + second.passed >= 1
        for rep, n in ((first, 8), (second, 2)):
            assert all("\n" not in p and "could not validate" in p for p in rep.problems)
            if rep.error:  # it had not submitted anything yet when the scheduler went
                assert "lost the Dask scheduler" in rep.error and rep.passed == 0
            else:
                assert rep.passed + rep.pending == n and (rep.problems or not rep.pending)
            stored = [s.validation.status for s in library.all() if s.source.source_id == rep.source_id]
            assert stored.count("passed") == rep.passed and stored.count("pending") == n - rep.passed
        assert first.passed < 8, "the scheduler died before the slow source finished"
        assert library_problems(tmp_path / "home" / "library.db") == []
    finally:
        library.close()


def test_killing_the_coordinator_mid_run_leaves_a_sound_library_that_resumes(tmp_path: Path, cluster) -> None:
    home = tmp_path / "home"
    library = Library(home / "library.db")
    sources.add(library, slow_repo(tmp_path / "lab" / "slow", 12, 1.0))
    library.close()
    env = {**os.environ, "CODEDISTILLER_HOME": str(home),
           "PYTHONPATH": os.pathsep.join([str(ROOT), *filter(None, [os.environ.get("PYTHONPATH")])])}
    coordinator = subprocess.Popen([sys.executable, "-m", "jupyter_codedistiller.cli", "refresh",
                                    "--cluster", cluster.address], env=env, cwd=str(tmp_path),
                                   stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        def validated() -> int:
            if coordinator.poll() is not None:
                raise AssertionError(f"the refresh ended first: {coordinator.stdout.read().decode()}")
            with Library(home / "library.db") as lib:
                return sum(s.validation.status == "passed" for s in lib.all())

        wait_for(lambda: validated() >= 2, "two stored results")
        coordinator.kill()
        coordinator.wait(timeout=WAIT)
    finally:
        if coordinator.poll() is None:
            coordinator.kill()
            coordinator.wait(timeout=WAIT)
    assert library_problems(home / "library.db") == []
    with Library(home / "library.db") as lib:
        before = outcomes(lib)
        assert 2 <= list(before.values()).count("passed") < 12
        report = refresh(lib, settings=SETTINGS, cluster=cluster.address)
        assert report.errors == {} and report.totals()["pending"] == 0
        assert set(outcomes(lib).values()) == {"passed"} and len(outcomes(lib)) == 12
        assert report.totals()["passed"] == 12 - list(before.values()).count("passed")


def venv_with_extra_package(tmp_path: Path) -> str:
    """A second interpreter: this environment plus a real installed distribution ``cdtoy`` 1.0,
    which the cluster's workers (running this environment) do not have."""
    venv = tmp_path / "venv2"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=WAIT)
    python = venv / "bin" / "python"
    site = Path(subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                               capture_output=True, text=True, check=True).stdout.strip())
    (site / "base.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    (site / "cdtoy").mkdir()
    (site / "cdtoy" / "__init__.py").write_text("def answer():\n    return 42\n")
    info = site / "cdtoy-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: cdtoy\nVersion: 1.0\n")
    (info / "top_level.txt").write_text("cdtoy\n")
    (info / "RECORD").write_text("cdtoy/__init__.py,,\ncdtoy-1.0.dist-info/METADATA,,\n")
    return str(python)


def test_a_worker_without_a_package_of_the_library_environment_skips_with_the_reason(tmp_path: Path,
                                                                                     cluster) -> None:
    python = venv_with_extra_package(tmp_path)
    files = {"LICENSE": SAMPLE_FILES["LICENSE"],
             "examples/toy.py": '"""Use cdtoy."""\nimport cdtoy\n\nprint(cdtoy.answer())\n',
             "examples/plain.py": '"""No extra package."""\nimport json\n\nprint(json.dumps([1]))\n'}
    make_repo(tmp_path / "lab" / "toy", files)
    settings = SandboxSettings(timeout=60, interpreter=python)
    here = Library(tmp_path / "here" / "library.db")
    there = Library(tmp_path / "there" / "library.db")
    try:
        for lib in (here, there):
            sources.add(lib, file_url(tmp_path / "lab" / "toy"))
        refresh(here, settings=settings)
        assert set(outcomes(here).values()) == {"passed"}  # the library's environment has cdtoy
        refresh(there, settings=settings, cluster=cluster.address)
        got = {s.source.path: s.validation for s in there.all()}
        assert got["examples/plain.py"].status == "passed"
        toy = got["examples/toy.py"]
        assert toy.status == "skipped" and toy.reason.startswith(MISMATCH)
        assert "cdtoy not installed on the worker, 1.0 here" in toy.reason and toy.host and toy.worker
        # Next time (after the worker is fixed, or locally) it is validated again, not left skipped.
        again = refresh(there, settings=settings)
        assert again.totals()["stale"] == 1
        assert {s.source.path: s.validation.status for s in there.all()}["examples/toy.py"] == "passed"
    finally:
        here.close()
        there.close()


def test_an_unreachable_scheduler_is_one_line_before_anything_runs(tmp_path: Path) -> None:
    from .daskcluster import free_port

    with pytest.raises(ClusterError, match="cannot reach the Dask scheduler"):
        ClusterExecutor(f"tcp://127.0.0.1:{free_port()}", connect_timeout=2)
    library = Library(tmp_path / "home" / "library.db")
    try:
        with pytest.raises(ClusterError, match="not a Dask scheduler address"):
            refresh(library, cluster="tcp://no such host")
    finally:
        library.close()


def test_the_cluster_setting_is_checked_and_used_by_refresh(home: Path) -> None:
    from .daskcluster import free_port

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "jupyter_codedistiller.cli", *args], capture_output=True,
                              text=True, timeout=WAIT,
                              env={**os.environ, "DASK_DISTRIBUTED__COMM__TIMEOUTS__CONNECT": "2s"})

    bad = cli("config", "cluster", "not an address!")
    assert bad.returncode == 1 and "not a Dask scheduler address" in bad.stderr and len(bad.stderr.splitlines()) == 1
    address = f"tcp://127.0.0.1:{free_port()}"
    assert cli("config", "cluster", address).returncode == 0
    assert cli("config", "cluster").stdout.strip() == f'cluster = "{address}"'
    unreachable = cli("refresh")
    assert unreachable.returncode == 1 and len(unreachable.stderr.strip().splitlines()) == 1
    assert f"cannot reach the Dask scheduler at {address}" in unreachable.stderr
    assert cli("refresh", "--cluster", "local").returncode == 0  # this machine, as without a setting


def test_the_daemon_validates_on_the_cluster_its_library_is_configured_with(tmp_path: Path, cluster) -> None:
    home = tmp_path / "home"
    with Library(home / "library.db") as lib:
        sources.add(lib, slow_repo(tmp_path / "lab" / "quick", 3, 0.1))

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "jupyter_codedistiller.cli", "--home", str(home), *args],
                              capture_output=True, text=True, timeout=WAIT)

    assert cli("config", "cluster", cluster.address).returncode == 0
    done = cli("daemon", "--once", "--no-defaults", "--interval", "60")
    assert done.returncode == 0, done.stderr
    with Library(home / "library.db") as lib:
        records = [s.validation for s in lib.all()]
    assert len(records) == 3 and {v.status for v in records} == {"passed"}
    assert set(v.worker for v in records) <= set(cluster_workers(cluster)) and all(v.worker for v in records)


def test_nothing_of_dask_is_imported_unless_a_cluster_is_used(tmp_path: Path) -> None:
    code = ("import sys\n"
            "import jupyter_codedistiller.magics, jupyter_codedistiller.cli, jupyter_codedistiller.settings\n"
            "import jupyter_codedistiller.daemon, jupyter_codedistiller.distill.refresh\n"
            "import jupyter_codedistiller.distill.cluster\n"
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('dask', 'distributed')))\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=WAIT,
                          env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


def test_a_checkout_over_the_limit_is_not_shipped(tmp_path: Path) -> None:
    from jupyter_codedistiller.distill.cluster import _git_archive

    repo = make_repo(tmp_path / "lab" / "big", {"LICENSE": SAMPLE_FILES["LICENSE"], "data.bin": b"\0" * 300_000})
    head = repo.head.commit.hexsha
    archive = _git_archive(str(tmp_path / "lab" / "big"), head)
    assert archive is not None and len(archive) > 300_000
    assert _git_archive(str(tmp_path / "lab" / "big"), head, limit=100_000) is None
    assert _git_archive(str(tmp_path / "lab" / "big"), "0" * 40) is None


def test_the_daemon_jupyter_starts_validates_on_c_codedistiller_cluster(tmp_path: Path, cluster) -> None:
    import signal

    from jupyter_codedistiller.daemon import holder_pid

    from .daskcluster import free_port

    home = tmp_path / "home"
    with Library(home / "library.db") as lib:
        sources.add(lib, slow_repo(tmp_path / "lab" / "quick", 2, 0.1))
    env = {**os.environ, "JUPYTER_RUNTIME_DIR": str(tmp_path / "runtime"),
           "PYTHONPATH": os.pathsep.join([str(ROOT), *filter(None, [os.environ.get("PYTHONPATH")])])}
    server = subprocess.Popen(
        [sys.executable, "-m", "jupyter_server", "--allow-root", "--no-browser", "--ip=127.0.0.1",
         f"--port={free_port()}", "--ServerApp.port_retries=0", f"--ServerApp.root_dir={tmp_path}",
         "--IdentityProvider.token=t0k3n", f"--CodeDistiller.home={home}", "--CodeDistiller.daemon_interval=600",
         f"--CodeDistiller.cluster={cluster.address}"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env, start_new_session=True)
    try:
        def validated() -> list:
            with Library(home / "library.db") as lib:
                records = [s.validation for s in lib.all()]
            return records if len(records) == 2 and all(v.status == "passed" for v in records) else []

        records = wait_for(validated, "the server's daemon to validate on the cluster")
        assert all(v.worker in cluster_workers(cluster) for v in records)
    finally:
        daemon = holder_pid(home)
        server.send_signal(signal.SIGTERM)
        try:
            server.wait(timeout=60)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait(timeout=WAIT)
        if daemon and holder_pid(home):
            os.kill(daemon, signal.SIGKILL)
