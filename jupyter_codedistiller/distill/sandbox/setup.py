"""The sandbox's setup program: run in the child as ``python -I -S -c <this file> CONFIG RUNNER``.

It builds the namespace's view of the system, sets the resource limits, drops
privileges and execs the runner. Exit code 125 and a "setup-error" event when it
cannot. Standard library only, any Python >= 3.8: it runs under the snippet's
interpreter, not the distiller's, and must not import anything the checkout
could shadow.
"""
# ruff: noqa: UP031, E731

import ctypes
import json
import os
import resource
import socket
import struct
import sys

MS_RDONLY, MS_NOSUID, MS_NODEV, MS_NOEXEC = 1, 2, 4, 8
MS_REMOUNT, MS_BIND, MS_REC, MS_PRIVATE = 32, 4096, 16384, 1 << 18
ATTR_RDONLY, ATTR_NOSUID, ATTR_NODEV = 1, 2, 4
MOUNT_FLAGS = {"nosuid": MS_NOSUID, "nodev": MS_NODEV, "noexec": MS_NOEXEC,
               "noatime": 1024, "nodiratime": 2048, "relatime": 1 << 21}
LIBC = None


def libc():
    global LIBC
    if LIBC is None:
        LIBC = ctypes.CDLL(None, use_errno=True)
        LIBC.syscall.restype = ctypes.c_long
    return LIBC


def check(result, what):
    if result != 0:
        err = ctypes.get_errno()
        raise OSError(err, "%s: %s" % (what, os.strerror(err)))


def mount(source, target, fstype, flags, data=None):
    enc = lambda s: s.encode() if s is not None else None
    check(libc().mount(enc(source), enc(target), enc(fstype), ctypes.c_ulong(flags), enc(data)),
          "mount %s" % target)


class MountAttr(ctypes.Structure):
    _fields_ = [("attr_set", ctypes.c_uint64), ("attr_clr", ctypes.c_uint64),
                ("propagation", ctypes.c_uint64), ("userns_fd", ctypes.c_uint64)]


def mount_options(path):
    flags = 0
    with open("/proc/self/mountinfo") as f:
        for line in f:
            parts = line.split()
            if parts[4] == path:
                flags = 0
                for opt in parts[5].split(","):
                    flags |= MOUNT_FLAGS.get(opt, 0)
    return flags


def open_tree(path):
    """A detached writable clone of the mount at ``path`` (stays writable when / turns read-only),
    closed on exec; None where the kernel has no open_tree (5.2+)."""
    fd = libc().syscall(ctypes.c_long(428), ctypes.c_int(-100), path.encode(),
                        ctypes.c_uint(1 | os.O_CLOEXEC))  # OPEN_TREE_CLONE
    return fd if fd >= 0 else None


def set_readonly(path, readonly, recursive=False):
    attr = MountAttr(ATTR_RDONLY if readonly else 0, 0 if readonly else ATTR_RDONLY, 0, 0)
    r = libc().syscall(ctypes.c_long(442), ctypes.c_int(-100), path.encode(),
                       ctypes.c_uint(0x8000 if recursive else 0), ctypes.byref(attr),
                       ctypes.c_size_t(ctypes.sizeof(attr)))
    if r == 0:
        return
    if ctypes.get_errno() != 38:  # not ENOSYS: a real failure
        check(r, "mount_setattr %s" % path)
    targets = [path]
    if recursive:  # kernels before 5.12: remount every mount below, one by one
        with open("/proc/self/mountinfo") as f:
            points = [line.split()[4] for line in f]
        prefix = path.rstrip("/") + "/"
        targets += [p for p in points if p.startswith(prefix)]
    for target in targets:
        flags = MS_REMOUNT | MS_BIND | mount_options(target) | (MS_RDONLY if readonly else 0)
        mount(None, target, None, flags)


def under(path, top):
    return path == top or path.startswith(top.rstrip("/") + "/")


def bind_from_fd(fd, target, isdir):
    if isdir:
        os.makedirs(target, exist_ok=True)
    else:
        os.makedirs(os.path.dirname(target), exist_ok=True)
        if not os.path.exists(target):
            open(target, "w").close()
    mount("/proc/self/fd/%d" % fd, target, None, MS_BIND | MS_REC)


