"""Reliability figures for docs/reliability.md: the long versions of tests/hostile.

Four parts, each printed as Markdown ready for the doc:

- hostile: the hostile repository (tests/hostile/repos.py) distilled ROUNDS
  times with the real refresh and sandbox; per attack, how often it was
  contained and recorded;
- concurrency: the background distiller (``codedistiller daemon``) on a
  repository that gets a commit a second, while four users (two through the
  CLI, two through the magic in an IPython shell) search, flag and review for
  SECONDS; every write a user was told succeeded is looked up in the library;
- crash: ``codedistiller refresh`` SIGKILLed KILLS times at random moments
  (every other time with its whole process group, git included), the library
  checked after every kill, then one refresh let finish and compared with an
  uninterrupted one;
- interfaces: the bad-input cases of tests/hostile/test_bad_commands.py and
  tests/server/test_hostile_api.py, run through pytest, counted;
- linear: extraction time of one README line of 1, 10 and 100 MB shaped to
  make a backtracking pattern quadratic (heading, fence, directive) and of
  chained Markdown blocks (1,500 and 15,000), beside decoding and splitting the
  same bytes and the old heading pattern on 10 and 20 KB lines (same run).

Runs in temporary folders; touches nothing else. The defaults are the
figures in the doc (about 10 minutes on 2 cores):

    .venv/bin/python benchmarks/reliability.py [--rounds 10] [--timeout 6] [--print-mb 3072]
        [--seconds 120] [--kills 200] [--only hostile,concurrency,crash,interfaces,linear]
"""

from __future__ import annotations

import argparse
import os
import platform
import re
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from jupyter_codedistiller.distill.sandbox import SandboxSettings, isolation_available  # noqa: E402
from tests.hostile.scenarios import concurrency, crash, hostile, verdicts  # noqa: E402


def machine() -> str:
    cpu = "unknown CPU"
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    memory = ""
    try:
        with open("/proc/meminfo") as f:
            kib = int(next(line.split()[1] for line in f if line.startswith("MemTotal")))
        memory = f", {kib / 1024 / 1024:.0f} GB RAM"
    except (OSError, StopIteration, ValueError):
        pass
    return f"{os.cpu_count()} cores ({cpu}){memory}, {platform.system()} {platform.release()}"


