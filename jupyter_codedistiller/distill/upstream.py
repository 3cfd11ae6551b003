"""The upstream layers of a package source: its repository at the version's tag, and its sdist.

A ``pkg:NAME`` source is read in up to three layers, all at the installed version:

1. **repository**: the upstream repository named by the distribution's metadata
   (``Project-URL`` source / repository / homepage entries, ``Home-page``),
   cloned one commit deep at the version's tag (``v1.2.3``, ``1.2.3``,
   ``NAME-1.2.3``, ...);
2. **sdist**, when there is no repository layer: the source distribution of that
   exact version from the index pip is configured with (``index-url``,
   ``extra-index-url``, ``find-links``, ``no-index``, ``cert``: pip's own
   configuration files and ``PIP_*`` variables, read with ``pip config list``).
   The file is found on the index's simple page and downloaded here, *not* with
   ``pip download``, which prepares metadata by running the sdist's build
   backend (its ``setup.py``) outside any sandbox. It is unpacked read-only,
   regular files only: an archive member that escapes the folder is refused,
   links and devices are not unpacked, over-large members are skipped;
3. the installed files, always (``sources.package_info``).

Each upstream layer fails soft with a one-line reason ("no repository URL in
metadata", "tag v1.2.3 not found in URL", "offline: ..."); the caller goes on
with the others. What was fetched is cached in ``<home>/upstream/<source>/<version>``
with a ``layer.json`` saying what it holds, so a refresh at the same version
reads the cache and never the network; a lasting failure (no URL, no tag, no
sdist) is cached too, a transient one (offline) is tried again next time.
Nothing fetched is ever imported or executed here: it is data for extraction.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import stat
import subprocess
import sys
import tarfile
import tempfile
import urllib.error
import urllib.parse
import urllib.request
import zipfile
from dataclasses import asdict, dataclass, field
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

from .sources import SourceError, run_git, tracked_files

LAYER_FILE = "layer.json"
NETWORK_TIMEOUT = 60.0
MAX_SDIST_BYTES = 200 * 1024 * 1024  # the archive itself
MAX_MEMBER_BYTES = 20 * 1024 * 1024  # one unpacked file; bigger ones are skipped
MAX_SKIPPABLE_BYTES = 256 * 1024 * 1024  # a member bigger than this refuses the sdist unread
MAX_UNPACKED_BYTES = 500 * 1024 * 1024  # all of them; more refuses the sdist
MAX_MEMBERS = 50_000
MAX_INDEX_PAGE = 20 * 1024 * 1024

_REPO_LABELS = ("source", "sourcecode", "repository", "code", "github", "gitlab", "git",
                "homepage", "home", "downloads", "download")
_REPO_HOSTS = re.compile(r"^https?://(www\.)?(github\.com|gitlab\.com|bitbucket\.org|codeberg\.org"
                         r"|git\.[\w.-]+)/[^/]+/[^/#?]+")
_OFFLINE = re.compile(r"could not resolve|unable to access|connection refused|timed out|"
                      r"network is unreachable|no route to host|name or service not known|"
                      r"temporary failure|couldn't connect|failed to connect", re.I)


@dataclass
class Layer:
    """One layer of a package source: where its files are and what says where they came from."""

    name: str  # repository | sdist | installed
    ok: bool = False
    reason: str | None = None  # why the layer is missing, one line
    lasting: bool = True  # a failure worth caching for this version (not "offline")
    root: str | None = None
    url: str | None = None
    commit: str | None = None
    tag: str | None = None
    sdist: str | None = None
    sdist_sha256: str | None = None
    index_url: str | None = None
    skipped: list[str] = field(default_factory=list)  # archive members not unpacked, and why
    tried: list[str] = field(default_factory=list)  # lines of the layers preferred but missing

    def lines(self) -> list[str]:
        """What ``codedistiller sources`` shows: the layers tried first, then this one."""
        return [*self.tried, self.describe()]

    def describe(self) -> str:
        """The one line ``codedistiller sources`` shows for this layer."""
        if not self.ok:
            return f"{self.name}: {self.reason or 'not fetched'}"
        if self.name == "repository":
            return f"repository: {self.url}@{(self.commit or '')[:12]} (tag {self.tag})"
        if self.name == "sdist":
            text = f"sdist: {self.sdist} sha256 {self.sdist_sha256} from {self.index_url}"
            return text + (f" ({len(self.skipped)} member(s) not unpacked)" if self.skipped else "")
        return f"{self.name}: {self.root}"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Layer:
        names = set(cls.__dataclass_fields__)
        return cls(**{k: v for k, v in data.items() if k in names})


def canonical(name: str) -> str:
    """A distribution name as indexes compare them (PEP 503)."""
    return re.sub(r"[-_.]+", "-", name).lower()


# ---------------------------------------------------------------- the repository layer


def repository_urls(meta: Any) -> list[str]:
    """Git URLs the metadata names for the upstream repository, most likely first.

    Labelled ``Project-URL`` entries (source, repository, code, homepage, ...)
    count when they point at a code host or are ``file://`` URLs (a local
    mirror); then any code-host URL, then ``Home-page``.
    """
    labelled: list[tuple[str, str]] = []
    for entry in meta.get_all("Project-URL") or []:
        label, _, url = str(entry).partition(",")
        labelled.append((re.sub(r"[\s_-]+", "", label.lower()), url.strip()))
    home = str(meta.get("Home-page") or "").strip()
    if home:
        labelled.append(("homepage", home))
    found: list[str] = []

    def take(url: str) -> None:
        m = _REPO_HOSTS.match(url)
        if m:
            url = m.group(0).removesuffix(".git")
        elif not url.startswith("file://"):
            return
        if url not in found:
            found.append(url)

    for key in _REPO_LABELS:
        for label, url in labelled:
            if label == key:
                take(url)
    for _, url in labelled:
        take(url)
    return found[:3]


def tag_candidates(name: str, version: str) -> list[str]:
    """Tag names a release of ``name`` at ``version`` is commonly given, in order of likelihood."""
    names = dict.fromkeys([name, name.lower(), canonical(name), canonical(name).replace("-", "_")])
    tags = [f"v{version}", version]
    for n in names:
        tags += [f"{n}-{version}", f"{n}-v{version}", f"{n}_{version}", f"{n}/v{version}"]
    tags += [f"release-{version}", f"release/{version}", f"release/v{version}", f"rel-{version}"]
    return list(dict.fromkeys(tags))


def _git_reason(exc: SourceError, url: str) -> tuple[str, bool]:
    """(one-line reason, lasting) for a failed git command against ``url``."""
    text = str(exc)
    if _OFFLINE.search(text):
        return f"offline: cannot reach {url}", False
    return text.split(": ", 1)[-1] if ": " in text else text, True


def fetch_repository(urls: list[str], name: str, version: str, dest: Path,
                     timeout: float = NETWORK_TIMEOUT) -> Layer:
    """Clone the first of ``urls`` that has a tag for ``version`` into ``dest`` (one commit deep).

    ``dest`` must not exist; it holds the checkout when the layer is ok.
    """
    layer = Layer("repository")
    if not urls:
        layer.reason = "no repository URL in metadata"
        return layer
    wanted = tag_candidates(name, version)
    reasons: list[tuple[str, bool]] = []
    for url in urls:
        try:
            out = run_git(["ls-remote", "--tags", "--refs", "--", url], timeout=timeout,
                          what=f"cannot list tags of {url}")
        except SourceError as exc:
            reasons.append(_git_reason(exc, url))
            continue
        tags = {line.split("\t", 1)[1].removeprefix("refs/tags/")
                for line in out.splitlines() if "\t" in line}
        tag = next((t for t in wanted if t in tags), None)
        if tag is None:
            reasons.append((f"tag v{version} not found in {url}", True))
            continue
        try:
            run_git(["clone", "--quiet", "--no-tags", "--depth", "1", "--branch", tag, "--",
                     url, str(dest)], timeout=timeout * 5, what=f"cannot clone {url} at {tag}")
            commit = run_git(["rev-parse", "HEAD^{commit}"], cwd=dest).strip()
        except SourceError as exc:
            shutil.rmtree(dest, ignore_errors=True)
            reasons.append(_git_reason(exc, url))
            continue
        layer.ok, layer.url, layer.tag, layer.commit, layer.root = True, url, tag, commit, str(dest)
        return layer
    # The most telling reason: a missing tag over an unreachable mirror, the first otherwise.
    layer.reason, layer.lasting = next((r for r in reasons if r[1]), reasons[0])
    layer.lasting = all(lasting for _, lasting in reasons)
    return layer


def repository_files(layer: Layer) -> list[str]:
    """The regular files tracked at the layer's commit."""
    assert layer.root and layer.commit
    return tracked_files(Path(layer.root), layer.commit)


