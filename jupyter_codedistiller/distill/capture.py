"""What a snippet shows when it runs: its figures and the repr of its results.

Two halves that never share a descriptor:

- ``CHILD`` is source text the sandbox's runner executes in the snippet's own
  process before the snippet runs (``install(cfg)``). Matplotlib stays on the
  non-interactive Agg backend the sandbox sets; ``pyplot.show()`` also saves
  the open figures (an import hook wraps it), and capture saves
  whatever is still open when the snippet ends, and writes the repr of the
  snippet's final expression and of each ``display()``ed object, all as plain
  files in ``DIRNAME`` inside the snippet's working directory. It is as
  untrusted as the snippet: the snippet may replace, forge or bloat any of it.
  Where that directory is a tmpfs private to the snippet's namespaces, the
  namespace's init copies those files out when the snippet ends (``COPY_OUT``).
- ``collect(directory)``, run by the trusted supervisor after the child ended
  and before its working directory is removed, reads back at most
  ``MAX_FIGURES`` figures and ``MAX_TEXTS`` texts by fixed names, each refused
  above its size cap by ``fstat`` before a byte is read (never following a
  link, never opening anything but a regular file), checks every PNG chunk by
  chunk (signature, CRCs, IHDR sane, image data inflating to exactly the size
  the header promises) and rewrites it with only its image chunks, and caps
  text. What it returns is data: nothing in those files is parsed as control.
"""

from __future__ import annotations

import hashlib
import os
import stat
from collections.abc import Mapping
from dataclasses import dataclass

from ..figures import MAX_FIGURE_BYTES, BadPNG, check_png, hold
from ..model import Output, Validation

__all__ = ["CHILD", "COPY_OUT", "DIRNAME", "Captured", "attach", "collect", "names", "settings"]

DIRNAME = ".codedistiller-outputs"
MAX_FIGURES = 4
MAX_TEXTS = 4
MAX_TEXT_CHARS = 4000
DPI = 100



def names() -> list[str]:
    """Every file name ``collect`` reads, in order (nothing else in the directory is looked at)."""
    return ([f"figure-{n}.png" for n in range(1, MAX_FIGURES + 1)] + ["figures-drawn.txt", "result.txt"]
            + [f"display-{n}.txt" for n in range(1, MAX_TEXTS + 1)])


def settings(workdir: str) -> dict:
    """The runner's configuration for ``CHILD``'s ``install``: where to write, the caps."""
    return {"dir": os.path.join(workdir, DIRNAME), "max_figures": MAX_FIGURES,
            "max_bytes": MAX_FIGURE_BYTES, "max_texts": MAX_TEXTS,
            "max_chars": MAX_TEXT_CHARS, "dpi": DPI, "source": CHILD,
            "names": names(), "cap": MAX_FIGURE_BYTES, "copy_out": COPY_OUT}


# Run by the sandbox's setup program as the namespace's init after the snippet ended, when
# the snippet's working directory is a tmpfs the supervisor cannot see: copies the files
# ``collect`` reads (by name, no link followed, regular files only, at most cap + 1 bytes
# each, so an oversized one still shows as oversized) into the host directory ``dst_fd``,
# opened before the snippet started and closed on exec, so the snippet never holds it.
COPY_OUT = r'''
def copy_out(cfg, dst_fd):
    import os, stat
    try:
        src = os.open(cfg["dir"], os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError:
        return
    try:
        for name in cfg["names"]:
            try:
                fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC,
                             dir_fd=src)
            except OSError:
                continue
            try:
                st = os.fstat(fd)
                if not stat.S_ISREG(st.st_mode) or st.st_nlink != 1:
                    continue
                data, left = b"", cfg["cap"] + 1
                while left > 0:
                    chunk = os.read(fd, min(left, 1 << 16))
                    if not chunk:
                        break
                    data += chunk
                    left -= len(chunk)
            finally:
                os.close(fd)
            out = os.open(name, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC,
                          0o600, dir_fd=dst_fd)
            try:
                os.write(out, data)
            finally:
                os.close(out)
    except OSError:
        pass
    finally:
        os.close(src)
'''