def build_fs(cfg):
    workdir, keep = cfg["workdir"], [p for p in cfg["keep"] if os.path.exists(p)]
    scratch = [m for m in cfg["scratch"] if os.path.isdir(m) and not os.path.islink(m)]
    homes = [m for m in cfg["homes"] if os.path.isdir(m) and not os.path.islink(m)]
    mount(None, "/", None, MS_REC | MS_PRIVATE)
    fds, isdir = {}, {}
    for p in keep:
        fds[p] = os.open(p, os.O_PATH | os.O_CLOEXEC)
        isdir[p] = os.path.isdir(p)
    contents = {}  # relative path -> bytes (a file) or None (a directory); no link followed
    for root, dirs, files in os.walk(workdir):
        rel = os.path.relpath(root, workdir)
        for name in list(dirs):
            if os.path.islink(os.path.join(root, name)):
                dirs.remove(name)
            else:
                contents[os.path.normpath(os.path.join(rel, name))] = None
        for name in files:
            path = os.path.join(root, name)
            if os.path.isfile(path) and not os.path.islink(path):
                with open(path, "rb") as f:
                    contents[os.path.normpath(os.path.join(rel, name))] = f.read()
    devices = {}
    for name in ("null", "zero", "full", "random", "urandom"):
        if os.path.exists("/dev/" + name):
            devices[name] = os.open("/dev/" + name, os.O_PATH | os.O_CLOEXEC)
    set_readonly("/", True, recursive=True)

    mount("tmpfs", "/dev", "tmpfs", MS_NOSUID | MS_NOEXEC, "mode=755,size=1m")
    for name, fd in devices.items():
        bind_from_fd(fd, "/dev/" + name, False)
    for name, target in (("fd", "/proc/self/fd"), ("stdin", "/proc/self/fd/0"),
                         ("stdout", "/proc/self/fd/1"), ("stderr", "/proc/self/fd/2")):
        os.symlink(target, "/dev/" + name)
    os.mkdir("/dev/shm")
    size = "size=%dm" % cfg["scratch_mb"]
    mount("tmpfs", "/dev/shm", "tmpfs", MS_NOSUID | MS_NODEV, "mode=1777," + size)
    set_readonly("/dev", True)

    for m in scratch:
        if os.path.isdir(m):
            mount("tmpfs", m, "tmpfs", MS_NOSUID | MS_NODEV, "mode=1777," + size)
    for m in homes:
        if os.path.isdir(m):
            mount("tmpfs", m, "tmpfs", MS_NOSUID | MS_NODEV, "mode=755,size=1m")
    for p in keep:
        if any(under(p, m) for m in scratch + homes):
            bind_from_fd(fds[p], p, isdir[p])
            set_readonly(p, True)
    # The working directory becomes a size-limited tmpfs holding copies of what the
    # parent put there (read above, before /tmp was hidden): the host's disk stays safe.
    os.makedirs(workdir, exist_ok=True)
    mount("tmpfs", workdir, "tmpfs", MS_NOSUID | MS_NODEV, "mode=700,size=%dm" % cfg["work_mb"])
    for name, data in sorted(contents.items()):  # a directory before what it holds
        path = os.path.join(workdir, name)
        if data is None:
            os.mkdir(path)
        else:
            with open(path, "wb") as f:
                f.write(data)
    for m in homes:
        set_readonly(m, True)
    for fd in list(fds.values()) + list(devices.values()):
        os.close(fd)


def loopback_up():
    try:
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    except OSError:
        return
    import fcntl
    try:
        req = struct.pack("16sH14s", b"lo", 0, b"")
        flags = struct.unpack("16sH14s", fcntl.ioctl(s, 0x8913, req))[1]
        fcntl.ioctl(s, 0x8914, struct.pack("16sH14s", b"lo", flags | 1, b""))
    except OSError:
        pass
    finally:
        s.close()


def in_new_namespace(kind, host):
    try:
        return os.stat("/proc/self/ns/" + kind).st_ino != host[kind]
    except (OSError, KeyError):
        return False


def capabilities():
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("CapEff:"):
                return int(line.split()[1], 16)
    return 0


def last_capability():
    try:
        with open("/proc/sys/kernel/cap_last_cap") as f:
            return int(f.read())
    except OSError:
        return 63


def drop_capabilities():
    if capabilities() == 0:
        return
    for cap in range(last_capability() + 1):
        libc().prctl(24, cap, 0, 0, 0)  # PR_CAPBSET_DROP
    libc().prctl(47, 4, 0, 0, 0)  # PR_CAP_AMBIENT_CLEAR_ALL
    header = ctypes.create_string_buffer(struct.pack("Ii", 0x20080522, 0))
    data = ctypes.create_string_buffer(24)
    check(libc().capset(header, data), "capset")
    if capabilities() != 0:
        raise OSError("capabilities remain after dropping them")


