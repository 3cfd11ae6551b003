"""Where snippets come from: git repositories and installed packages.

``add`` registers a source after checking it at once (reachable, a git
repository with at least one commit, an installed distribution); nothing is
stored when the check fails. Git sources, remote or local, are cloned once
into ``<home>/sources/<id>`` and fetched afterwards, so the library always
reads *committed* state pinned to a commit: uncommitted edits in a local
working copy are not distilled until they are committed. A source follows the
branch that was checked out when it was added (``settings.ref``).

Package sources (``pkg:NAME``) read an installed distribution through
``importlib.metadata``: its version, license, upstream repository and the
files it installed (modules for docstring examples, shipped examples and docs,
and its long description as ``README``).

Git never prompts here: no terminal prompt, an askpass that answers nothing,
ssh in batch mode, and every git command has a timeout.
"""

from __future__ import annotations

import os
import re
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..library import LibraryError, NotFound
from ..model import RecordError, RegisteredSource, SourceKind, SourceSettings, utcnow
from . import licenses

if TYPE_CHECKING:
    from importlib.metadata import Distribution

    from ..library import Library

CLONE_TIMEOUT = 600.0
FETCH_TIMEOUT = 300.0
LOCAL_TIMEOUT = 60.0
MAX_FILE_BYTES = 2_000_000  # larger files are passed on cut to this size plus one byte

_SOURCE_ID = re.compile(r"^[a-z0-9][a-z0-9._-]{0,63}$")
_SCP_URL = re.compile(r"^[\w.-]+@[\w.-]+:(?!//)")
_URL_SCHEMES = ("https://", "http://", "ssh://", "git://", "file://", "git+ssh://", "ssh+git://")
_REGULAR_MODES = ("100644", "100755")


class SourceError(LibraryError):
    """A source that cannot be added or read; the message names it and says why, in one line."""


# ---------------------------------------------------------------- git plumbing


def git_environment() -> dict[str, str]:
    """Environment for git commands: never prompt, never wait on a terminal or an agent."""
    return {
        "GIT_TERMINAL_PROMPT": "0",
        "GIT_ASKPASS": "echo",
        "SSH_ASKPASS": "echo",
        "GCM_INTERACTIVE": "never",
        "GIT_SSH_COMMAND": "ssh -o BatchMode=yes -o ConnectTimeout=20",
        "GIT_ALLOW_PROTOCOL": "file:git:http:https:ssh",
        "LC_ALL": "C",
    }


_GIT_CONFIG = ("-c", "http.lowSpeedLimit=1000", "-c", "http.lowSpeedTime=60",
               "-c", "core.askPass=echo", "-c", "credential.interactive=never")


def run_git(args: list[str], *, cwd: Path | None = None, timeout: float = LOCAL_TIMEOUT,
            what: str = "git") -> str:
    """Run one git command through GitPython with a timeout; SourceError (one line) on failure."""
    import git

    try:
        return git.Git(str(cwd) if cwd else None).execute(
            ["git", *_GIT_CONFIG, *args],
            env=git_environment(),
            kill_after_timeout=timeout,
            strip_newline_in_stdout=False,
        )
    except git.GitCommandError as exc:
        raise SourceError(f"{what}: {_git_reason(exc)}") from None
    except git.GitCommandNotFound:
        raise SourceError("git is not installed or not on PATH") from None


def _git_reason(exc: Any) -> str:
    """The telling line of a failed git command's stderr."""
    stderr = exc.stderr if isinstance(exc.stderr, str) else (exc.stderr or b"").decode(
        "utf-8", "replace")
    lines = [ln.strip() for ln in stderr.replace("stderr: '", "").splitlines() if ln.strip()]
    lines = [ln.strip("'").strip() for ln in lines]
    if any(ln.startswith("Timeout:") for ln in lines):
        return "timed out"
    for prefix in ("fatal:", "error:"):
        for ln in lines:
            if ln.startswith(prefix):
                return ln.removeprefix(prefix).strip()
    return lines[-1] if lines else f"git exited with status {exc.status}"


