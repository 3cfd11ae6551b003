"""Package sources' upstream layers and which code snippets run against.

Real distributions are built and pip-installed into a temp target here; their
metadata names a ``file://`` git repository made in the test, and sdists are
served from a local directory index (pip's own configuration, set through
``PIP_*`` variables). Nothing leaves the machine.
"""

from __future__ import annotations

import hashlib
import io
import os
import socket
import subprocess
import sys
import tarfile
import textwrap
from pathlib import Path

import pytest

from jupyter_codedistiller.cli import main
from jupyter_codedistiller.distill import sources, upstream
from jupyter_codedistiller.distill.refresh import refresh
from jupyter_codedistiller.library import Library

from .gitrepos import MIT_LICENSE, commit, file_url, make_repo

EXAMPLE = textwrap.dedent('''\
    """
    Minimal {name} pipeline
    =======================

    Build a model and score it.
    """
    import {name}

    model = {name}.Model(3)
    print(model.score([1, 2, 3]))
    ''')

MODULE = textwrap.dedent('''\
    """{name}: a tiny package."""

    __version__ = "{version}"


    class Model:
        """A model that multiplies.

        >>> Model(2).score([1, 2])
        6
        """

        def __init__(self, factor):
            self.factor = factor

        def score(self, values):
            return self.factor * sum(values)
    ''')


def project_files(name: str, version: str, url: str | None, extra: dict[str, str] | None = None
                  ) -> dict[str, str]:
    urls = f"project_urls =\n    Source = {url}\n" if url else ""
    return {
        "pyproject.toml": '[build-system]\nrequires = ["setuptools>=61"]\n'
                          'build-backend = "setuptools.build_meta"\n',
        # setup.cfg: setuptools' pyproject validation refuses file:// project URLs
        "setup.cfg": f"[metadata]\nname = {name}\nversion = {version}\n"
                     f"description = A tiny package\nlicense = MIT\n{urls}"
                     f"\n[options]\npackages = {name}\n",
        "LICENSE": MIT_LICENSE,
        f"{name}/__init__.py": MODULE.format(name=name, version=version),
        "examples/plot_minimal_pipeline.py": EXAMPLE.format(name=name),
        **(extra or {}),
    }


def pip_install(project: Path, target: Path) -> None:
    """Build ``project`` and install it into ``target`` with pip, offline."""
    done = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--isolated", "--no-index", "--no-deps",
         "--no-build-isolation", "--target", str(target), str(project)],
        capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]


def installed(tmp_path: Path, name: str, version: str, url: str | None, monkeypatch,
              extra: dict[str, str] | None = None) -> Path:
    """A real installed distribution ``name`` ``version`` in a fresh target on sys.path."""
    from .gitrepos import write_files

    project = tmp_path / f"build-{name}-{version}"
    write_files(project, project_files(name, version, url, extra))
    target = tmp_path / f"site-{name}-{version}"
    pip_install(project, target)
    monkeypatch.syspath_prepend(str(target))
    return target


@pytest.fixture
def online(monkeypatch, tmp_path: Path) -> Path:
    """Upstream layers on, pip configured with nothing but what the test gives it."""
    monkeypatch.delenv("CODEDISTILLER_FETCH_UPSTREAM")
    monkeypatch.setenv("PIP_CONFIG_FILE", os.devnull)
    for var in ("PIP_FIND_LINKS", "PIP_EXTRA_INDEX_URL", "PIP_INDEX_URL", "PIP_NO_INDEX"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("PIP_INDEX_URL", closed_port_url())  # unreachable unless a test serves one
    return tmp_path


def closed_port_url() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}/simple"