def keep_only_uid_switching():
    """The warm interpreter's privileges across the exec that starts it: CAP_SETUID/CAP_SETGID (to
    give each child its own throwaway uid) and CAP_CHOWN/CAP_DAC_OVERRIDE/CAP_FOWNER (to prepare
    and remove the children's files), nothing else; a child loses them all at its uid switch."""
    keep = (0, 1, 3, 6, 7)
    for cap in range(last_capability() + 1):
        if cap not in keep:
            libc().prctl(24, cap, 0, 0, 0)  # PR_CAPBSET_DROP
    libc().prctl(47, 4, 0, 0, 0)  # PR_CAP_AMBIENT_CLEAR_ALL
    mask = sum(1 << cap for cap in keep)
    header = ctypes.create_string_buffer(struct.pack("Ii", 0x20080522, 0))
    data = ctypes.create_string_buffer(struct.pack("IIIIII", mask, mask, 0, 0, 0, 0))
    check(libc().capset(header, data), "capset")
    if capabilities() & ~mask:
        raise OSError("capabilities beyond the warm interpreter's remain")


def chown_tree(top, uid):
    for root, dirs, files in os.walk(top):
        for name in dirs + files:
            os.lchown(os.path.join(root, name), uid, uid)
    os.lchown(top, uid, uid)


def cannot_run_as(uid, cfg):
    """What the throwaway uid cannot use (a path), or None when it can run the snippet."""
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            os.close(r)
            os.setgroups([])
            os.setgid(uid)
            os.setuid(uid)
            blocked = None
            if not os.access(cfg["interpreter"], os.X_OK):
                blocked = cfg["interpreter"]
            for p in cfg["keep"]:
                if blocked is None and os.path.exists(p) and not os.access(p, os.R_OK):
                    blocked = p
            if blocked is None and not os.access(cfg["workdir"], os.W_OK | os.X_OK):
                blocked = cfg["workdir"]
            os.write(w, (blocked or "").encode()[:3000])
            os._exit(0)
        except BaseException:
            os._exit(2)
    os.close(w)
    with os.fdopen(r, "rb") as f:
        said = f.read().decode(errors="replace")
    status = os.waitpid(pid, 0)[1]
    if status != 0:
        return "the uid switch itself"
    return said or None


def set_limits(lim, own_uid):
    failed = []
    wanted = [("RLIMIT_AS", lim["memory"]), ("RLIMIT_CPU", lim["cpu"]),
              ("RLIMIT_FSIZE", lim["fsize"]), ("RLIMIT_CORE", 0)]
    if own_uid:  # otherwise it would count every process of the user, not of this run
        wanted.append(("RLIMIT_NPROC", lim["nproc"]))
    for name, value in wanted:
        res = getattr(resource, name, None)
        if res is None:
            failed.append(name)
            continue
        hard_now = resource.getrlimit(res)[1]
        hard = value + 1 if name == "RLIMIT_CPU" else value
        if hard_now != resource.RLIM_INFINITY:
            hard = min(hard, hard_now)
        try:
            resource.setrlimit(res, (min(value, hard), hard))
        except (ValueError, OSError):
            failed.append(name)
    return failed


def init_loop(child, emit, lifeline, ended=None):
    """Reap every child; end with the snippet (calling ``ended()``), or at once if the parent
    process died."""
    import select
    import signal
    wake_r, wake_w = os.pipe()
    os.set_blocking(wake_w, False)
    signal.signal(signal.SIGCHLD, lambda *_: None)
    signal.set_wakeup_fd(wake_w)
    status = None
    while status is None:
        while True:
            try:
                pid, st = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                os._exit(0)
            if pid == 0:
                break
            if pid == child:
                status = st
                break
        if status is not None:
            break
        ready = select.select([lifeline, wake_r], [], [])[0]
        if lifeline in ready and not os.read(lifeline, 1):
            os._exit(137)  # the parent is gone: dying takes the namespace with it
        if wake_r in ready:
            os.read(wake_r, 512)
    if ended is not None:
        ended()
    if os.WIFSIGNALED(status):
        sig = os.WTERMSIG(status)
        emit({"event": "exit", "signal": sig})
        os._exit(128 + sig)
    emit({"event": "exit", "code": os.WEXITSTATUS(status)})
    os._exit(os.WEXITSTATUS(status))