def commit() -> str:
    try:
        head = subprocess.run(["git", "rev-parse", "--short=12", "HEAD"], cwd=ROOT, capture_output=True,
                              text=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=ROOT,
                               capture_output=True, text=True).stdout.strip()
        return head + (" + uncommitted changes" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def part_hostile(rounds: int, timeout: float, print_mb: int) -> None:
    print(f"\n## Hostile repositories ({rounds} rounds)\n")
    settings = SandboxSettings(timeout=timeout, memory_mb=256)
    held: Counter[str] = Counter()
    failures: dict[str, list[str]] = {}
    seconds, growth, forked = [], [], []
    for n in range(rounds):
        with tempfile.TemporaryDirectory(prefix="reliability-hostile-") as tmp:
            run = hostile(Path(tmp), settings, print_mb)
            try:
                for case, why in verdicts(run).items():
                    if why is None:
                        held[case] += 1
                    else:
                        failures.setdefault(case, []).append(why)
                        held[case] += 0
                seconds.append(run.seconds)
                if run.peak_growth_kib is not None:
                    growth.append(run.peak_growth_kib / 1024)
                bomb = run.snippets["examples/fork_bomb.py"].validation.stdout_tail.split()
                if len(bomb) == 2:
                    forked.append(int(bomb[1]))
                isolation = run.snippets["examples/good_example.py"].validation.isolation
            finally:
                run.setup.close()
        print(f"round {n + 1}: refresh {run.seconds:.1f} s", file=sys.stderr)
    print(f"sandbox isolation: `{isolation}`; limits {timeout:g} s wall clock, 256 MB memory, "
          f"{settings.max_processes} processes\n")
    print("| attack or bad file | contained and recorded |")
    print("|---|---|")
    for case in held:
        print(f"| {case} | {held[case]}/{rounds} |")
    print(f"\nrefresh of the hostile and an ordinary repository: median {statistics.median(seconds):.1f} s, "
          f"max {max(seconds):.1f} s")
    if growth:
        print(f"peak memory growth of the refreshing process ({print_mb:,} MB of output printed by one "
              f"example): max {max(growth):.1f} MB")
    if forked:
        print(f"fork bomb: at most {max(forked)} processes started (of 1,024 tried), none left afterwards")
    for case, whys in failures.items():
        print(f"- NOT HELD: {case}: {whys[:3]}")


def part_concurrency(seconds: float) -> None:
    print(f"\n## Concurrency ({seconds:g} s, 4 users + the daemon)\n")
    with tempfile.TemporaryDirectory(prefix="reliability-concurrency-") as tmp:
        run = concurrency(Path(tmp), seconds)
    totals = run.totals()
    ops = sum(totals.values())
    lost = sum(len(v) for v in run.lost.values())
    phantom = sum(len(v) for v in run.phantom.values())
    worst = max((max(w["latency_max"].values()) for w in run.workers), default=0.0)
    means = {op: sum(w["latency_sum"][op] for w in run.workers) / max(totals[op], 1) for op in totals}
    print("| figure | value |")
    print("|---|---|")
    print(f"| operations reported done by the users | {ops} ({totals['search']} searches, "
          f"{totals['flag']} flags, {totals['review']} reviews), {ops / seconds:.0f}/s |")
    print(f"| flags and reviews reported done but not in the library (lost writes) | {lost} |")
    print(f"| flags and reviews in the library never reported (phantom writes) | {phantom} |")
    print(f"| errors shown to a user (non-zero exit, stderr, UsageError, traceback) | {len(run.errors)} |")
    print(f"| users' processes: exit codes / stderr | {run.worker_exit} / "
          f"{sum(len(e) for e in run.worker_stderr)} bytes |")
    print(f"| mean latency: search / flag / review | {means['search'] * 1000:.0f} / "
          f"{means['flag'] * 1000:.0f} / {means['review'] * 1000:.0f} ms |")
    print(f"| slowest single operation | {worst * 1000:.0f} ms |")
    print(f"| upstream commits during the run | {run.commits} |")
    print(f"| daemon passes completed / refresh runs recorded | {run.daemon_cycles} / {run.runs} |")
    print(f"| snippets added or updated by the daemon meanwhile | {run.revisions_written} |")
    print(f"| failed runs; daemon output with 'Traceback' or 'locked' | {len(run.run_errors)}; "
          f"{int('Traceback' in run.daemon_output or 'locked' in run.daemon_output)} |")
    print(f"| library problems afterwards (integrity, index, records) | {len(run.problems)} |")


def part_crash(kills: int) -> None:
    print(f"\n## Crash consistency ({kills} SIGKILLs)\n")
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="reliability-crash-") as tmp:
        run = crash(Path(tmp), kills)
    interrupted = [k for k in run.kills if k.stage != "finished"]
    print("| figure | value |")
    print("|---|---|")
    print(f"| kills | {kills} ({sum(k.group for k in run.kills)} of the whole process group), "
          f"delay uniform in 0-{run.calibration:.2f} s (one uninterrupted refresh) |")
    stages = ", ".join(f"{stage} {n}" for stage, n in run.stages().most_common())
    print(f"| where the refresh was when killed | {stages} |")
    print(f"| `PRAGMA integrity_check` and FTS5 integrity-check ok after the kill | "
          f"{sum(not k.problems for k in run.kills)}/{kills} |")
    print(f"| library holds exactly the snippets of the commit it records (no partial refresh) | "
          f"{sum(k.consistent for k in run.kills)}/{kills} |")
    print(f"| sandbox processes alive 5 s after the kill | {sum(len(k.stray) for k in run.kills)} |")
    print(f"| snippets left pending by a kill (validated by the next refresh) | "
          f"max {max((k.pending for k in run.kills), default=0)} |")
    print(f"| final refresh: exit code, library problems, snippets still pending | {run.final_exit}, "
          f"{len(run.final_problems)}, {run.final_pending} |")
    print(f"| final library == uninterrupted run (ids, code digests, validation outcomes; "
          f"{run.snippets} snippets) | {'yes' if run.same_as_uninterrupted else 'NO ' + run.difference} |")
    print(f"| sandbox working directories left behind | {len(run.leftover_workdirs)} |")
    if run.final_exit:
        print(f"\nfinal refresh said: {run.final_output.strip().splitlines()[-1:]}")
    print(f"\n{len(interrupted)} of {kills} kills landed while the refresh was running "
          f"({time.monotonic() - started:.0f} s in all)")


def part_interfaces() -> None:
    print("\n## Bad input through every interface\n")
    for target in ("tests/hostile/test_bad_commands.py", "tests/server/test_hostile_api.py"):
        done = subprocess.run([sys.executable, "-m", "pytest", target, "-q", "-p", "no:cacheprovider"],
                              cwd=ROOT, capture_output=True, text=True)
        summary = done.stdout.strip().splitlines()[-1] if done.stdout.strip() else done.stderr[-300:]
        counts = re.findall(r"(\d+) (passed|failed|error)", summary)
        print(f"- `{target}`: {', '.join(f'{n} {w}' for n, w in counts) or summary}")