def make_sdist(path: Path, name: str, version: str, files: dict[str, str],
               hostile: list[tarfile.TarInfo] | None = None) -> Path:
    """A real sdist (gzipped tar with ``NAME-VERSION/`` on top and a PKG-INFO)."""
    path.mkdir(parents=True, exist_ok=True)
    archive = path / f"{name}-{version}.tar.gz"
    top = f"{name}-{version}"
    with tarfile.open(archive, "w:gz") as tf:
        members = {"PKG-INFO": f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n",
                   **files}
        for rel, text in members.items():
            data = text.encode()
            info = tarfile.TarInfo(f"{top}/{rel}")
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
        for info in hostile or []:
            tf.addfile(info)
    return archive


def serve_index(root: Path, archive: Path, name: str) -> str:
    """A PEP 503 directory index under ``root`` listing ``archive``; returns its file:// URL."""
    sha = hashlib.sha256(archive.read_bytes()).hexdigest()
    page = root / "simple" / upstream.canonical(name)
    page.mkdir(parents=True, exist_ok=True)
    rel = os.path.relpath(archive, page)
    (page / "index.html").write_text(
        f'<html><body><a href="{rel}#sha256={sha}">{archive.name}</a></body></html>\n')
    return (root / "simple").as_uri()


def by_path(library: Library) -> dict[str, list]:
    found: dict[str, list] = {}
    for s in library.all():
        found.setdefault(s.source.path, []).append(s)
    return found


def sources_text(home: Path, capsys) -> str:
    capsys.readouterr()
    assert main(["--home", str(home), "sources"]) == 0
    return capsys.readouterr().out


# ---------------------------------------------------------------- the repository layer


def test_repository_at_the_version_tag(library: Library, online: Path, monkeypatch, capsys,
                                       home: Path) -> None:
    tmp = online
    repo = make_repo(tmp / "upstream" / "tinyup", project_files("tinyup", "1.0", None))
    tagged = repo.head.commit.hexsha
    repo.create_tag("v1.0")
    commit(repo, {"examples/plot_after_release.py": "print('not released yet')\n"})
    url = file_url(Path(repo.working_tree_dir))
    installed(tmp, "tinyup", "1.0", url, monkeypatch)

    sources.add(library, "pkg:tinyup")
    report = refresh(library)
    assert not report.errors, report.errors
    files = by_path(library)
    assert "examples/plot_after_release.py" not in files, "only the tag's commit is read"
    gallery = files["examples/plot_minimal_pipeline.py"][0]
    src = gallery.source
    assert (src.layer, src.tag, src.commit, src.version) == ("repository", "v1.0", tagged, "1.0")
    assert src.kind == "package" and src.package == "tinyup"
    assert gallery.validation.status == "passed", gallery.validation.reason
    assert gallery.validation.packages.get("tinyup") == "1.0"
    assert "18" in gallery.validation.stdout_tail
    # The docstring example arrives too, and the long description.
    docs = files["tinyup/__init__.py"]
    assert any(s.validation.status == "passed" for s in docs)
    assert {s.source.layer for s in docs} == {"installed"}, "docstrings come from what runs"
    out = sources_text(home, capsys)
    assert f"repository: {url}@{tagged[:12]} (tag v1.0)" in out
    assert "installed: tinyup 1.0" in out
    # Cached by version: a second refresh reads no network (the repository may even be gone).
    os.rename(repo.working_tree_dir, tmp / "gone")
    again = refresh(library, validate=False)
    assert not again.errors and again.totals()["retired"] == 0