def head_commit(checkout: Path, ref: str = "HEAD") -> str | None:
    """The commit ``ref`` names in ``checkout``, or None when there is none (empty repository)."""
    try:
        return run_git(["rev-parse", "--verify", "-q", ref + "^{commit}"], cwd=checkout).strip()
    except SourceError:
        return None


def tracked_files(checkout: Path, commit: str) -> list[str]:
    """Regular files (no symlinks, no submodules) in ``commit``, sorted."""
    out = run_git(["ls-tree", "-r", "-z", "--full-tree", commit], cwd=checkout,
                  what="listing files")
    files = []
    for entry in out.split("\0"):
        if not entry:
            continue
        meta, _, path = entry.partition("\t")
        if meta.split(" ", 1)[0] in _REGULAR_MODES:
            files.append(path)
    return sorted(files)


@dataclass
class Changes:
    """Files changed between two commits: ``changed`` to extract again, ``deleted`` to retire."""

    changed: list[str] = field(default_factory=list)
    deleted: list[str] = field(default_factory=list)


def changes_between(checkout: Path, old: str, new: str) -> Changes:
    """What changed from ``old`` to ``new``: renames count as a deletion plus an addition.

    A file that became a symlink or a submodule counts as deleted.
    """
    out = run_git(["diff", "--raw", "-z", "-M", "--no-abbrev", old, new], cwd=checkout,
                  what="comparing commits")
    parts = out.split("\0")
    result = Changes()
    i = 0
    while i < len(parts):
        meta = parts[i]
        if not meta.startswith(":"):
            i += 1
            continue
        fields_ = meta[1:].split()
        new_mode, status = fields_[1], fields_[4]
        if status[0] in "RC":
            old_path, new_path = parts[i + 1], parts[i + 2]
            i += 3
            if status[0] == "R":
                result.deleted.append(old_path)
        else:
            old_path = new_path = parts[i + 1]
            i += 2
        if status[0] == "D" or new_mode not in _REGULAR_MODES:
            result.deleted.append(new_path)
        else:
            result.changed.append(new_path)
    result.changed.sort()
    result.deleted = sorted(set(result.deleted) - set(result.changed))
    return result


def _working_in(folder: Path) -> bool | None:
    """Whether any process has its working directory in ``folder`` (None: cannot tell here)."""
    if not os.path.isdir("/proc/self"):
        return None
    top = str(folder.resolve())
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                cwd = os.readlink(f"/proc/{entry}/cwd")
            except OSError:
                continue
            if cwd == top or cwd.startswith(top + os.sep):
                return True
    return False


def clear_stale_locks(checkout: Path, *, wait: float = LOCAL_TIMEOUT) -> list[str]:
    """Remove the lock files a killed refresh's git left in ``checkout`` (``shallow.lock``,
    ``index.lock``, ref locks), which would otherwise fail every later fetch.

    Call it holding the source's refresh lock, so that no other refresh runs git here. A git
    command that outlived a killed refresh still works in the checkout: it is waited for (up to
    ``wait`` seconds) and its locks are left to it. Where processes cannot be seen, only locks
    older than the fetch timeout count as stale. Returns the removed paths.
    """
    git_dir = checkout / ".git"
    locks = [p for p in [*git_dir.glob("*.lock"), *git_dir.glob("refs/**/*.lock")] if p.is_file()]
    if not locks:
        return []
    deadline = time.monotonic() + wait
    while _working_in(checkout) and time.monotonic() < deadline:
        time.sleep(0.2)
    busy = _working_in(checkout)
    removed = []
    for lock in locks:
        try:
            if busy or (busy is None and time.time() - lock.stat().st_mtime < FETCH_TIMEOUT):
                continue
            lock.unlink()
            removed.append(str(lock.relative_to(checkout)))
        except OSError:
            pass
    return removed