def _extracted(path: str, data: bytes) -> tuple[float, object]:
    from jupyter_codedistiller.distill import extract

    started = time.perf_counter()
    result = extract.extract_file(path, data, seconds=3600)
    return time.perf_counter() - started, result


def part_linear(sizes_mb: list[int]) -> None:
    from jupyter_codedistiller.distill import extract
    from tests.hostile.test_linear_extraction import chained_blocks

    print("\n## Linear extraction (issue 16, item 5)\n")
    extract.MAX_FILE_BYTES = 1 << 40  # measure the parser itself, past the 1 MB file limit
    shapes = {
        "ATX heading `# x<spaces>y`": ("README.md", lambda n: "# x" + " " * n + "y\n"),
        "fence info string ```` ```x<spaces>y ````": ("README.md", lambda n: "```x" + " " * n + "y\n```\n"),
        "reST directive `.. code-block:: x<spaces>y`": ("docs/a.rst",
                                                         lambda n: ".. code-block:: x" + " " * n + "y\n"),
    }
    print("| input | " + " | ".join(f"{mb} MB" for mb in sizes_mb) + " |")
    print("|---|" + "---|" * len(sizes_mb))
    for name, (path, make) in shapes.items():
        cells = []
        for mb in sizes_mb:
            seconds, result = _extracted(path, make(mb * 1_000_000).encode())
            assert result.complete, result.problems
            cells.append(f"{seconds:.2f} s")
            del result
        print(f"| {name} | " + " | ".join(cells) + " |")
    cells = []
    for mb in sizes_mb:
        data = (" " * (mb * 1_000_000) + "\n").encode()
        started = time.perf_counter()
        data.decode("utf-8").split("\n")
        cells.append(f"{time.perf_counter() - started:.2f} s")
        del data
    print("| reference: decode and split the same bytes | " + " | ".join(cells) + " |")
    old = re.compile(r"^ {0,3}(#{1,6})\s+(.*?)(?:\s+#+)?\s*$")  # the heading pattern before the fix
    small = {}
    for n in (5_000, 10_000):
        line = "# x" + " " * n + "y"
        started = time.perf_counter()
        old.match(line)
        small[n] = time.perf_counter() - started
    print(f"\nreference, the old heading pattern on one line: 5 KB {small[5_000]:.2f} s, 10 KB "
          f"{small[10_000]:.2f} s (x{small[10_000] / max(small[5_000], 1e-9):.1f} for twice the size: "
          f"quadratic, so 900 KB is about {small[10_000] * (900 / 10) ** 2 / 3600:.1f} h)\n")
    print("| chained Markdown blocks (each uses the one before) | extraction | candidates | "
          "skipped: needs too much context |")
    print("|---|---|---|---|")
    for n in (1_500, 15_000):
        seconds, result = _extracted("README.md", chained_blocks(n).encode())
        found = result.candidates
        print(f"| {n:,} | {seconds:.2f} s | {len(found):,} | "
              f"{sum(1 for c in found if c.skipped):,} |")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--rounds", type=int, default=10, help="hostile-repository rounds (default 10)")
    p.add_argument("--timeout", type=float, default=6, help="sandbox wall clock per example (default 6 s)")
    p.add_argument("--print-mb", type=int, default=3072, help="output of the printing example (3072 MB)")
    p.add_argument("--seconds", type=float, default=120, help="concurrency run length (default 120)")
    p.add_argument("--kills", type=int, default=200, help="SIGKILLs of a refresh (default 200)")
    p.add_argument("--only", default="hostile,concurrency,crash,interfaces,linear", help="parts to run")
    p.add_argument("--line-mb", default="1,10,100", help="line sizes of the linear part (MB)")
    args = p.parse_args()
    parts = {x.strip() for x in args.only.split(",")}
    print(f"# reliability figures\n\n{datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC; {machine()}; "
          f"Python {platform.python_version()}; commit {commit()}; sandbox `{isolation_available()}`")
    print("command: `.venv/bin/python benchmarks/reliability.py " + " ".join(sys.argv[1:]) + "`")
    if "hostile" in parts:
        part_hostile(args.rounds, args.timeout, args.print_mb)
    if "concurrency" in parts:
        part_concurrency(args.seconds)
    if "crash" in parts:
        part_crash(args.kills)
    if "interfaces" in parts:
        part_interfaces()
    if "linear" in parts:
        part_linear([int(x) for x in args.line_mb.split(",")])


if __name__ == "__main__":
    main()
