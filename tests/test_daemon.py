"""The background distiller: picks up upstream commits, retires deletions, survives SIGKILL, runs once."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from jupyter_codedistiller.daemon import holder_pid
from jupyter_codedistiller.distill import sources
from jupyter_codedistiller.library import Library
from jupyter_codedistiller.model import ProgressEntry

from .gitrepos import commit, file_url, make_repo

UPSTREAM = {
    "LICENSE": "MIT License\n\nPermission is hereby granted, free of charge, to any person obtaining a copy\n",
    "README.md": "# cohortkit\n\n## Sizes\n\n```python\ncohort = [3, 5, 8]\nprint(len(cohort))\n```\n",
    "examples/first_example.py": '"""Count a cohort."""\ncohort = [1, 2, 3]\nprint(sum(cohort))\n',
}


def start_daemon(home: Path, *args: str) -> subprocess.Popen[str]:
    env = {**os.environ, "CODEDISTILLER_HOME": str(home)}
    return subprocess.Popen(
        [sys.executable, "-m", "jupyter_codedistiller.cli", "daemon", *args],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
    )


def wait_for(check: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.2)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


def titles(home: Path, query: str, **kw) -> list[str]:
    with Library.open(home) as lib:
        return [r.snippet.source.path for r in lib.search(query, limit=50, **kw)]


@pytest.fixture
def upstream(tmp_path: Path):
    return make_repo(tmp_path / "upstream", UPSTREAM)


@pytest.fixture
def registered(home: Path, upstream) -> Path:
    with Library.open(home) as lib:
        sources.add(lib, file_url(Path(upstream.working_tree_dir)), name="cohortkit")
    return home


@pytest.fixture
def stopper() -> Iterator[list[subprocess.Popen[str]]]:
    procs: list[subprocess.Popen[str]] = []
    yield procs
    for p in procs:
        if p.poll() is None:
            p.kill()
        p.wait(timeout=30)


def test_new_commit_searchable_within_one_interval_and_deletion_retires(
    registered: Path, upstream, stopper
) -> None:
    interval = 3
    proc = start_daemon(registered, "--interval", str(interval), "--timeout", "20", "--workers", "1")
    stopper.append(proc)
    wait_for(lambda: "examples/first_example.py" in titles(registered, "cohort"), 60, "the first pass")
    assert holder_pid(registered) == proc.pid

    commit(upstream, {"examples/survival_median.py": '"""Median survival of a toy cohort."""\n'
                                                    "import statistics\nprint(statistics.median([4, 9, 2]))\n"})
    added = time.monotonic()
    wait_for(lambda: "examples/survival_median.py" in titles(registered, "median survival"),
             interval + 30, "the new example")
    took = time.monotonic() - added
    # one interval of sleep plus one refresh pass (fetch, extract, validate one snippet)
    assert took < interval + 30

    commit(upstream, delete=["examples/first_example.py"])
    wait_for(lambda: "examples/first_example.py" not in titles(registered, "cohort"), interval + 30,
             "the deleted example to retire")
    assert "examples/first_example.py" in titles(registered, "cohort", include_retired=True)

    with Library.open(registered) as lib:
        progress = lib.progress()["daemon"]
        assert progress.pid == proc.pid and progress.cycles >= 2
        assert progress.state in ("idle", "refreshing"), progress
        assert lib.source("cohortkit").state == "ok"
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=60) == 0
    assert holder_pid(registered) is None
    with Library.open(registered) as lib:
        assert lib.progress()["daemon"].state == "stopped"


def test_second_daemon_on_one_library_exits_with_reason(registered: Path, stopper) -> None:
    first = start_daemon(registered, "--interval", "600", "--timeout", "20")
    stopper.append(first)
    wait_for(lambda: holder_pid(registered) == first.pid, 30, "the first daemon's lock")
    second = start_daemon(registered, "--interval", "600")
    stopper.append(second)
    out, err = second.communicate(timeout=60)
    assert second.returncode == 1
    assert f"already running for this library (pid {first.pid})" in err
    assert "Traceback" not in err
    assert first.poll() is None, "the first daemon keeps running"


def test_sigkill_during_refresh_then_restart_is_consistent(registered: Path, upstream, stopper) -> None:
    many = {f"examples/example_{i:02d}.py": f'"""Example {i}."""\nimport time\ntime.sleep(0.5)\nprint({i})\n'
            for i in range(12)}
    commit(upstream, many)
    proc = start_daemon(registered, "--interval", "600", "--timeout", "20", "--workers", "1")
    stopper.append(proc)

    def validating() -> bool:
        with Library.open(registered) as lib:
            st = lib.status().validation
        return st.get("passed", 0) >= 2

    wait_for(validating, 90, "validation under way")
    proc.kill()
    proc.wait(timeout=30)

    with Library.open(registered) as lib:
        assert lib._conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        rows = lib._conn.execute("SELECT id, data FROM snippets").fetchall()
        assert len(rows) == len({r[0] for r in rows}), "no duplicates"
        before = lib.count()
        assert lib.status().validation.get("pending", 0) > 0, "the kill left work to resume"

    assert holder_pid(registered) is None, "a killed daemon leaves no stuck lock"
    again = start_daemon(registered, "--once", "--timeout", "20", "--workers", "2")
    stopper.append(again)
    out, err = again.communicate(timeout=240)
    assert again.returncode == 0, err
    with Library.open(registered) as lib:
        assert lib.count() == before
        st = lib.status().validation
        assert st.get("pending", 0) == 0 and st.get("passed", 0) >= 12
        assert lib._conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        fts = lib._conn.execute("SELECT count(*) FROM snippets_fts").fetchone()[0]
        assert fts == lib.count(include_retired=True), "index and table agree"


def test_jupyter_server_starts_and_stops_the_daemon(registered: Path, tmp_path: Path, stopper) -> None:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    env = {**os.environ, "JUPYTER_RUNTIME_DIR": str(tmp_path / "runtime")}
    server = subprocess.Popen(
        [sys.executable, "-m", "jupyter_server", "--allow-root", "--no-browser", "--ip=127.0.0.1",
         f"--port={port}", "--ServerApp.port_retries=0", f"--ServerApp.root_dir={tmp_path}",
         "--IdentityProvider.token=t0k3n", f"--CodeDistiller.home={registered}",
         "--CodeDistiller.daemon_interval=600"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env, start_new_session=True,
    )
    stopper.append(server)
    wait_for(lambda: "examples/first_example.py" in titles(registered, "cohort"), 90,
             "the server's daemon to distil the source")
    daemon_pid = holder_pid(registered)
    assert daemon_pid and daemon_pid != server.pid
    server.send_signal(signal.SIGTERM)
    server.wait(timeout=60)
    wait_for(lambda: holder_pid(registered) is None, 30, "the daemon to stop with the server")
    with Library.open(registered) as lib:
        assert lib.progress()["daemon"].state == "stopped"


def test_progress_of_a_dead_process_says_so(library: Library) -> None:
    from jupyter_codedistiller.textview import progress_line

    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    library.set_progress("daemon", ProgressEntry(state="refreshing", step="validate", source="lifelines",
                                                 done=3, total=9, pid=int(dead.stdout)))
    library.set_progress("distiller", ProgressEntry(state="refreshing", step="extract", source="scipy",
                                                    done=1, total=4, pid=os.getpid()))
    progress = library.progress()
    assert progress["daemon"].alive is False and progress["distiller"].alive is True
    assert progress_line(progress["daemon"]).startswith("not running (last seen: Validating lifelines: 3 of 9")
    assert progress_line(progress["distiller"]) == "Reading scipy: 1 of 4"
    assert progress_line(ProgressEntry(state="stopped", step="stopped")) == "stopped"


def test_a_pass_publishes_its_source_apart_from_the_detail(registered: Path) -> None:
    """What the daemon publishes during a pass has the shape refresh's own entries have: the
    source in ``source``, what it is at in ``detail`` (they read the same in status and panel)."""
    from jupyter_codedistiller.daemon import Daemon

    with Library.open(registered) as lib:
        published: list[tuple[str, ProgressEntry]] = []
        store = lib.set_progress

        def keep(key: str, entry: ProgressEntry) -> None:
            published.append((key, entry))
            store(key, entry)

        lib.set_progress = keep  # type: ignore[method-assign]  # records, then stores as ever
        Daemon(lib, interval=3600, workers=1, defaults=False).cycle()
        steps = [e for key, e in published if key == "daemon" and e.step in ("fetch", "extract", "validate")]
        assert steps and {e.source for e in steps} == {"cohortkit"}
        assert not any(e.detail.startswith("cohortkit") for e in steps)
        assert lib.progress()["daemon"].step == "sleeping"