def fetch(checkout: Path, url: str, ref: str | None, *, timeout: float = FETCH_TIMEOUT) -> str:
    """Fetch ``ref`` (the remote HEAD when None) and move the checkout to it; returns the commit.

    Only tracked files are ever read from the checkout, so untracked leftovers
    are not cleaned away.
    """
    what = f"fetching {url}"
    depth = ["--depth", "1"] if (checkout / ".git" / "shallow").exists() else []
    if ref:
        spec = f"+refs/heads/{ref}:refs/remotes/origin/{ref}"
        target = f"refs/remotes/origin/{ref}"
    else:
        spec, target = "HEAD", "FETCH_HEAD"
    run_git(["fetch", "--quiet", "--no-tags", *depth, "origin", spec], cwd=checkout,
            timeout=timeout, what=what)
    try:
        commit, head = run_git(["rev-parse", target + "^{commit}", "HEAD"],
                               cwd=checkout).split()[:2]
    except (SourceError, ValueError):
        raise SourceError(f"{what}: no commit at {ref or 'HEAD'}") from None
    if commit != head:
        run_git(["reset", "--quiet", "--hard", commit], cwd=checkout,
                what="updating the checkout")
    return commit


def _is_local_path(text: str) -> bool:
    return not text.startswith(_URL_SCHEMES) and not _SCP_URL.match(text)


def clone(url: str, dest: Path, *, ref: str | None = None, timeout: float = CLONE_TIMEOUT) -> str:
    """Clone ``url`` into ``dest`` (which must not exist); returns the checked-out commit.

    Remote repositories are cloned shallow (one commit deep): later refreshes
    compare trees, not history. Raises SourceError naming ``url`` when it is
    unreachable or empty; ``dest`` is removed then.
    """
    args = ["clone", "--quiet", "--no-tags"]
    if not _is_local_path(url):
        args += ["--depth", "1"]
    if ref:
        args += ["--branch", ref, "--single-branch"]
    try:
        run_git([*args, "--", url, str(dest)], timeout=timeout, what=f"cannot clone {url}")
        commit = head_commit(dest)
        if commit is None:
            raise SourceError(f"{url} is an empty repository (no commits yet)")
        return commit
    except BaseException:
        shutil.rmtree(dest, ignore_errors=True)
        raise


def current_branch(checkout: Path) -> str | None:
    try:
        return run_git(["symbolic-ref", "-q", "--short", "HEAD"], cwd=checkout).strip() or None
    except SourceError:
        return None


def remote_url(checkout: Path, remote: str = "origin") -> str | None:
    try:
        return run_git(["remote", "get-url", remote], cwd=checkout).strip() or None
    except SourceError:
        return None


def browsable_repository(url: str | None) -> str | None:
    """An https link for a repository URL (``git@github.com:o/r.git`` -> https://github.com/o/r)."""
    if not url:
        return None
    m = re.match(r"^(?:ssh://)?git@([\w.-]+)[:/](.+?)(?:\.git)?/?$", url)
    if m:
        return f"https://{m.group(1)}/{m.group(2)}"
    if url.startswith(("https://", "http://")):
        return re.sub(r"^(https?://)[^@/]*@", r"\1", url).removesuffix(".git").rstrip("/")
    return None


# ---------------------------------------------------------------- packages


@dataclass
class PackageInfo:
    """An installed distribution as a source: what it is and which of its files to read."""

    name: str
    version: str
    license: str
    repository: str | None
    root: Path
    files: list[str]
    virtual: dict[str, bytes] = field(default_factory=dict)


def _distribution(name: str) -> Distribution:
    import importlib.metadata as metadata

    try:
        return metadata.distribution(name)
    except metadata.PackageNotFoundError:
        raise SourceError(
            f"no installed distribution {name!r} in {sys.executable}; install it first"
        ) from None