def test_upgrade_fetches_the_new_tag_and_retires_what_disappeared(
        library: Library, online: Path, monkeypatch) -> None:
    tmp = online
    extra = {"examples/plot_old_api.py": "import tinyup\nprint(tinyup.Model(1).score([1]))\n"}
    repo = make_repo(tmp / "upstream" / "tinyup", project_files("tinyup", "1.0", None, extra))
    repo.create_tag("1.0")  # a bare version tag is found too
    url = file_url(Path(repo.working_tree_dir))
    with monkeypatch.context() as m:  # the old target leaves sys.path after this block
        installed(tmp, "tinyup", "1.0", url, m)
        sources.add(library, "pkg:tinyup")
        refresh(library, validate=False)
    old = by_path(library)["examples/plot_old_api.py"][0]
    assert old.source.tag == "1.0"
    cache = upstream.cache_dir(library.path.parent, "tinyup")
    assert [p.name for p in cache.iterdir()] == ["1.0"]

    new = commit(repo, delete=["examples/plot_old_api.py"])
    repo.create_tag("tinyup-1.1")
    installed(tmp, "tinyup", "1.1", url, monkeypatch)
    report = refresh(library, validate=False)
    assert report.sources[0].pin == "1.1" and report.totals()["retired"] >= 1
    assert library.get(old.id).lifecycle == "retired"
    gallery = [s for s in by_path(library)["examples/plot_minimal_pipeline.py"]
               if s.lifecycle == "active"][0]
    assert (gallery.source.tag, gallery.source.commit, gallery.source.version) == (
        "tinyup-1.1", new, "1.1")
    assert [p.name for p in cache.iterdir()] == ["1.1"]


# ---------------------------------------------------------------- the sdist layer and failures


def test_sdist_from_the_configured_index_when_the_tag_is_missing(
        library: Library, online: Path, monkeypatch, capsys, home: Path) -> None:
    tmp = online
    repo = make_repo(tmp / "upstream" / "tinysd", {"README.md": "# no tags here\n"})
    url = file_url(Path(repo.working_tree_dir))
    # The installed package finds its sample data beside itself, as PyDESeq2's does; the wheel
    # does not ship it, the sdist does. The sdist's own copy of the package must never run.
    loader = ("\n\ndef load():\n    from pathlib import Path\n"
              "    return (Path(__file__).parent.parent / 'datasets' / 'counts.csv').read_text()\n")
    installed(tmp, "tinysd", "2.0", url, monkeypatch,
              extra={"tinysd/__init__.py": MODULE.format(name="tinysd", version="2.0") + loader})
    sdist_files = {**project_files("tinysd", "2.0", url),
                   "tinysd/__init__.py": "raise RuntimeError('the sdist copy ran')\n",
                   "datasets/counts.csv": "gene,count\ng1,42\n",
                   "examples/plot_load_data.py": "import tinysd\n\nprint(tinysd.load())\n"}
    archive = make_sdist(tmp / "index" / "files", "tinysd", "2.0", sdist_files)
    index = serve_index(tmp / "index", archive, "tinysd")
    monkeypatch.setenv("PIP_INDEX_URL", index)

    sources.add(library, "pkg:tinysd")
    report = refresh(library)
    assert not report.errors, report.errors
    gallery = by_path(library)["examples/plot_minimal_pipeline.py"][0]
    src = gallery.source
    sha = hashlib.sha256(archive.read_bytes()).hexdigest()
    assert (src.layer, src.sdist, src.sdist_sha256, src.index_url) == (
        "sdist", "tinysd-2.0.tar.gz", sha, index)
    assert src.commit is None and src.version == "2.0"
    assert gallery.validation.status == "passed", gallery.validation.reason
    data = by_path(library)["examples/plot_load_data.py"][0]
    assert data.validation.status == "passed", (data.validation.reason, data.validation.stderr_tail)
    assert "g1,42" in data.validation.stdout_tail
    assert data.validation.packages.get("tinysd") == "2.0"
    capsys.readouterr()
    assert main(["--home", str(home), "why", gallery.id]) == 0
    assert f"upstream   sdist tinysd-2.0.tar.gz sha256 {sha} from {index}" in capsys.readouterr().out
    out = sources_text(home, capsys)
    assert f"repository: tag v2.0 not found in {url}" in out
    assert f"sdist: tinysd-2.0.tar.gz sha256 {sha} from {index}" in out
    unpacked = Path(upstream.cache_dir(home, "tinysd") / "2.0" / "sdist" / "unpacked")
    member = unpacked / "tinysd-2.0" / "examples" / "plot_minimal_pipeline.py"
    assert member.is_file() and not os.access(member, os.W_OK) or os.geteuid() == 0
    assert oct(member.stat().st_mode & 0o777) == "0o444"


