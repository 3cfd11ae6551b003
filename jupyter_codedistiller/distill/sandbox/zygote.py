"""The warm interpreter: exec'd by the setup program inside the isolation, it imports the
installed distributions a batch needs once, then forks one child per snippet.

Run as ``python -I -S -c <this file> CONFIG RUNNER`` by the setup program, as root of
the sandbox's namespaces with no capability but CAP_SETUID/CAP_SETGID (to give each
child its own throwaway uid), no network and a read-only file system. Requests come on
stdin, one JSON line per snippet; results go to stdout, one JSON line each. Each child:
its own session, working directory, uid, limits and timeout; every descriptor but its
own stdin/stdout/stderr closed; default signal handlers; a fresh environment. When it
ends, every process of its uid is killed, its files, ``/tmp``, ``/var/tmp`` and
``/dev/shm`` are emptied, before the next child starts. Standard library only, any
Python >= 3.8 (it runs under the snippet's interpreter).
"""
# ruff: noqa: UP031

import base64
import json
import os
import select
import shutil
import signal
import sys
import time

TAIL = 64000
SCRATCH = ("/tmp", "/var/tmp", "/dev/shm")


def libc():
    import ctypes
    return ctypes.CDLL(None, use_errno=True)


def processes_of(uid):
    """Processes whose real or effective uid is ``uid`` (read from status: a process that made
    itself undumpable still shows its uid there)."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == os.getpid():
            continue
        try:
            with open("/proc/%s/status" % entry) as f:
                fields = dict(line.split(":", 1) for line in f if ":" in line)
        except (OSError, ValueError):
            continue
        if fields.get("State", "").strip().startswith("Z"):
            continue  # a zombie holds no memory and runs nothing; its parent reaps it
        if str(uid) in fields.get("Uid", "").split()[:2]:
            found.append(int(entry))
    return found


def rss_of(pids):
    """Memory of ``pids`` together: proportional set sizes, so pages shared copy-on-write with
    this interpreter (or between them) count once."""
    page = os.sysconf("SC_PAGE_SIZE")
    total = 0
    for pid in pids:
        try:
            with open("/proc/%d/smaps_rollup" % pid) as f:
                for line in f:
                    if line.startswith("Pss:"):
                        total += int(line.split()[1]) * 1024
                        break
            continue
        except (OSError, ValueError, IndexError):
            pass
        try:
            with open("/proc/%d/statm" % pid) as f:
                fields = f.read().split()
            total += (int(fields[1]) - int(fields[2])) * page
        except (OSError, ValueError, IndexError):
            pass
    return total


def kill_uid(uid):
    """Kill every process running as ``uid`` (a helper of that uid may signal them all)."""
    for _ in range(50):
        if not processes_of(uid):
            return
        pid = os.fork()
        if pid == 0:
            try:
                os.setgroups([])
                os.setgid(uid)
                os.setuid(uid)
                os.kill(-1, signal.SIGKILL)
            finally:
                os._exit(0)
        os.waitpid(pid, 0)
        time.sleep(0.01)


def pidfd(pid):
    """A descriptor that becomes readable when ``pid`` ends (Linux >= 5.3, Python >= 3.9), or None."""
    try:
        return os.pidfd_open(pid)
    except (AttributeError, OSError):
        return None


def reap():
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return


def empty(directory):
    try:
        names = os.listdir(directory)
    except OSError:
        return
    for name in names:
        path = os.path.join(directory, name)
        if os.path.isdir(path) and not os.path.islink(path):
            shutil.rmtree(path, ignore_errors=True)
        else:
            try:
                os.unlink(path)
            except OSError:
                pass


def set_limits(lim):
    import resource
    for name, value in (("RLIMIT_AS", lim["memory"]), ("RLIMIT_CPU", lim["cpu"]),
                        ("RLIMIT_FSIZE", lim["fsize"]), ("RLIMIT_CORE", 0),
                        ("RLIMIT_NPROC", lim["nproc"])):
        res = getattr(resource, name, None)
        if res is None:
            continue
        hard = value + 1 if name == "RLIMIT_CPU" else value
        try:
            resource.setrlimit(res, (value, hard))
        except (ValueError, OSError):
            pass


def child(req, env, runner, out_w, err_w):
    """The snippet's process: never returns."""
    status = 1
    try:
        os.setsid()
        null = os.open("/dev/null", os.O_RDONLY)
        os.dup2(null, 0)
        os.dup2(out_w, 1)
        os.dup2(err_w, 2)
        os.closerange(3, 65536)  # no descriptor reaching the pool, the record or another run
        sys.stdin = open(os.devnull)  # noqa: SIM115 - nothing the pool read ahead
        for sig in range(1, signal.NSIG):
            if sig in (signal.SIGKILL, signal.SIGSTOP):
                continue
            try:
                signal.signal(sig, signal.SIG_DFL)
            except (OSError, ValueError, RuntimeError):
                pass
        signal.pthread_sigmask(signal.SIG_SETMASK, [])
        os.environ.clear()
        os.environ.update(env)
        os.chdir(req["workdir"])
        sys.path[1:1] = req["python_path"]  # after the script's directory, as PYTHONPATH is
        set_limits(req["limits"])
        os.setgroups([])
        os.setgid(req["uid"])
        os.setuid(req["uid"])  # from uid 0 to another: every capability goes
        libc().prctl(1, signal.SIGKILL, 0, 0, 0)  # PR_SET_PDEATHSIG
        try:
            status = runner(req["script"], req.get("capture"))
        except SystemExit as exc:
            code = exc.code
            if code is None:
                status = 0
            elif isinstance(code, int):
                status = code
            else:
                print(code, file=sys.stderr)
                status = 1
        try:
            import atexit
            atexit._run_exitfuncs()
        except BaseException:
            pass
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except BaseException:
                pass
    except BaseException as exc:
        try:
            os.write(2, ("sandbox: %s: %s\n" % (type(exc).__name__, exc)).encode())
        except OSError:
            pass
    os._exit(status & 0xFF)