def _project_repository(meta: Any) -> str | None:
    """The upstream repository from Project-URL entries (Source, Repository, ...) or Home-page."""
    urls: dict[str, str] = {}
    for entry in meta.get_all("Project-URL") or []:
        label, _, url = entry.partition(",")
        urls[re.sub(r"[\s_-]+", "", label.lower())] = url.strip()
    for key in ("source", "sourcecode", "repository", "code", "github", "git", "homepage"):
        if urls.get(key, "").startswith(("https://", "http://")):
            return urls[key]
    for url in urls.values():
        if re.match(r"https?://(github\.com|gitlab\.com|bitbucket\.org|codeberg\.org)/", url):
            return url
    home = (meta.get("Home-page") or "").strip()
    return home if home.startswith(("https://", "http://")) else None


def _readme(meta: Any) -> dict[str, bytes]:
    """The long description, as a virtual README file whose suffix says its markup."""
    body = meta.get_payload() if hasattr(meta, "get_payload") else None
    body = body or meta.get("Description") or ""
    if not isinstance(body, str) or not body.strip():
        return {}
    kind = (meta.get("Description-Content-Type") or "").lower()
    suffix = ".md" if "markdown" in kind else ".rst" if "rst" in kind or not kind else ".txt"
    return {"README" + suffix: body.encode("utf-8")}


def package_info(name: str) -> PackageInfo:
    """An installed distribution's version, license, repository link and files to read."""
    dist = _distribution(name)
    meta = dist.metadata
    root = Path(str(dist.locate_file("")))
    files, license_texts = [], []
    for f in dist.files or []:
        parts = f.parts
        if ".." in parts or not parts or "__pycache__" in parts:
            continue
        top = parts[0]
        if top.endswith((".dist-info", ".egg-info")):
            if licenses.LICENSE_FILE.match(parts[-1]) or "licenses" in parts:
                try:
                    license_texts.append(Path(str(dist.locate_file(f))).read_text(
                        encoding="utf-8", errors="replace"))
                except OSError:
                    pass
            continue
        if f.suffix in (".pyc", ".so", ".pyd", ".dll", ".dylib"):
            continue
        files.append(str(f))
    return PackageInfo(
        name=meta.get("Name") or name,
        version=dist.version,
        license=licenses.from_metadata(meta, license_texts),
        repository=_project_repository(meta),
        root=root,
        files=sorted(files),
        virtual=_readme(meta),
    )


# ---------------------------------------------------------------- reading files


def read_file(root: Path, path: str, virtual: dict[str, bytes] | None = None) -> bytes:
    """The bytes of ``path`` under ``root`` (at most MAX_FILE_BYTES + 1); never follows a symlink
    out of the tree. Raises OSError when it cannot be read."""
    if virtual and path in virtual:
        return virtual[path][: MAX_FILE_BYTES + 1]
    full = root / path
    if full.is_symlink():
        raise OSError(f"{path} is a symbolic link")
    with open(full, "rb") as fh:
        return fh.read(MAX_FILE_BYTES + 1)


# ---------------------------------------------------------------- registering


def sources_dir(library: Library) -> Path:
    """Where git sources are cloned: ``<library home>/sources``."""
    return library.path.parent / "sources"


def checkout_path(library: Library, source_id: str) -> Path:
    return sources_dir(library) / source_id


def _slug(text: str) -> str:
    slug = re.sub(r"[^a-z0-9._-]+", "-", text.lower()).strip("-._")
    return slug[:64].strip("-._")


def _url_parts(url: str) -> list[str]:
    """Path components of a git URL or path, last one without ``.git``."""
    path = _SCP_URL.sub("", url)
    path = re.sub(r"^[a-z+]+://[^/]*", "", path)
    parts = [p for p in re.split(r"[/\\]", path) if p]
    if parts:
        parts[-1] = parts[-1].removesuffix(".git")
    return [p for p in parts if p]


def _free_id(library: Library, choices: list[str], spec: str) -> str:
    taken = {s.id: s for s in library.sources(include_removed=True)}
    for choice in choices:
        if choice and (choice not in taken or taken[choice].state == "removed"):
            return choice
    raise SourceError(f"a source named {choices[0]!r} is already registered; "
                      f"give {spec} another one with --name")