# ---------------------------------------------------------------- pip's configuration


@dataclass
class IndexConfig:
    """Where pip looks for distributions, as its configuration says."""

    index_urls: list[str] = field(default_factory=list)
    find_links: list[str] = field(default_factory=list)
    cert: str | None = None


def _default_index() -> str | None:
    try:
        from pip._internal.models.index import PyPI  # pip's own default, not named here

        return str(PyPI.simple_url)
    except Exception:  # pip missing or reorganised: only configured indexes count
        return None


def index_config(python: str | None = None) -> IndexConfig:
    """pip's index settings for ``python`` (default: this interpreter), from ``pip config list``.

    Environment variables (``PIP_INDEX_URL``, ...) win over the ``download``
    section, which wins over ``global``, as in pip.
    """
    values: dict[str, str] = {}
    try:
        done = subprocess.run([python or sys.executable, "-m", "pip", "config", "list"],
                              capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)
        for line in done.stdout.splitlines():
            key, sep, value = line.partition("=")
            if sep:
                values[key.strip()] = value.strip().strip("'\"")
    except (OSError, subprocess.SubprocessError):
        pass

    def get(option: str) -> str | None:
        for section in (":env:", "download", "global"):
            if f"{section}.{option}" in values:
                return values[f"{section}.{option}"]
        return None

    def truthy(text: str | None) -> bool:
        return (text or "").strip().lower() in ("1", "true", "yes", "on")

    cfg = IndexConfig(cert=get("cert"))
    if not truthy(get("no-index")):
        primary = get("index-url") or _default_index()
        cfg.index_urls = [u for u in [primary, *(get("extra-index-url") or "").split()] if u]
    cfg.find_links = (get("find-links") or "").split()
    return cfg