# ------------------------------------------------------------------ in the snippet's process

CHILD = r'''
import ast, builtins, os, sys


def install(cfg):
    """Set up capture in this (the snippet's) process; returns run(source, filename, namespace)."""
    out = cfg["dir"]
    os.makedirs(out, exist_ok=True)
    try:  # let the namespace's init (another uid, no capabilities) copy the files out
        os.chmod(os.path.dirname(out), 0o711)
        os.chmod(out, 0o755)
        os.umask(0o022)
    except OSError:
        pass
    state = {"saved": [], "drawn": 0, "texts": 0}

    def save_figures():
        helpers = sys.modules.get("matplotlib._pylab_helpers")
        if helpers is None:
            return
        try:
            figures = [m.canvas.figure for m in helpers.Gcf.get_all_fig_managers()]
        except Exception:
            return
        for fig in figures:
            if any(fig is f for f in state["saved"]):
                continue
            state["saved"].append(fig)
            state["drawn"] += 1
            if state["drawn"] > cfg["max_figures"]:
                continue
            path = os.path.join(out, "figure-%d.png" % state["drawn"])
            for dpi in (cfg["dpi"], 72, 50):
                try:
                    fig.savefig(path, format="png", dpi=dpi, metadata={"Software": None})
                    if os.path.getsize(path) <= cfg["max_bytes"]:
                        break
                except Exception:
                    pass
            else:
                try:
                    os.unlink(path)
                except OSError:
                    pass
        try:
            with open(os.path.join(out, "figures-drawn.txt"), "w") as f:
                f.write(str(state["drawn"]))
        except OSError:
            pass

    class ShowHook:  # matplotlib stays on Agg (MPLBACKEND); pyplot.show() also saves the figures
        @staticmethod
        def find_spec(name, path=None, target=None):
            if name != "matplotlib.pyplot":
                return None
            import importlib.machinery
            spec = importlib.machinery.PathFinder.find_spec(name, path)
            if spec is None or spec.loader is None or not hasattr(spec.loader, "exec_module"):
                return spec
            real = spec.loader.exec_module

            def exec_module(module):
                real(module)
                original = module.show

                def show(*args, **kwargs):
                    save_figures()
                    return original(*args, **kwargs)

                module.show = show

            spec.loader.exec_module = exec_module
            return spec

    sys.meta_path.insert(0, ShowHook)

    def as_text(obj):
        text = repr(obj)
        if text.startswith("<") and " at 0x" in text and hasattr(obj, "_repr_html_"):
            try:
                import html.parser
                parts = []
                parser = html.parser.HTMLParser()
                parser.handle_data = parts.append
                parser.feed(str(obj._repr_html_())[: cfg["max_chars"] * 4])
                text = " ".join(" ".join(parts).split()) or text
            except Exception:
                pass
        return text

    def keep(obj, name):
        if state["texts"] >= cfg["max_texts"]:
            return
        state["texts"] += 1
        try:
            text = as_text(obj)
        except Exception as exc:
            text = "<repr failed: %s>" % type(exc).__name__
        try:
            with open(os.path.join(out, name), "w", encoding="utf-8", errors="replace") as f:
                f.write(text[: cfg["max_chars"] + 1])
        except OSError:
            pass

    shown = getattr(builtins, "display", None)

    def display(*objs, **kwargs):
        for obj in objs:
            keep(obj, "display-%d.txt" % (state["texts"] + 1))
        if shown is not None:
            shown(*objs, **kwargs)

    builtins.display = display

    def run(source, filename, namespace):
        try:
            tree = ast.parse(source, filename)
            last = tree.body[-1] if tree.body and isinstance(tree.body[-1], ast.Expr) else None
            if last is not None:
                tree.body.pop()
            exec(compile(tree, filename, "exec", dont_inherit=True), namespace)
            if last is not None:
                value = eval(compile(ast.Expression(last.value), filename, "eval",
                                     dont_inherit=True), namespace)
                if value is not None:
                    keep(value, "result.txt")
        finally:
            save_figures()

    return run
'''