def serve(req, env, runner, outputs_fd):
    """Run one snippet in a fresh child and say how it ended."""
    workdir = req["workdir"]  # the same path for every child (as deep as a cold one), emptied
    empty(workdir)
    os.makedirs(os.path.join(workdir, "tmp"))
    capture = req.get("capture")
    if capture:
        os.makedirs(capture["dir"], exist_ok=True)
    with open(req["script"], "wb") as f:
        f.write(req["code"].encode("utf-8", errors="replace"))
    for root, dirs, files in os.walk(workdir):
        for name in dirs + files:
            os.lchown(os.path.join(root, name), req["uid"], req["uid"])
    os.chown(workdir, req["uid"], req["uid"])
    os.chmod(workdir, 0o700)
    out_r, out_w = os.pipe()
    err_r, err_w = os.pipe()
    started = time.monotonic()
    pid = os.fork()
    if pid == 0:
        os.close(out_r)
        os.close(err_r)
        child(req, env, runner, out_w, err_w)
    os.close(out_w)
    os.close(err_w)
    bufs = {out_r: bytearray(), err_r: bytearray()}
    open_fds = [out_r, err_r]
    ended_fd = pidfd(pid)  # readable the moment the child ends: no polling delay
    deadline = started + req["timeout"]
    status, timed_out, memory = None, False, False
    next_check = started + 0.05  # the first snippets' share of a tree check is not worth a scan
    while status is None:
        now = time.monotonic()
        if now >= deadline:
            timed_out = True
            break
        if now >= next_check:  # the bound over the whole tree: every process of this uid
            next_check = now + 0.2
            if rss_of(processes_of(req["uid"])) > req["tree_memory"]:
                memory = True
                break
        wait = max(0.0, min(deadline, next_check) - now)
        if ended_fd is None:
            wait = min(wait, 0.05)
        watched = open_fds + ([ended_fd] if ended_fd is not None else [])
        ready = select.select(watched, [], [], wait)[0] if watched else time.sleep(wait) or []
        for fd in ready:
            if fd == ended_fd:
                continue
            data = os.read(fd, 1 << 16)
            if not data:
                open_fds.remove(fd)
                continue
            buf = bufs[fd]
            buf += data
            if len(buf) > 2 * TAIL:
                del buf[:-TAIL]
        done, st = os.waitpid(pid, os.WNOHANG)
        if done:
            status = st
    ended = time.monotonic()
    if ended_fd is not None:
        os.close(ended_fd)
    if status is None:
        kill_uid(req["uid"])  # the child and all it started (no CAP_KILL here: as its own uid)
        status = os.waitpid(pid, 0)[1]
    kill_uid(req["uid"])
    reap()
    for fd in open_fds:  # whatever the killed processes left in the pipes
        while True:
            try:
                r = select.select([fd], [], [], 0)[0]
                data = os.read(fd, 1 << 16) if r else b""
            except OSError:
                data = b""
            if not data:
                break
            bufs[fd] += data
            if len(bufs[fd]) > 2 * TAIL:
                del bufs[fd][:-TAIL]
    os.close(out_r)
    os.close(err_r)
    if capture and outputs_fd is not None:
        # Capture's copy-out, into a host directory of this run, by name, no link followed.
        name = str(req["n"])
        os.mkdir(name, 0o700, dir_fd=outputs_fd)
        sub = os.open(name, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW, dir_fd=outputs_fd)
        try:
            scope = {}
            exec(capture["copy_out"], scope)
            scope["copy_out"](capture, sub)
        except Exception:
            pass
        finally:
            os.close(sub)
    empty(workdir)
    os.chown(workdir, 0, 0)
    for d in SCRATCH:
        empty(d)
    result = {"n": req["n"], "timed_out": timed_out, "memory": memory,
              "duration": round(ended - started, 3),
              "stdout": base64.b64encode(bytes(bufs[out_r][-TAIL:])).decode(),
              "stderr": base64.b64encode(bytes(bufs[err_r][-TAIL:])).decode()}
    if os.WIFSIGNALED(status):
        result["signal"] = os.WTERMSIG(status)
    else:
        result["code"] = os.WEXITSTATUS(status)
    return result