# ---------------------------------------------------------------- finding the sdist


class _Anchors(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.links: list[tuple[str, str]] = []
        self._href: str | None = None
        self._text = ""

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "a":
            self._href, self._text = dict(attrs).get("href") or "", ""

    def handle_data(self, data: str) -> None:
        if self._href is not None:
            self._text += data

    def handle_endtag(self, tag: str) -> None:
        if tag == "a" and self._href is not None:
            self.links.append((self._href, self._text.strip()))
            self._href = None


def _sdist_name(filename: str, name: str, version: str) -> bool:
    for ext in (".tar.gz", ".zip", ".tar.bz2", ".tgz"):
        if filename.lower().endswith(ext):
            stem = filename[: -len(ext)]
            project, sep, ver = stem.rpartition("-")
            return bool(sep) and canonical(project) == canonical(name) and ver == version
    return False


def _context(cert: str | None) -> Any:
    import ssl

    return ssl.create_default_context(cafile=cert) if cert and os.path.isfile(cert) else None


def _read_url(url: str, cert: str | None, limit: int, timeout: float) -> bytes:
    """The body at ``url`` (http(s) or file), at most ``limit`` bytes; OSError on failure."""
    if url.startswith("file:"):
        path = Path(urllib.request.url2pathname(urllib.parse.urlparse(url).path))
        if path.is_dir():
            path = path / "index.html"
        with open(path, "rb") as fh:
            data = fh.read(limit + 1)
    elif url.startswith(("https://", "http://")):
        req = urllib.request.Request(url, headers={"Accept": "text/html", "User-Agent": "codedistiller"})
        with urllib.request.urlopen(req, timeout=timeout, context=_context(cert)) as resp:
            data = resp.read(limit + 1)
    else:
        raise OSError(f"unsupported URL {url}")
    if len(data) > limit:
        raise OSError(f"{url} is over {limit // (1024 * 1024)} MB")
    return data


def _links_at(url: str, cfg: IndexConfig) -> list[tuple[str, str]]:
    """(absolute URL, file name) of every file linked from a simple-index page or a folder."""
    if not url.startswith(("https://", "http://", "file:")):
        url = Path(url).expanduser().resolve().as_uri()
    local = Path(urllib.request.url2pathname(urllib.parse.urlparse(url).path)) \
        if url.startswith("file:") else None
    if local is not None and local.is_dir() and not (local / "index.html").is_file():
        return [(p.as_uri(), p.name) for p in sorted(local.iterdir()) if p.is_file()]
    page = _read_url(url, cfg.cert, MAX_INDEX_PAGE, NETWORK_TIMEOUT).decode("utf-8", "replace")
    parser = _Anchors()
    parser.feed(page)
    base = url if url.endswith("/") or local is None or not local.is_dir() else url + "/"
    found = []
    for href, text in parser.links:
        absolute = urllib.parse.urljoin(base, href)
        filename = urllib.parse.unquote(urllib.parse.urlparse(absolute).path.rsplit("/", 1)[-1])
        found.append((absolute, filename or text))
    return found


def find_sdist(name: str, version: str, cfg: IndexConfig) -> tuple[str, str, str | None, str]:
    """(download URL, file name, expected sha256 or None, index URL) of ``name``'s sdist at
    ``version``; SdistUnavailable (one line) when no configured index has it."""
    places = [(u.rstrip("/") + "/" + canonical(name) + "/", u) for u in cfg.index_urls]
    places += [(f, f) for f in cfg.find_links]
    if not places:
        raise SdistUnavailable("no package index configured for pip", lasting=True)
    unreachable: list[str] = []
    for page, index in places:
        try:
            links = _links_at(page, cfg)
        except urllib.error.HTTPError as exc:
            if exc.code != 404:
                unreachable.append(f"{index} ({exc.code})")
            continue
        except (OSError, ValueError) as exc:
            if not isinstance(exc, FileNotFoundError):
                reason = getattr(exc, "reason", None) or exc.strerror or exc
                unreachable.append(f"{index} ({reason})")
            continue
        for url, filename in links:
            if _sdist_name(filename, name, version):
                fragment = urllib.parse.urlparse(url).fragment
                m = re.search(r"sha256=([0-9a-f]{64})", fragment)
                return url.split("#", 1)[0], filename, m.group(1) if m else None, index
    if unreachable:
        raise SdistUnavailable(f"offline: cannot reach {unreachable[0]}", lasting=False)
    raise SdistUnavailable(f"no sdist of {name} {version} on the configured index", lasting=True)


class SdistUnavailable(Exception):
    """No sdist layer; ``lasting`` when asking again at the same version would not help."""

    def __init__(self, message: str, *, lasting: bool = True) -> None:
        super().__init__(message)
        self.lasting = lasting


def download(url: str, dest: Path, expected: str | None, cfg: IndexConfig) -> str:
    """Save ``url`` to ``dest`` (at most MAX_SDIST_BYTES); returns its sha256, checked
    against ``expected`` when the index gave one."""
    digest = hashlib.sha256()
    tmp = dest.with_name(dest.name + ".part")
    try:
        if url.startswith("file:"):
            src: Any = open(urllib.request.url2pathname(urllib.parse.urlparse(url).path), "rb")  # noqa: SIM115
        else:
            req = urllib.request.Request(url, headers={"User-Agent": "codedistiller"})
            src = urllib.request.urlopen(req, timeout=NETWORK_TIMEOUT, context=_context(cfg.cert))
        with src, open(tmp, "wb") as out:
            size = 0
            while chunk := src.read(1 << 20):
                size += len(chunk)
                if size > MAX_SDIST_BYTES:
                    raise SdistUnavailable(f"sdist is over {MAX_SDIST_BYTES // (1024 * 1024)} MB")
                digest.update(chunk)
                out.write(chunk)
        sha = digest.hexdigest()
        if expected and sha != expected:
            raise SdistUnavailable(f"sdist sha256 {sha[:12]} does not match the index's {expected[:12]}")
        os.replace(tmp, dest)
        return sha
    finally:
        tmp.unlink(missing_ok=True)


# ---------------------------------------------------------------- unpacking safely


class HostileArchive(SdistUnavailable):
    """An archive refused as a whole (a member escapes the folder, too many or too big in all)."""


def _member_path(name: str) -> list[str]:
    """The archive member's path parts, or HostileArchive when it would land outside."""
    if "\0" in name or name.startswith(("/", "\\")) or re.match(r"^[A-Za-z]:", name):
        raise HostileArchive(f"sdist refused: member {name[:80]!r} has an absolute path")
    parts = [p for p in re.split(r"[/\\]", name) if p not in ("", ".")]
    if ".." in parts:
        raise HostileArchive(f"sdist refused: member {name[:80]!r} escapes the archive")
    return parts


def _write_member(dest: Path, parts: list[str], src: Any, size: int) -> None:
    target = dest.joinpath(*parts)
    for parent in reversed(target.parents):
        if parent == dest or dest in parent.parents:
            if parent.is_symlink():
                raise HostileArchive("sdist refused: a link in the way of a member")
            parent.mkdir(exist_ok=True)
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0)
    try:
        fd = os.open(target, flags, 0o644)
    except FileExistsError:
        return  # a duplicate member: the first one stays
    with os.fdopen(fd, "wb") as out:
        left = size
        while left > 0 and (chunk := src.read(min(left, 1 << 20))):
            out.write(chunk)
            left -= len(chunk)