def test_no_url_and_unreachable_index_give_one_line_reasons_and_wheel_snippets_arrive(
        library: Library, online: Path, monkeypatch, capsys, home: Path) -> None:
    installed(online, "tinyno", "0.3", None, monkeypatch)
    sources.add(library, "pkg:tinyno")
    report = refresh(library)
    assert not report.errors, report.errors
    files = by_path(library)
    assert set(files) >= {"tinyno/__init__.py"} and "examples/plot_minimal_pipeline.py" not in files
    doc = files["tinyno/__init__.py"][0]
    assert doc.source.layer == "installed" and doc.validation.status == "passed"
    out = sources_text(home, capsys)
    lines = [ln.strip() for ln in out.splitlines()]
    assert "repository: no repository URL in metadata" in lines
    assert any(ln.startswith("sdist: offline: cannot reach http://127.0.0.1:") for ln in lines)
    # Offline is not remembered: once the index answers, the next refresh gets the sdist.
    archive = make_sdist(online / "index" / "files", "tinyno", "0.3",
                         project_files("tinyno", "0.3", None))
    monkeypatch.setenv("PIP_INDEX_URL", serve_index(online / "index", archive, "tinyno"))
    refresh(library, validate=False)
    assert "examples/plot_minimal_pipeline.py" in by_path(library)


def test_switched_off_by_setting_or_per_source(library: Library, online: Path, monkeypatch,
                                               capsys, home: Path) -> None:
    repo = make_repo(online / "upstream" / "tinyoff", project_files("tinyoff", "1.0", None))
    repo.create_tag("v1.0")
    installed(online, "tinyoff", "1.0", file_url(Path(repo.working_tree_dir)), monkeypatch)
    assert main(["--home", str(home), "config", "fetch_upstream", "off"]) == 0
    assert main(["--home", str(home), "config", "fetch_upstream", "maybe"]) == 1
    assert "fetch_upstream must be on or off" in capsys.readouterr().err
    sources.add(library, "pkg:tinyoff")
    refresh(library, validate=False)
    assert "examples/plot_minimal_pipeline.py" not in by_path(library)
    assert "upstream: not fetched (fetch_upstream is off)" in sources_text(home, capsys)
    assert not upstream.cache_dir(home, "tinyoff").exists()
    # On again: the next refresh reads the repository layer without a version change.
    assert main(["--home", str(home), "config", "fetch_upstream", "on"]) == 0
    refresh(library, validate=False)
    assert by_path(library)["examples/plot_minimal_pipeline.py"][0].source.tag == "v1.0"
    # A source added with --no-upstream stays on its installed files.
    assert main(["--home", str(home), "remove", "tinyoff"]) == 0
    assert main(["--home", str(home), "add", "pkg:tinyoff", "--name", "bare",
                 "--no-upstream"]) == 0
    assert main(["--home", str(home), "refresh", "bare", "--no-validate"]) == 0
    bare = [s for s in library.all(source="bare")]
    assert bare and all(s.source.layer == "installed" for s in bare)


# ---------------------------------------------------------------- hostile sdists


def _hostile_members() -> list[tarfile.TarInfo]:
    link = tarfile.TarInfo("tinyhx-1.0/examples/passwd.txt")
    link.type, link.linkname = tarfile.SYMTYPE, "/etc/passwd"
    return [link]


