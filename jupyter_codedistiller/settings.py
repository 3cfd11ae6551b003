"""Settings of one library, kept beside it in ``settings.json`` so every interface sees the same.

Environment variables override the file: ``CODEDISTILLER_POLICY`` for the
policy, ``CODEDISTILLER_FETCH_UPSTREAM`` (on/off) for reading package sources' upstream
repositories and sdists, ``OPENAI_BASE_URL`` / ``OPENAI_API_KEY`` for the LLM endpoint (the key
is never written to the file).
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any, Literal, get_args

Policy = Literal["open", "validated", "reviewed"]
POLICIES = get_args(Policy)
SWITCHES = ("on", "off")
FILE_NAME = "settings.json"


class SettingsError(ValueError):
    """A setting name or value that is not allowed; the message is one line."""


@dataclass
class Settings:
    """What a team decides for its library."""

    policy: str = "open"
    llm_code_model: str = ""
    llm_fast_model: str = ""
    llm_base_url: str = ""
    cluster: str = ""  # a Dask scheduler address that validates for refresh and the daemon
    embedding_model: str = ""  # an embeddings model at the LLM endpoint: search re-ranks by meaning
    fetch_upstream: str = "on"  # package sources read their upstream repository / sdist

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _coerce(name: str, raw: Any) -> str:
    if name == "policy" and raw not in POLICIES:
        raise SettingsError(f"policy must be one of {', '.join(POLICIES)}; got {raw!r}")
    if name == "cluster" and raw not in ("", "local"):
        from .distill.cluster import ClusterError, check_address

        try:
            return check_address(str(raw))
        except ClusterError as exc:
            raise SettingsError(str(exc)) from None
    if name == "fetch_upstream":
        raw = {True: "on", False: "off"}.get(raw, raw) if isinstance(raw, bool) else raw
        if raw not in SWITCHES:
            raise SettingsError(f"fetch_upstream must be on or off; got {raw!r}")
    return str(raw)


def settings_path(home: Path) -> Path:
    return Path(home) / FILE_NAME


def _read(path: Path) -> dict[str, Any]:
    """The settings file's object; {} when there is none."""
    if not path.exists():
        return {}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise SettingsError(f"cannot read {path}: {exc}") from None
    if not isinstance(data, dict):
        raise SettingsError(f"{path} must hold a JSON object")
    return data


def load_settings(home: Path) -> Settings:
    """The library's settings; a missing file gives the defaults, a broken one an error."""
    names = {f.name for f in fields(Settings)}
    data = _read(settings_path(home))
    settings = Settings(**{k: _coerce(k, v) for k, v in data.items() if k in names})
    if os.environ.get("CODEDISTILLER_POLICY"):
        settings.policy = _coerce("policy", os.environ["CODEDISTILLER_POLICY"])
    if os.environ.get("CODEDISTILLER_FETCH_UPSTREAM"):
        settings.fetch_upstream = _coerce("fetch_upstream", os.environ["CODEDISTILLER_FETCH_UPSTREAM"])
    if os.environ.get("OPENAI_BASE_URL"):
        settings.llm_base_url = os.environ["OPENAI_BASE_URL"]
    return settings


def set_setting(home: Path, name: str, value: Any) -> Settings:
    """Change one setting in the file (atomically) and return the settings now in force."""
    names = [f.name for f in fields(Settings)]
    if name not in names:
        raise SettingsError(f"unknown setting {name!r}; use one of {', '.join(names)}")
    path = settings_path(home)
    data = _read(path)
    data[name] = _coerce(name, value)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    os.replace(tmp, path)
    return load_settings(home)