def _check_name(name: str) -> str:
    if not _SOURCE_ID.match(name):
        raise SourceError(f"source name {name!r} must be 1-64 lowercase letters, digits, '.', '_' "
                          "or '-', starting with a letter or digit")
    return name


@dataclass(frozen=True)
class SourceSpec:
    """What a SOURCE argument names: ``kind`` (git, package, local), the ``url`` to register
    (``pkg:NAME``, the git URL, or the absolute path) and, for a local path or a ``file://``
    URL, the folder ``path`` it names on this machine (the API checks where that lies)."""

    kind: SourceKind
    url: str
    path: Path | None = None


REMOTE_SCHEMES = ("https", "http", "ssh", "git", "git+ssh", "ssh+git")
_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*)://")
_TRANSPORT = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*::")  # git's ext::, fd:: remote helpers
_PACKAGE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")


def classify(spec: str, *, base: Path | None = None) -> SourceSpec:
    """The one reading of a SOURCE argument, for the CLI, the magic and the API alike:
    ``pkg:NAME``, a git URL (https, http, ssh, git, git+ssh, ssh+git, file, or scp-like
    ``user@host:path``), or a local path (relative to ``base``, default the working folder).

    Raises SourceError (one line) for anything else: an option-shaped string, control
    characters, git's ``ext::`` / ``fd::`` transports, other URL schemes, a host that reads
    as an option.
    """
    spec = spec.strip()
    if not spec:
        raise SourceError("give a git URL, a path to a git working copy, or pkg:NAME")
    if spec.startswith("-") or any(ord(c) < 32 or ord(c) == 127 for c in spec):
        raise SourceError(f"{spec!r} is not a source")
    if spec.startswith("pkg:"):
        name = spec[4:].strip()
        if not _PACKAGE.match(name):
            raise SourceError(f"{spec!r} does not name a distribution; write pkg:NAME")
        return SourceSpec("package", "pkg:" + name)
    scheme = _SCHEME.match(spec)
    if scheme:
        name = scheme.group(1).lower()
        rest = spec[scheme.end():]
        if name == "file":
            return SourceSpec("git", spec, ((base or Path.cwd()) / Path(rest or "/")).resolve())
        if name not in REMOTE_SCHEMES:
            raise SourceError(f"{spec}: unsupported URL scheme; use https, ssh, git or file")
        if rest.split("@")[-1].startswith("-") or rest.startswith("-"):
            raise SourceError(f"{spec!r} is not a source: its host reads as an option")
        return SourceSpec("git", spec)
    if _SCP_URL.match(spec):
        return SourceSpec("git", spec)
    if _TRANSPORT.match(spec):
        raise SourceError(f"{spec!r} is not a source: git transports (ext::, fd::) are refused")
    path = ((base or Path.cwd()) / Path(spec).expanduser()).resolve()
    return SourceSpec("local", str(path), path)


def _check_local(path: str) -> str:
    """Check that ``path`` is a git repository with a commit; returns its checked-out branch."""
    import git

    if not Path(path).exists():
        raise SourceError(f"{path} does not exist")
    try:
        repo = git.Repo(path)
    except (git.InvalidGitRepositoryError, git.NoSuchPathError):
        try:
            top = git.Repo(path, search_parent_directories=True).working_tree_dir
            raise SourceError(f"{path} is not the top of a git repository; "
                              f"add {top} instead") from None
        except (git.InvalidGitRepositoryError, git.NoSuchPathError):
            raise SourceError(f"{path} is not a git repository") from None
    with repo:
        if not repo.head.is_valid():
            raise SourceError(f"{path} is an empty repository (no commits yet)")
        return "" if repo.head.is_detached else repo.active_branch.name