def test_hostile_sdists_are_refused_or_contained(tmp_path: Path) -> None:
    # Path traversal: the whole archive is refused, nothing lands outside.
    evil = tarfile.TarInfo("../../escaped.txt")
    archive = make_sdist(tmp_path / "a", "tinyhx", "1.0", {}, hostile=[evil])
    with pytest.raises(upstream.HostileArchive, match="escapes the archive") as exc:
        upstream.unpack(archive, tmp_path / "a" / "out")
    assert "\n" not in str(exc.value)
    assert not (tmp_path / "a" / "out").exists() and not (tmp_path / "escaped.txt").exists()
    absolute = tarfile.TarInfo("/tmp/absolute.txt")
    archive = make_sdist(tmp_path / "b", "tinyhx", "1.0", {}, hostile=[absolute])
    with pytest.raises(upstream.HostileArchive, match="absolute path"):
        upstream.unpack(archive, tmp_path / "b" / "out")
    # Links out and a member over the member limit are not unpacked; the rest is.
    big = tarfile.TarInfo("tinyhx-1.0/data/big.bin")
    big.size = upstream.MAX_MEMBER_BYTES + 1
    archive = make_sdist(tmp_path / "c", "tinyhx", "1.0", {"examples/ok.py": "print('ok')\n"},
                         hostile=_hostile_members())
    with tarfile.open(archive.with_suffix(".big.tar.gz"), "w:gz", compresslevel=1) as tf:
        with tarfile.open(archive) as src:
            for member in src.getmembers():
                tf.addfile(member, src.extractfile(member) if member.isreg() else None)
        tf.addfile(big, io.BytesIO(bytes(big.size)))
    skipped = upstream.unpack(archive.with_suffix(".big.tar.gz"), tmp_path / "c" / "out")
    out = tmp_path / "c" / "out" / "tinyhx-1.0"
    assert (out / "examples" / "ok.py").read_text() == "print('ok')\n"
    assert not (out / "examples" / "passwd.txt").exists()
    assert not (out / "data" / "big.bin").exists()
    assert any("passwd.txt: link" in s for s in skipped), skipped
    assert any("big.bin: 20 MB, over the member limit" in s for s in skipped), skipped
    # A 2 GB member is refused from its header, never read (the archive holds the header only).
    huge = tarfile.TarInfo("tinyhx-1.0/data/huge.bin")
    huge.size = 2 * 1024 ** 3
    bomb = tmp_path / "d" / "tinyhx-1.0.tar"
    bomb.parent.mkdir()
    bomb.write_bytes(huge.tobuf(format=tarfile.GNU_FORMAT))
    with pytest.raises(upstream.HostileArchive, match="'tinyhx-1.0/data/huge.bin' is 2048 MB"):
        upstream.unpack(bomb, tmp_path / "d" / "out")
    assert not (tmp_path / "d" / "out").exists()
    # Read-only, yet removable by us.
    upstream.remove_tree(tmp_path / "c" / "out")
    assert not (tmp_path / "c" / "out").exists()


def test_hostile_sdist_never_runs_and_the_wheel_snippets_still_arrive(
        library: Library, online: Path, monkeypatch, capsys, home: Path) -> None:
    marker = online / "setup-py-ran"
    installed(online, "tinyhx", "1.0", None, monkeypatch)
    setup_py = f"open({str(marker)!r}, 'w').write('ran')\n"
    files = {**project_files("tinyhx", "1.0", None), "setup.py": setup_py}
    archive = make_sdist(online / "index" / "files", "tinyhx", "1.0", files,
                         hostile=[tarfile.TarInfo("tinyhx-1.0/../../../escaped.py")])
    monkeypatch.setenv("PIP_INDEX_URL", serve_index(online / "index", archive, "tinyhx"))
    sources.add(library, "pkg:tinyhx")
    report = refresh(library)
    assert not report.errors
    assert not marker.exists(), "nothing of the sdist runs outside the sandbox"
    assert "tinyhx/__init__.py" in by_path(library)
    lines = [ln.strip() for ln in sources_text(home, capsys).splitlines()]
    assert any(ln.startswith("sdist: sdist refused: member") and "escapes the archive" in ln
               for ln in lines), lines
    # A clean sdist whose setup.py has side effects: unpacked as data, its setup.py never runs.
    archive = make_sdist(online / "index2" / "files", "tinyhx", "1.0", files)
    monkeypatch.setenv("PIP_INDEX_URL", serve_index(online / "index2", archive, "tinyhx"))
    refresh(library)
    assert by_path(library)["examples/plot_minimal_pipeline.py"][0].validation.status == "passed"
    assert not marker.exists()