def watchdog(lifeline, report_fd):
    """Without a PID namespace: kill the process group if the parent process dies.

    A grandchild, so that the snippet's own os.wait() never sees it.
    """
    first = os.fork()
    if first:
        os.waitpid(first, 0)
        return
    if os.fork():
        os._exit(0)
    os.chdir("/")  # not one of the processes the parent sweeps out of the working directory
    null = os.open("/dev/null", os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(null, fd)  # hold none of the output pipes open
    os.close(report_fd)
    try:
        os.read(lifeline, 1)
    except OSError:
        pass
    os.killpg(0, 9)
    os._exit(0)


def main():
    cfg = json.loads(sys.argv[1])
    runner = sys.argv[2]
    fd = cfg["report_fd"]
    lifeline = cfg["lifeline"]

    def emit(event):
        try:
            os.write(fd, (json.dumps(event) + "\n").encode())
        except OSError:
            pass

    try:
        # What this program makes (mount points, the working directory's copies) must be usable by
        # the throwaway uid whatever umask the distiller was started with.
        os.umask(0o022)
        features = []
        if in_new_namespace("net", cfg["host_ns"]):
            loopback_up()
            features.append("net")
        if in_new_namespace("pid", cfg["host_ns"]):
            features.append("pid")
        outputs = None
        if cfg["fs"]:  # the snippet's outputs, copied out of its tmpfs when it ends (capture.py)
            outputs = open_tree(cfg["run"]["capture"]["dir"])
            build_fs(cfg)
            features.append("fs")
        os.chdir(cfg["workdir"])
        if os.getpid() == 1:
            # Stay as the namespace's init: reap orphans, report how the snippet ended.
            child = os.fork()
            if child:
                # Not dumpable: the snippet (same uid without a throwaway one) cannot ptrace this
                # process or open its /proc/1/fd, where the report pipe is.
                libc().prctl(4, 0, 0, 0, 0)  # PR_SET_DUMPABLE
                try:
                    drop_capabilities()
                except OSError:
                    pass
                scope = {}
                exec(cfg["run"]["capture"]["copy_out"], scope)
                init_loop(child, emit, lifeline, outputs and (
                    lambda: scope["copy_out"](cfg["run"]["capture"], outputs)))
        elif cfg["watchdog"]:
            watchdog(lifeline, fd)
        os.close(lifeline)
        warm = cfg.get("warm")
        if warm:
            # The warm interpreter: children get their own uids (it keeps only the uid switch).
            if os.geteuid() != 0 or "pid" not in features or "fs" not in features:
                raise OSError("a warm interpreter needs root of its own PID and mount namespaces")
            keep_only_uid_switching()
            libc().prctl(38, 1, 0, 0, 0)  # PR_SET_NO_NEW_PRIVS
            if outputs is not None:
                os.set_inheritable(outputs, True)
                warm["outputs_fd"] = outputs
            emit({"event": "setup", "features": features + ["uid"], "rlimits_failed": []})
            os.set_inheritable(fd, False)
            interpreter = cfg["interpreter"]
            os.execve(interpreter, [interpreter, "-c", warm["program"], json.dumps(warm), runner],
                      warm["env"])
        uid = cfg["uid"]
        if uid is not None and os.geteuid() == 0:
            chown_tree(cfg["workdir"], uid)
            blocked = cannot_run_as(uid, cfg)
            if blocked:
                # Never fall back to root silently: refuse, and say what stood in the way.
                raise OSError("the throwaway uid cannot read %s (made under a restrictive umask?); "
                              "refusing to run the snippet as root" % blocked)
            features.append("uid")
        if os.geteuid() == 0 or capabilities():
            for cap in range(64):
                libc().prctl(24, cap, 0, 0, 0)  # PR_CAPBSET_DROP: no capability after exec
        failed = set_limits(cfg["limits"], "uid" in features)
        if "uid" in features:
            os.setgroups([])
            os.setgid(uid)
            os.setuid(uid)
        else:
            drop_capabilities()
        libc().prctl(38, 1, 0, 0, 0)  # PR_SET_NO_NEW_PRIVS
        emit({"event": "setup", "features": features, "rlimits_failed": failed})
        # The snippet's process holds no descriptor that reaches the record.
        os.set_inheritable(fd, False)
        interpreter = cfg["interpreter"]
        os.execv(interpreter, [interpreter, "-c", runner, json.dumps(cfg["run"])])
    except BaseException as exc:
        emit({"event": "setup-error", "error": "%s: %s" % (type(exc).__name__, exc)})
        os._exit(125)


if __name__ == "__main__":
    main()