# ------------------------------------------------------------------ in the supervisor

@dataclass
class Captured:
    """One output read back from a finished run; ``data`` holds a figure's checked PNG."""

    output: Output
    data: bytes | None = None


def _read_capped(dir_fd: int, name: str, cap: int) -> bytes | str:
    """The bytes of regular file ``name`` if at most ``cap`` long; else why not (text)."""
    try:
        fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC,
                     dir_fd=dir_fd)
    except OSError:
        return "not a readable file"
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode) or st.st_nlink != 1:
            return "not a regular file"
        if st.st_size > cap:
            return f"{st.st_size:,} bytes, over the {cap:,}-byte limit"
        chunks, left = [], cap + 1
        while left > 0:
            chunk = os.read(fd, min(left, 1 << 16))
            if not chunk:
                break
            chunks.append(chunk)
            left -= len(chunk)
        data = b"".join(chunks)
        if len(data) > cap:
            return f"over the {cap:,}-byte limit"
        return data
    finally:
        os.close(fd)


def fetch(directory: str, names: Mapping[str, int]) -> dict[str, bytes]:
    """The regular files ``names`` (name -> most bytes) a finished run left in ``directory``,
    each read as ``collect`` reads outputs (no link followed); one missing or over its limit is left out."""
    try:
        dir_fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError:
        return {}
    try:
        got = {name: _read_capped(dir_fd, name, most) for name, most in names.items()}
    finally:
        os.close(dir_fd)
    return {name: data for name, data in got.items() if isinstance(data, bytes)}


def _text(data: bytes, label: str) -> Output:
    text = data.decode("utf-8", errors="replace")
    truncated = len(text) > MAX_TEXT_CHARS
    return Output(kind="text", label=label, text=text[:MAX_TEXT_CHARS], truncated=truncated)


def collect(directory: str) -> list[Captured]:
    """The outputs a finished run left in ``directory`` (see the module docstring); never raises
    for anything the run did, and returns [] when there is nothing (or no such directory)."""
    try:
        dir_fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError:
        return []
    found: list[Captured] = []
    notes: list[str] = []
    try:
        for n in range(1, MAX_FIGURES + 1):
            name = f"figure-{n}.png"
            got = _read_capped(dir_fd, name, MAX_FIGURE_BYTES)
            if got == "not a readable file":
                continue
            if isinstance(got, str):
                notes.append(f"figure {n} not kept: {got}")
                continue
            try:
                png, width, height = check_png(got)
            except BadPNG as exc:
                notes.append(f"figure {n} not kept: {exc}")
                continue
            found.append(Captured(Output(kind="figure", label=f"Figure {n}",
                                         sha256=hashlib.sha256(png).hexdigest(), size=len(png),
                                         width=width, height=height), png))
        drawn = _read_capped(dir_fd, "figures-drawn.txt", 16)
        if isinstance(drawn, bytes) and drawn.strip().isdigit() and int(drawn) > MAX_FIGURES:
            notes.append(f"drew {int(drawn):,} figures; the first {MAX_FIGURES} are kept")
        texts = ["result.txt"] + [f"display-{n}.txt" for n in range(1, MAX_TEXTS + 1)]
        kept = 0
        for name in texts:
            if kept >= MAX_TEXTS:
                break
            got = _read_capped(dir_fd, name, MAX_TEXT_CHARS * 4 + 4)
            if isinstance(got, bytes):
                label = "Result" if name == "result.txt" else "Displayed"
                found.append(Captured(_text(got, label)))
                kept += 1
    finally:
        os.close(dir_fd)
    found += [Captured(Output(kind="note", text=note)) for note in notes]
    return found


def attach(validation: Validation, captured: list[Captured]) -> Validation:
    """Put ``captured`` on ``validation``: records in ``outputs``, PNG bytes held beside them
    (not in the JSON) for the library to store when it records the validation."""
    validation.outputs = [c.output for c in captured]
    return hold(validation, {c.output.sha256: c.data for c in captured
                             if c.data is not None and c.output.sha256})