def _admit(name: str, size: int, tally: list[int], skipped: list[str]) -> bool:
    """Whether a regular member of ``size`` bytes is unpacked: refuses the archive (HostileArchive) for
    a member over MAX_SKIPPABLE_BYTES or a total over MAX_UNPACKED_BYTES; skips, saying so, one over
    MAX_MEMBER_BYTES."""
    if size > MAX_SKIPPABLE_BYTES:
        raise HostileArchive(f"sdist refused: member {name[:80]!r} is {size // (1024 * 1024)} MB")
    if size > MAX_MEMBER_BYTES:
        skipped.append(f"{name}: {size // (1024 * 1024)} MB, over the member limit")
        return False
    tally[0] += size
    if tally[0] > MAX_UNPACKED_BYTES:
        raise HostileArchive(f"sdist refused: unpacks to over {MAX_UNPACKED_BYTES // (1024 * 1024)} MB")
    return True


def unpack(archive: Path, dest: Path) -> list[str]:
    """Unpack the sdist ``archive`` into ``dest`` (created here) as read-only regular files.

    Returns the members not unpacked, each with why (links, devices, members
    over MAX_MEMBER_BYTES). Raises HostileArchive (one line) when a member's
    path escapes ``dest``, a member is over MAX_SKIPPABLE_BYTES (refused before
    it is read), or the archive holds too many or too large members in all;
    ``dest`` is removed then.
    """
    dest.mkdir(parents=True)
    skipped: list[str] = []
    tally = [0]  # bytes admitted so far
    try:
        if zipfile.is_zipfile(archive):
            with zipfile.ZipFile(archive) as zf:
                infos = zf.infolist()
                if len(infos) > MAX_MEMBERS:
                    raise HostileArchive(f"sdist refused: over {MAX_MEMBERS} members")
                for info in infos:
                    parts = _member_path(info.filename)
                    mode = info.external_attr >> 16
                    if info.is_dir() or not parts:
                        continue
                    if mode and not stat.S_ISREG(mode):
                        skipped.append(f"{info.filename}: not a regular file")
                        continue
                    if not _admit(info.filename, info.file_size, tally, skipped):
                        continue
                    with zf.open(info) as fh:
                        _write_member(dest, parts, fh, info.file_size)
        else:
            try:
                tf = tarfile.open(archive, "r:*")  # noqa: SIM115 - closed by the with below
            except tarfile.TarError as exc:
                raise HostileArchive(f"sdist is not a readable archive: {exc}") from None
            with tf:
                count = 0
                while (member := tf.next()) is not None:
                    count += 1
                    if count > MAX_MEMBERS:
                        raise HostileArchive(f"sdist refused: over {MAX_MEMBERS} members")
                    parts = _member_path(member.name)
                    if member.isdir() or not parts:
                        continue
                    if not member.isreg():
                        kind = "link" if member.issym() or member.islnk() else "special file"
                        skipped.append(f"{member.name}: {kind}, not unpacked")
                        continue
                    if not _admit(member.name, member.size, tally, skipped):
                        continue
                    fh = tf.extractfile(member)
                    if fh is not None:
                        with fh:
                            _write_member(dest, parts, fh, member.size)
    except (HostileArchive, SdistUnavailable):
        remove_tree(dest)
        raise
    except (OSError, EOFError, tarfile.TarError, zipfile.BadZipFile, ValueError) as exc:
        remove_tree(dest)
        raise HostileArchive(f"sdist cannot be unpacked: {type(exc).__name__}: {exc}") from None
    _read_only(dest)
    return skipped


