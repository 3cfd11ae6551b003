"""The sandbox's runner, exec'd by the setup program: runs the snippet as ``__main__``.

Standard library only, any Python >= 3.8 (it runs under the snippet's interpreter).
"""

import json
import os
import sys


def stdlib_names():
    names = set(getattr(sys, "stdlib_module_names", ())) | set(sys.builtin_module_names)
    if names - set(sys.builtin_module_names):
        return names
    import sysconfig
    std = [os.path.realpath(sysconfig.get_paths()[k]) for k in ("stdlib", "platstdlib")]
    for name, module in list(sys.modules.items()):
        path = os.path.realpath(getattr(module, "__file__", None) or "")
        if path and "site-packages" not in path and any(path.startswith(s) for s in std):
            names.add(name.partition(".")[0])
    return names


def distribution_map(metadata):
    if hasattr(metadata, "packages_distributions"):
        return metadata.packages_distributions()
    mapping = {}
    for dist in metadata.distributions():
        tops = (dist.read_text("top_level.txt") or "").split()
        if not tops:
            tops = {str(f).split("/")[0].split(".")[0] for f in dist.files or ()}
        for top in tops:
            mapping.setdefault(top, []).append(dist.metadata["Name"])
    return mapping


def direct_imports(source):
    import ast
    try:
        tree = ast.parse(source)
    except (SyntaxError, ValueError):
        return set()
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name.partition(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.partition(".")[0])
    return names


def is_local(name, roots):
    module = sys.modules.get(name)
    where = getattr(module, "__file__", None) or next(iter(getattr(module, "__path__", ())), "")
    where = os.path.realpath(where) if where else ""
    return bool(where) and any(where.startswith(root + os.sep) for root in roots)


def imported_distributions(baseline, direct, roots):
    """Distributions of what the snippet imports itself; when it imports local code
    (the source's checkout), of everything that code pulled in as well."""
    present = {name.partition(".")[0] for name in list(sys.modules)}
    new = {name.partition(".")[0] for name in list(sys.modules) if name not in baseline}
    ignore = stdlib_names() | {"__main__"}
    direct = (direct & present) - ignore
    tops = new - ignore if any(is_local(n, roots) for n in direct) else direct
    if not tops:
        return {}
    from importlib import metadata
    mapping = distribution_map(metadata)
    found = {}
    for top in sorted(tops):
        for dist in mapping.get(top, ()):
            try:
                found[dist] = metadata.version(dist)
            except Exception:
                pass
    return found


def missing_requirements(names):
    if not names:
        return []
    from importlib import metadata
    missing = []
    for name in names:
        try:
            metadata.version(name)
        except Exception:
            missing.append(name)
    return missing


def capture_run(cfg):
    """Capture's in-snippet half (distill/capture.py CHILD); a plain exec if it cannot start."""
    try:
        scope = {}
        exec(cfg["source"], scope)
        return scope["install"](cfg)
    except Exception:
        return lambda source, name, ns: exec(compile(source, name, "exec", dont_inherit=True), ns)


def main():
    cfg = json.loads(sys.argv[1])
    fd = cfg["report_fd"]
    try:
        os.set_inheritable(fd, False)
    except OSError:
        fd = -1

    def emit(event):
        if fd >= 0:
            try:
                os.write(fd, (json.dumps(event) + "\n").encode())
            except OSError:
                pass

    import platform
    import traceback
    import types
    emit({"event": "start", "python_version": platform.python_version(),
          "missing": missing_requirements(cfg["requirements"])})
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.reconfigure(line_buffering=True)
        except Exception:
            pass
    script = cfg["script"]
    sys.argv = [script]
    sys.path[0] = os.path.dirname(script)
    module = types.ModuleType("__main__")
    module.__file__ = script
    module.__builtins__ = __builtins__
    import builtins
    if not hasattr(builtins, "display"):  # Jupyter's builtin, which notebook examples use
        def display(*objs, **kwargs):
            for obj in objs:
                print(repr(obj))
        builtins.display = display
    sys.modules["__main__"] = module
    baseline = set(sys.modules)

    roots = [os.path.realpath(p) for p in cfg["local"]]
    source = None

    def finish():
        try:
            direct = direct_imports(source) if source is not None else set()
            packages = imported_distributions(baseline, direct, roots)
        except Exception:
            packages = {}
        emit({"event": "end", "packages": packages})

    status = 0
    run = capture_run(cfg["capture"])
    try:
        with open(script, encoding="utf-8") as f:
            source = f.read()
        run(source, script, module.__dict__)
    except SystemExit:
        finish()
        raise
    except BaseException as exc:
        tb = exc.__traceback__
        while tb is not None and tb.tb_frame.f_code.co_filename == "<string>":
            tb = tb.tb_next
        traceback.print_exception(type(exc), exc, tb)
        status = 1
    finish()
    sys.exit(status)


if __name__ == "__main__":
    main()
