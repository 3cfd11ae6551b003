"""Fault tolerance: many writers at once, and SIGKILL in the middle of a refresh.

The short versions of ``benchmarks/reliability.py``: 10 s of four users
against the background distiller (then as long as it takes, within a generous
bound, for the daemon to finish a cycle that writes: on two busy cores a cycle
can outlast the users), 8 kills of ``codedistiller refresh``. The
scenarios themselves are in ``scenarios.py``; these tests assert what must
hold, the benchmark prints the same measurements over longer runs.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from .scenarios import concurrency, crash

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="reads /proc; the sandbox targets Linux")


def test_four_users_and_the_daemon_lose_nothing_and_see_no_error(tmp_path: Path) -> None:
    run = concurrency(tmp_path, seconds=10)
    totals = run.totals()
    assert run.worker_exit == [0, 0, 0, 0], run.worker_stderr
    assert run.worker_stderr == ["", "", "", ""]  # no traceback, no warning, nothing
    assert run.errors == []  # no "database is locked", no refusal of any kind
    assert totals["flag"] > 0 and totals["review"] > 0 and totals["search"] > 0
    assert {k: v for k, v in run.lost.items() if v} == {}  # every reported write is stored
    assert {k: v for k, v in run.phantom.items() if v} == {}  # and nothing unreported is
    assert run.daemon_exit == 0 and run.daemon_cycles >= 1
    assert "Traceback" not in run.daemon_output and "locked" not in run.daemon_output
    assert run.run_errors == []
    assert run.revisions_written > 0 and run.commits > 0  # the daemon did write meanwhile
    assert run.problems == []


def test_sigkill_at_random_points_leaves_a_whole_library_and_a_restart_converges(tmp_path: Path) -> None:
    run = crash(tmp_path, kills=8)
    for n, kill in enumerate(run.kills):
        assert kill.problems == [], (n, kill)
        assert kill.consistent, (n, kill)  # exactly the snippets of the commit it says it is at
        assert kill.stray == [], (n, kill)  # the sandboxes died with the refresh
    assert any(k.stage != "finished" for k in run.kills)
    assert run.final_exit == 0, run.final_output
    assert run.final_problems == []
    assert run.final_consistent and run.final_pending == 0
    assert run.same_as_uninterrupted, run.difference  # same ids, code digests and outcomes
    assert run.leftover_workdirs == []


def test_git_locks_left_by_a_killed_refresh_do_not_wedge_the_source(tmp_path: Path) -> None:
    """A SIGKILL of the refresh's process group during ``git fetch`` leaves ``shallow.lock``
    (found by the long crash benchmark): every later fetch failed until someone deleted it."""
    import subprocess

    from jupyter_codedistiller.distill import sources
    from jupyter_codedistiller.distill.refresh import refresh
    from jupyter_codedistiller.library import Library

    from .scenarios import Upstream

    upstream = Upstream(tmp_path / "upstream", files=3, seed=0)
    with Library.open(tmp_path / "home") as lib:
        src = sources.add(lib, upstream.url, name="cohorts")
        assert refresh(lib, validate=False).errors == {}
        checkout = Path(src.location)
        stale = [checkout / ".git" / name for name in ("shallow.lock", "index.lock", "HEAD.lock")]
        stale.append(checkout / ".git" / "refs" / "remotes" / "origin" / "main.lock")
        for lock in stale:  # exactly what a killed git leaves: empty or half-written lock files
            lock.parent.mkdir(parents=True, exist_ok=True)
            lock.write_text("")
        # While a git that outlived the refresh still works in the checkout, its locks are its own.
        survivor = subprocess.Popen(["sleep", "30"], cwd=checkout)
        try:
            assert sources.clear_stale_locks(checkout, wait=0.5) == []
            assert all(lock.exists() for lock in stale)
        finally:
            survivor.kill()
            survivor.wait()
        upstream.change(edits=1)
        report = refresh(lib, validate=False)
        assert report.errors == {}, report.errors
        assert lib.source("cohorts").last_commit == upstream.commits[-1]
        assert not any(lock.exists() for lock in stale)