# ---------------------------------------------------------------- which code runs


C_SOURCE = textwrap.dedent('''\
    #define PY_SSIZE_T_CLEAN
    #include <Python.h>

    static PyObject *add(PyObject *self, PyObject *args) {
        long a, b;
        if (!PyArg_ParseTuple(args, "ll", &a, &b)) return NULL;
        return PyLong_FromLong(a + b);
    }

    static PyMethodDef methods[] = {{"add", add, METH_VARARGS, "Add two integers."},
                                    {NULL, NULL, 0, NULL}};
    static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_fast", NULL, -1, methods};
    PyMODINIT_FUNC PyInit__fast(void) { return PyModule_Create(&module); }
    ''')


def test_git_source_with_a_compiled_extension_runs_against_the_installed_build(
        library: Library, tmp_path: Path, monkeypatch) -> None:
    files = {
        "pyproject.toml": textwrap.dedent('''\
            [build-system]
            requires = ["setuptools>=61"]
            build-backend = "setuptools.build_meta"

            [project]
            name = "tinyc"
            version = "0.4.0"
            '''),
        "setup.py": "from setuptools import Extension, setup\n"
                    "setup(packages=['tinyc'], ext_modules=[Extension('tinyc._fast', "
                    "['tinyc/_fast.c'])])\n",
        "tinyc/__init__.py": '"""tinyc."""\nfrom ._fast import add\n',
        "tinyc/_fast.c": C_SOURCE,
        "examples/use_fast.py": "import tinyc\n\nprint('sum', tinyc.add(2, 40))\n",
        "LICENSE": MIT_LICENSE,
    }
    repo = make_repo(tmp_path / "tinyc", files)
    target = tmp_path / "site"
    pip_install(Path(repo.working_tree_dir), target)
    assert list((target / "tinyc").glob("_fast*.so")), "the extension was compiled"
    assert not list(Path(repo.working_tree_dir, "tinyc").glob("_fast*.so"))
    monkeypatch.syspath_prepend(str(target))
    sources.add(library, str(repo.working_tree_dir))
    report = refresh(library)
    assert not report.errors, report.errors
    example = by_path(library)["examples/use_fast.py"][0]
    assert example.validation.status == "passed", (example.validation.reason,
                                                   example.validation.stderr_tail)
    assert "sum 42" in example.validation.stdout_tail
    assert example.validation.packages.get("tinyc") == "0.4.0"


