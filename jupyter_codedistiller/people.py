"""Who is acting: the name recorded on flags, reviews and resolutions."""

from __future__ import annotations

import getpass
import os
import subprocess


def acting_person(by: str | None = None) -> str:
    """``by`` if given, else ``$CODEDISTILLER_USER``, else ``git config user.name``, else the OS user."""
    if by and by.strip():
        return by.strip()
    if os.environ.get("CODEDISTILLER_USER", "").strip():
        return os.environ["CODEDISTILLER_USER"].strip()
    try:
        out = subprocess.run(
            ["git", "config", "user.name"], capture_output=True, text=True, timeout=5, check=False
        )
        if out.returncode == 0 and out.stdout.strip():
            return out.stdout.strip()
    except (OSError, subprocess.SubprocessError):
        pass
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "unknown"