def add(library: Library, spec: str, *, name: str | None = None,
        ref: str | None = None, upstream: bool = True) -> RegisteredSource:
    """Check and register a source; git sources are cloned now. Nothing is stored on failure.

    ``upstream=False`` keeps a package source to its installed files (no repository, no sdist).

    A removed source's id may be taken again; its snippets come back when they
    are found again by the next refresh.
    """
    found = classify(spec)
    kind, url = found.kind, found.url
    if name is not None:
        _check_name(name)
    if ref is not None:
        if kind == "package":
            raise SourceError("a ref names a branch or tag of a git source, not of pkg:NAME")
        try:
            SourceSettings.from_dict({"ref": ref}, where="")
        except RecordError as exc:
            raise SourceError(f"{exc}: {ref!r}") from None
    if kind == "package":
        info = package_info(url[4:])
        url = "pkg:" + info.name
    for known in library.sources():
        if known.url == url or (kind == "package" and known.url.lower() == url.lower()):
            raise SourceError(f"{spec} is already registered as source {known.id!r}")
    if kind == "package":
        choices = [name] if name else [_slug(info.name), "pkg-" + _slug(info.name)]
        source_id = _free_id(library, [_check_name(c) for c in choices], spec)
        src = RegisteredSource(
            id=source_id, kind="package", url=url, location=str(info.root),
            license=info.license,
            settings=SourceSettings(repository=info.repository, package=info.name,
                                    version_at_add=info.version, upstream=bool(upstream)),
        )
        return _register(library, src)

    parts = _url_parts(url)
    if name:
        choices = [name]
    else:
        slug = _slug(parts[-1]) if parts else ""
        choices = [slug, _slug("-".join(parts[-2:]))] if slug else []
        if not choices:
            raise SourceError(f"cannot derive a name from {spec}; give one with --name")
    source_id = _free_id(library, [_check_name(c) for c in choices], spec)

    repository = browsable_repository(url)
    if kind == "local":
        ref = ref or _check_local(url) or None
        repository = browsable_repository(remote_url(Path(url)))
    dest = checkout_path(library, source_id)
    dest.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".adding-{source_id}-", dir=dest.parent))
    work = staging / "checkout"
    try:
        commit = clone(url, work, ref=ref,
                       timeout=CLONE_TIMEOUT if kind == "git" else LOCAL_TIMEOUT * 5)
        ref = ref or current_branch(work)
        src = RegisteredSource(
            id=source_id, kind=kind, url=url, location=str(dest),
            license=licenses.for_tree(work),
            settings=SourceSettings(ref=ref, repository=repository, head_at_add=commit),
        )
        if dest.exists():  # left behind by a removed source of the same name
            shutil.rmtree(dest)
        os.replace(work, dest)
        try:
            return _register(library, src)
        except BaseException:
            shutil.rmtree(dest, ignore_errors=True)
            raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _register(library: Library, src: RegisteredSource) -> RegisteredSource:
    try:
        old = library.source(src.id)
    except NotFound:
        return library.add_source(src)
    if old.state != "removed":
        raise SourceError(f"source {src.id!r} is already registered")
    src.added = utcnow()
    library.save_source(src)
    return src


def remove(library: Library, source_id: str) -> int:
    """Unregister a source, retire its snippets and delete its checkout; returns how many retired.

    The snippets stay in the library (retired, with their history), so
    notebooks that used them can still be audited.
    """
    src = library.source(source_id)
    retired = library.remove_source(src.id)
    if src.kind in ("git", "local"):
        shutil.rmtree(checkout_path(library, src.id), ignore_errors=True)
    else:
        from . import upstream

        upstream.remove_tree(upstream.cache_dir(library.path.parent, src.id))
    return retired


def describe(src: RegisteredSource) -> dict[str, Any]:
    """A registered source as the ``sources`` command shows it."""
    return {
        "id": src.id,
        "kind": src.kind,
        "url": src.url,
        "state": src.state,
        "pin": src.last_commit or src.last_version,
        "ref": src.settings.ref,
        "license": src.license,
        "last_refresh": src.last_refresh,
        "last_error": src.last_error,
        "last_error_when": src.settings.last_error_when,
        "layers": list(src.settings.layers) if src.kind == "package" else [],
    }