def test_recorded_versions_are_those_that_ran(library: Library, tmp_path: Path,
                                              monkeypatch) -> None:
    """A checkout at 0.1.0 while 0.2.0 is installed: the installed code runs and is named;
    without an installed one the checkout runs and its own version is named."""
    newer = MODULE.format(name="tinyv", version="0.2.0") + "\n\ndef only_in_020():\n    return 'new'\n"
    checkout_files = {**project_files("tinyv", "0.1.0", None),
                      "examples/uses_new.py": "import tinyv\nprint(tinyv.__version__)\n"}
    repo = make_repo(tmp_path / "checkout" / "tinyv", checkout_files)
    from .gitrepos import write_files

    project = tmp_path / "release"
    write_files(project, {**project_files("tinyv", "0.2.0", None), "tinyv/__init__.py": newer})
    target = tmp_path / "site"
    pip_install(project, target)

    with monkeypatch.context() as m:
        m.syspath_prepend(str(target))
        sources.add(library, str(repo.working_tree_dir), name="with-installed")
        refresh(library, ["with-installed"])
    ran = by_path(library)["examples/uses_new.py"][0]
    assert ran.validation.status == "passed"
    assert "0.2.0" in ran.validation.stdout_tail, "the installed package ran, not the checkout"
    assert ran.validation.packages.get("tinyv") == "0.2.0"

    alone = make_repo(tmp_path / "checkout2" / "tinyv", checkout_files)
    sources.add(library, str(alone.working_tree_dir), name="checkout-only")
    refresh(library, ["checkout-only"])
    ran = [s for s in library.all(source="checkout-only") if s.source.path == "examples/uses_new.py"][0]
    assert ran.validation.status == "passed"
    assert "0.1.0" in ran.validation.stdout_tail
    assert ran.validation.packages.get("tinyv") == "0.1.0"
    # The checkout's own version is not taken for an environment change on the next refresh.
    assert refresh(library, ["checkout-only"]).totals()["stale"] == 0


def test_daemon_honours_fetch_upstream(online: Path, monkeypatch, home: Path) -> None:
    repo = make_repo(online / "upstream" / "tinyd", project_files("tinyd", "1.0", None))
    repo.create_tag("v1.0")
    target = installed(online, "tinyd", "1.0", file_url(Path(repo.working_tree_dir)), monkeypatch)
    env = {**os.environ, "CODEDISTILLER_HOME": str(home), "PYTHONPATH": os.pathsep.join(
        [str(target), str(Path(__file__).resolve().parent.parent)])}

    def daemon_once() -> None:
        done = subprocess.run([sys.executable, "-m", "jupyter_codedistiller.cli", "daemon", "--once",
                               "--no-defaults"], capture_output=True, text=True, env=env, timeout=600)
        assert done.returncode == 0, done.stderr[-2000:]

    with Library.open(home) as lib:
        sources.add(lib, "pkg:tinyd")
    assert main(["--home", str(home), "config", "fetch_upstream", "off"]) == 0
    daemon_once()
    assert not upstream.cache_dir(home, "tinyd").exists()
    assert main(["--home", str(home), "config", "fetch_upstream", "on"]) == 0
    daemon_once()
    with Library.open(home) as lib:
        gallery = by_path(lib)["examples/plot_minimal_pipeline.py"][0]
    assert gallery.source.tag == "v1.0" and gallery.validation.status == "passed"


def test_daemon_validates_every_installed_file_snippet_before_the_upstream_layers(
        library: Library, online: Path, monkeypatch) -> None:
    from jupyter_codedistiller.daemon import Daemon

    installed(online, "tinyt", "1.0", None, monkeypatch)
    sdist_files = {**project_files("tinyt", "1.0", None),
                   **{f"examples/plot_step_{i}.py": f"import time\n\ntime.sleep(0.2)\nprint('step {i}')\n"
                      for i in range(3)}}
    archive = make_sdist(online / "index" / "files", "tinyt", "1.0", sdist_files)
    monkeypatch.setenv("PIP_INDEX_URL", serve_index(online / "index", archive, "tinyt"))
    sources.add(library, "pkg:tinyt")
    daemon = Daemon(library, defaults=False, workers=1)

    daemon.cycle()  # a new library: extracted, then the installed files' snippets validated
    snippets = library.all()
    layers = {s.source.layer for s in snippets}
    assert layers == {"installed", "sdist"}, layers
    for s in snippets:
        expected = "passed" if s.source.layer == "installed" else "pending"
        assert s.validation.status == expected, (s.source.path, s.validation.status, s.validation.reason)
    assert library.waiting_by_layer() == {"sdist": 4}  # the gallery's minimal pipeline and three steps

    daemon.cycle()  # nothing installed waits: the upstream layer's turn
    assert library.waiting_by_layer() == {}
    assert {s.validation.status for s in library.all()} == {"passed"}