def _read_only(top: Path) -> None:
    for folder, _dirs, files in os.walk(top):
        for f in files:
            if not os.path.islink(os.path.join(folder, f)):  # chmod would follow it
                os.chmod(os.path.join(folder, f), 0o444)
        os.chmod(folder, 0o555)


def remove_tree(top: Path) -> None:
    """Remove ``top`` even where it was made read-only."""
    if not top.exists() and not top.is_symlink():
        return
    for folder, dirs, _ in os.walk(top):
        for d in dirs:
            p = os.path.join(folder, d)
            if not os.path.islink(p):
                os.chmod(p, 0o755)
        os.chmod(folder, 0o755)
    shutil.rmtree(top, ignore_errors=True)


def sdist_root(unpacked: Path) -> Path:
    """The sdist's top folder (``NAME-VERSION/``) when it has exactly one."""
    entries = list(unpacked.iterdir())
    return entries[0] if len(entries) == 1 and entries[0].is_dir() else unpacked


def sdist_files(layer: Layer) -> list[str]:
    """Regular files of the unpacked sdist, relative to its top folder, sorted."""
    assert layer.root
    root = Path(layer.root)
    found = []
    for folder, dirs, files in os.walk(root):
        dirs[:] = [d for d in dirs if not os.path.islink(os.path.join(folder, d))]
        for f in files:
            p = Path(folder, f)
            if p.is_file() and not p.is_symlink():
                found.append(p.relative_to(root).as_posix())
    return sorted(found)