def main():
    cfg = json.loads(sys.argv[1])
    runner_scope = {"__name__": "codedistiller_runner"}
    exec(compile(sys.argv[2], "<string>", "exec"), runner_scope)
    runner = runner_scope["run_script"]
    libc().prctl(4, 0, 0, 0, 0)  # PR_SET_DUMPABLE: no child may ptrace this process
    probe = os.fork()
    if probe == 0:  # can this process give a child its own uid? (else: no warm pool at all)
        try:
            os.setgroups([])
            os.setgid(cfg["probe_uid"])
            os.setuid(cfg["probe_uid"])
            os._exit(0)
        except BaseException:
            os._exit(1)
    if os.waitpid(probe, 0)[1] != 0:
        sys.stdout.write(json.dumps({"ready": False, "error": "cannot give a child its own uid"}) + "\n")
        sys.stdout.flush()
        return
    out = os.fdopen(os.dup(1), "w")
    null = os.open("/dev/null", os.O_WRONLY)
    os.dup2(null, 1)  # nothing an import prints can corrupt the result channel
    failed = {}
    for name in cfg["modules"]:
        try:
            __import__(name)
        except ModuleNotFoundError as exc:
            missing = exc.name or ""
            if "." in name and (name == missing or name.startswith(missing + ".")):
                continue  # a name imported from a module, or a submodule that is not there: as cold
            failed[name] = ("%s: %s" % (type(exc).__name__, exc))[:300]
        except BaseException as exc:
            failed[name] = ("%s: %s" % (type(exc).__name__, exc))[:300]
    import gc
    gc.collect()
    gc.freeze()  # what warm-up made is never scanned (so never copied) by a child's collector
    out.write(json.dumps({"ready": True, "failed": failed}) + "\n")
    out.flush()
    outputs_fd = cfg.get("outputs_fd")
    env = cfg.get("child_env") or cfg["env"]
    for line in sys.stdin:
        req = json.loads(line)
        run_env = dict(env, HOME=req["workdir"], TMPDIR=os.path.join(req["workdir"], "tmp"))
        run_env.pop("PYTHONPATH", None)
        if req["python_path"]:  # the snippet's own path, for what it starts too
            run_env["PYTHONPATH"] = os.pathsep.join(req["python_path"])
        try:
            result = serve(req, run_env, runner, outputs_fd)
        except Exception as exc:
            result = {"n": req.get("n"), "error": "%s: %s" % (type(exc).__name__, exc)}
        out.write(json.dumps(result) + "\n")
        out.flush()


if __name__ == "__main__":
    main()
