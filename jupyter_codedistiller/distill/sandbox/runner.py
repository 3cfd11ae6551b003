"""The sandbox's runner: runs the snippet as ``__main__`` in the snippet's own process.

Exec'd by the setup program (cold) or called in a child forked from the warm
interpreter (warm). It reports nothing: it holds no descriptor that reaches the
record, and what the snippet prints is only output. Standard library only, any
Python >= 3.8 (it runs under the snippet's interpreter).
"""

import json
import os
import sys


def capture_run(cfg):
    """Capture's in-snippet half (distill/capture.py CHILD); a plain exec if it cannot start."""
    try:
        scope = {}
        exec(cfg["source"], scope)
        return scope["install"](cfg)
    except Exception:
        return lambda source, name, ns: exec(compile(source, name, "exec", dont_inherit=True), ns)


def run_script(script, capture=None):
    """Run ``script`` as ``__main__``; the exit status (its traceback printed on error).

    ``capture``: the settings of capture.py's in-snippet half, or None to run it plainly.
    """
    import builtins
    import traceback
    import types

    for stream in (sys.stdout, sys.stderr):
        try:
            stream.reconfigure(line_buffering=True)
        except Exception:
            pass
    sys.argv = [script]
    sys.path[0] = os.path.dirname(script)
    module = types.ModuleType("__main__")
    module.__file__ = script
    module.__builtins__ = builtins
    if not hasattr(builtins, "display"):  # Jupyter's builtin, which notebook examples use
        def display(*objs, **kwargs):
            for obj in objs:
                print(repr(obj))
        builtins.display = display
    sys.modules["__main__"] = module
    # Hook: code that must run in the snippet's process before the snippet goes here.
    if capture is not None:
        run = capture_run(capture)
    else:
        def run(source, name, ns):
            exec(compile(source, name, "exec", dont_inherit=True), ns)
    try:
        with open(script, encoding="utf-8") as f:
            source = f.read()
        run(source, script, module.__dict__)
    except SystemExit:
        raise
    except BaseException as exc:
        tb = exc.__traceback__
        while tb is not None and tb.tb_frame.f_code.co_filename != script:
            tb = tb.tb_next
        traceback.print_exception(type(exc), exc, tb)
        return 1
    return 0


def main():
    cfg = json.loads(sys.argv[1])
    sys.exit(run_script(cfg["script"], cfg.get("capture")))


if __name__ == "__main__":
    main()