def fetch_sdist(name: str, version: str, dest: Path, cfg: IndexConfig | None = None) -> Layer:
    """Download and unpack ``name``'s sdist at ``version`` into ``dest`` (must not exist)."""
    layer = Layer("sdist")
    try:
        cfg = cfg or index_config()
        url, filename, expected, index = find_sdist(name, version, cfg)
        if "/" in filename or filename.startswith("."):
            raise SdistUnavailable(f"sdist file name {filename[:80]!r} refused")
        dest.mkdir(parents=True)
        archive = dest / filename
        sha = download(url, archive, expected, cfg)
        layer.skipped = unpack(archive, dest / "unpacked")
        archive.unlink()  # its name and sha256 are the provenance; the unpacked tree is the data
        layer.ok, layer.sdist, layer.sdist_sha256 = True, filename, sha
        layer.index_url, layer.root = index, str(sdist_root(dest / "unpacked"))
    except SdistUnavailable as exc:
        remove_tree(dest)
        layer.reason, layer.lasting = str(exc).splitlines()[0][:300], exc.lasting
    except (OSError, ValueError) as exc:
        remove_tree(dest)
        reason = getattr(exc, "reason", None) or getattr(exc, "strerror", None) or exc
        layer.reason, layer.lasting = f"offline: sdist download failed: {reason}"[:300], False
    return layer


# ---------------------------------------------------------------- the folder snippets run from

DATA_DIR = re.compile(r"(^|[_-])(data|datasets?|samples?|resources|fixtures)([_-]|$)", re.I)
MAX_RUN_DATA_BYTES = 100 * 1024 * 1024
RUN_FOLDER = "run"


def data_dirs(layer: Layer, modules: set[str]) -> list[Path]:
    """The layer's top-level data folders (``datasets/``, ``data/``, ...), not code."""
    if not layer.ok or not layer.root:
        return []
    root = Path(layer.root)
    return sorted(d for d in root.iterdir()
                  if d.is_dir() and not d.is_symlink() and d.name not in modules
                  and DATA_DIR.search(d.name) and not (d / "__init__.py").exists())


