"""Facts about an interpreter, printed as JSON: run as ``python -I -c <this file>``.

Standard library only, any Python >= 3.8.
"""

import json
import os
import platform
import sys

print(json.dumps({
    "version": platform.python_version(),
    "executable": sys.executable,
    "paths": [sys.prefix, sys.base_prefix, sys.exec_prefix,
              getattr(sys, "base_exec_prefix", sys.exec_prefix),
              os.path.dirname(os.path.realpath(sys.executable))] + [p for p in sys.path if p],
    "sys_path": [p for p in sys.path if p],
}))