def run_folder(layer: Layer, installed_root: Path, modules: set[str]) -> Path | None:
    """A folder to put first on a snippet's path when the layer ships data beside its package.

    It holds links to the *installed* top-level modules (so the installed code
    runs, compiled parts included) and read-only copies (hard links where they
    can be) of the layer's data folders beside them, so that code finding its
    data relative to its package (``Path(pkg.__file__).parent.parent / "datasets"``)
    finds the upstream's. None when the layer has no data folder or the data is
    over MAX_RUN_DATA_BYTES.
    """
    dirs = data_dirs(layer, modules)
    if not dirs or not layer.root:
        return None
    total = sum(p.stat().st_size for d in dirs for p in d.rglob("*") if p.is_file() and not p.is_symlink())
    if total > MAX_RUN_DATA_BYTES:
        return None
    version_folder = _layer_folder(Path(layer.root))
    dest = version_folder / RUN_FOLDER
    staging = Path(tempfile.mkdtemp(prefix=".run-", dir=version_folder))
    try:
        for m in sorted(modules):
            for found in [installed_root / m, installed_root / f"{m}.py",
                          *installed_root.glob(f"{m}.*.so"), *installed_root.glob(f"{m}.*.pyd")]:
                if found.exists():
                    os.symlink(found, staging / found.name)
        for d in dirs:
            shutil.copytree(d, staging / d.name, symlinks=False, copy_function=_link_or_copy,
                            ignore=lambda folder, names: [n for n in names
                                                          if os.path.islink(os.path.join(folder, n))])
        _read_only(staging)
        os.chmod(staging, 0o755)
        remove_tree(dest)
        os.replace(staging, dest)
    finally:
        remove_tree(staging)
    return dest


def _link_or_copy(src: str, dst: str) -> None:
    try:
        os.link(src, dst)
    except OSError:
        shutil.copy2(src, dst)


def _layer_folder(root: Path) -> Path:
    """The version folder of the cache a layer's root lies in."""
    for parent in root.parents:
        if (parent / LAYER_FILE).is_file():
            return parent
    return root.parent


# ---------------------------------------------------------------- the cache


def cache_dir(home: Path, source_id: str) -> Path:
    """Where a package source's upstream layers are kept: ``<home>/upstream/<source id>``."""
    return home / "upstream" / source_id


def upstream_layer(home: Path, source_id: str, name: str, version: str, meta: Any) -> Layer:
    """The repository layer, else the sdist layer, of ``name`` at ``version`` (cached per version).

    Never raises for the upstream's own failures: the returned layer says why
    it is missing. When the repository layer is missing the sdist layer is
    tried, and the returned layer's ``tried`` says why the repository is missing.
    """
    folder = cache_dir(home, source_id) / _version_dir(version)
    record = folder / LAYER_FILE
    if record.is_file():
        try:
            cached = Layer.from_dict(json.loads(record.read_text(encoding="utf-8")))
            if not cached.ok or (cached.root and Path(cached.root).is_dir()):
                return cached
        except (OSError, ValueError, TypeError):
            pass
    remove_tree(folder)
    folder.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{_version_dir(version)}-", dir=folder.parent))
    try:
        repo = fetch_repository(repository_urls(meta), name, version, staging / "repository")
        layer = repo
        if not repo.ok:
            layer = fetch_sdist(name, version, staging / "sdist")
            layer.tried = [repo.describe()]
            layer.lasting = layer.lasting and (layer.ok or repo.lasting)
        if layer.ok or layer.lasting:
            if layer.root:  # the path it will have once the staging folder is moved in place
                layer.root = str(folder / Path(layer.root).relative_to(staging))
            (staging / LAYER_FILE).write_text(json.dumps(layer.to_dict()), encoding="utf-8")
            os.replace(staging, folder)
        return layer
    finally:
        remove_tree(staging)


def retire_versions(home: Path, source_id: str, keep: str | None) -> None:
    """Delete cached layers of every version but ``keep`` (after an upgrade was distilled)."""
    top = cache_dir(home, source_id)
    if not top.is_dir():
        return
    for entry in top.iterdir():
        if keep is None or entry.name != _version_dir(keep):
            remove_tree(entry)


def _version_dir(version: str) -> str:
    return re.sub(r"[^A-Za-z0-9._+-]", "_", version)[:64] or "_"
