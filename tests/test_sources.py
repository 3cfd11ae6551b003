"""Sources: adding git URLs, local working copies and installed packages; bad sources; licenses."""

from __future__ import annotations

import http.server
import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from jupyter_codedistiller.cli import main
from jupyter_codedistiller.distill import licenses, sources
from jupyter_codedistiller.distill.refresh import refresh
from jupyter_codedistiller.distill.sources import SourceError
from jupyter_codedistiller.library import Library

from . import source_cases
from .gitrepos import MIT_LICENSE, SAMPLE_FILES, commit, file_url, make_repo, write_files


@pytest.fixture
def upstream(tmp_path: Path):
    return make_repo(tmp_path / "lab" / "survkit", SAMPLE_FILES)


def leftovers(library: Library) -> list[str]:
    folder = sources.sources_dir(library)
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


# ---------------------------------------------------------------- git sources


def test_add_file_url_clones_once_and_records_the_branch(library: Library, upstream) -> None:
    src = sources.add(library, file_url(Path(upstream.working_tree_dir)))
    assert src.id == "survkit" and src.kind == "git" and src.state == "new"
    assert src.license == "MIT"
    assert src.settings.ref == "main"
    assert src.settings.head_at_add == upstream.head.commit.hexsha
    checkout = sources.checkout_path(library, "survkit")
    assert Path(src.location) == checkout
    assert (checkout / "survkit" / "core.py").is_file()
    assert library.source("survkit").url == file_url(Path(upstream.working_tree_dir))
    assert leftovers(library) == ["survkit"]  # no staging folder left behind


def test_add_local_working_copy_reads_committed_state_only(library: Library, upstream) -> None:
    root = Path(upstream.working_tree_dir)
    upstream.create_remote("origin", "git@github.com:lab/survkit.git")
    src = sources.add(library, str(root), name="lab-survkit")
    assert src.kind == "local" and src.id == "lab-survkit" and src.url == str(root.resolve())
    assert src.settings.repository == "https://github.com/lab/survkit"
    # An uncommitted edit is not distilled; the commit that follows is.
    write_files(root, {"examples/fit_groups.py": "print('uncommitted')\n"})
    refresh(library, validate=False)
    script = [s for s in library.all() if s.source.path == "examples/fit_groups.py"][0]
    assert "uncommitted" not in script.code
    assert script.source.commit == upstream.head.commit.hexsha
    assert script.source.kind == "local"
    assert script.source.link() == (
        f"https://github.com/lab/survkit/blob/{script.source.commit}/examples/fit_groups.py#L1-L5")


def test_ids_are_derived_and_never_clash(library: Library, tmp_path: Path, upstream) -> None:
    other = make_repo(tmp_path / "fork" / "survkit", {"README.md": "# fork\n"})
    first = sources.add(library, file_url(Path(upstream.working_tree_dir)))
    second = sources.add(library, file_url(Path(other.working_tree_dir)))
    assert (first.id, second.id) == ("survkit", "fork-survkit")
    with pytest.raises(SourceError, match="already registered as source 'fork-survkit'"):
        sources.add(library, file_url(Path(other.working_tree_dir)), name="another")
    third = make_repo(tmp_path / "third" / "survkit", {"README.md": "# third\n"})
    with pytest.raises(SourceError, match="a source named 'survkit' is already registered"):
        sources.add(library, file_url(Path(third.working_tree_dir)), name="survkit")
    with pytest.raises(SourceError, match="must be 1-64 lowercase"):
        sources.add(library, file_url(Path(other.working_tree_dir)), name="Bad Name!")
    assert sources.classify("git@github.com:lab/survkit.git") == sources.SourceSpec(
        "git", "git@github.com:lab/survkit.git")
    assert sources._url_parts("https://github.com/Lab/SurvKit.git")[-2:] == ["Lab", "SurvKit"]


def test_remove_retires_snippets_and_readd_revives_them(library: Library, upstream) -> None:
    sources.add(library, file_url(Path(upstream.working_tree_dir)))
    refresh(library, validate=False)
    active = library.count()
    assert active >= 7
    assert sources.remove(library, "survkit") == active
    assert library.count() == 0 and library.count(include_retired=True) == active
    assert not sources.checkout_path(library, "survkit").exists()
    assert library.sources() == []
    sources.add(library, file_url(Path(upstream.working_tree_dir)))
    report = refresh(library, validate=False)
    assert report.totals()["revived"] == active and library.count() == active


# ---------------------------------------------------------------- bad sources


def _refuses(library: Library, spec: str, *words: str) -> str:
    with pytest.raises(SourceError) as caught:
        sources.add(library, spec)
    message = str(caught.value)
    assert "\n" not in message
    for word in words:
        assert word in message, message
    assert library.sources(include_removed=True) == []
    assert [n for n in leftovers(library) if not n.startswith(".")] == []
    assert [n for n in leftovers(library) if n.startswith(".adding")] == []
    return message


def test_bad_sources_are_refused_with_one_clear_line(library: Library, tmp_path: Path) -> None:
    _refuses(library, str(tmp_path / "nowhere"), "nowhere", "does not exist")
    plain = tmp_path / "plain"
    plain.mkdir()
    _refuses(library, str(plain), "plain", "not a git repository")
    repo = make_repo(tmp_path / "repo", {"README.md": "# r\n", "docs/x.md": "# x\n"})
    _refuses(library, str(Path(repo.working_tree_dir) / "docs"), "not the top of a git repository")
    empty = make_repo(tmp_path / "empty")
    _refuses(library, str(empty.working_tree_dir), "empty repository")
    _refuses(library, file_url(Path(empty.working_tree_dir)), "empty repository")
    _refuses(library, "file:///nonexistent/repo.git", "file:///nonexistent/repo.git")
    _refuses(library, "http://127.0.0.1:9/x.git", "http://127.0.0.1:9/x.git")
    _refuses(library, "pkg:no-such-distribution-here", "no-such-distribution-here",
             "no installed distribution")
    _refuses(library, "ftp://example.org/x.git", "unsupported URL scheme")
    _refuses(library, "--upload-pack=evil", "not a source")


class _AuthRequired(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:  # noqa: N802 - the http.server API
        self.send_response(401)
        self.send_header("WWW-Authenticate", 'Basic realm="private"')
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def private_server() -> Iterator[str]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _AuthRequired)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/lab/private.git"
    server.shutdown()
    server.server_close()


def test_git_never_prompts_for_credentials(library: Library, private_server: str) -> None:
    started = time.monotonic()
    _refuses(library, private_server, private_server)
    assert time.monotonic() - started < 30


def test_a_server_that_never_answers_times_out(library: Library, monkeypatch) -> None:
    import socket

    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(4)  # connections are accepted by the kernel, never answered
    url = f"http://127.0.0.1:{silent.getsockname()[1]}/lab/slow.git"
    monkeypatch.setattr(sources, "CLONE_TIMEOUT", 1.5)
    try:
        started = time.monotonic()
        message = _refuses(library, url, url, "timed out")
        assert time.monotonic() - started < 20, message
    finally:
        silent.close()


def test_cli_add_sources_remove(library: Library, upstream, capsys) -> None:
    url = file_url(Path(upstream.working_tree_dir))
    assert main(["add", url, "--name", "surv"]) == 0
    assert "added git source surv" in capsys.readouterr().out
    assert main(["sources", "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert [(s["id"], s["kind"], s["url"], s["state"], s["pin"]) for s in listed] == [
        ("surv", "git", url, "new", None)]
    assert main(["refresh", "--no-validate"]) == 0
    out = capsys.readouterr().out
    assert "1 source:" in out and " added" in out
    assert main(["sources"]) == 0
    line = capsys.readouterr().out.splitlines()[0]
    assert line.split()[:4] == ["surv", "git", "ok", upstream.head.commit.hexsha[:12]]
    assert main(["remove", "surv"]) == 0
    assert "snippets retired" in capsys.readouterr().out
    assert main(["remove", "nosuch"]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "nosuch" in err
    assert main(["add", "/definitely/not/here"]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "/definitely/not/here does not exist" in err


# ---------------------------------------------------------------- package sources


def fake_distribution(site: Path, version: str, arg: int = 2) -> None:
    """An installed-looking distribution ``tinydist`` in ``site`` (dist-info + a module)."""
    for old in site.glob("tinydist-*.dist-info"):
        for f in old.iterdir():
            f.unlink()
        old.rmdir()
    info = site / f"tinydist-{version}.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: tinydist\n"
        f"Version: {version}\n"
        "Classifier: License :: OSI Approved :: MIT License\n"
        "Project-URL: Source, https://github.com/lab/tinydist\n"
        "Description-Content-Type: text/markdown\n\n"
        "# tinydist\n\n## Triple\n\n```python\nimport tinydist\nprint(tinydist.triple(2))\n```\n",
        encoding="utf-8")
    (info / "LICENSE").write_text(MIT_LICENSE, encoding="utf-8")
    (site / "tinydist").mkdir(exist_ok=True)
    (site / "tinydist" / "__init__.py").write_text(
        '"""tinydist."""\n\n\ndef triple(x):\n    """Three times x.\n\n'
        f"    >>> triple({arg})\n    {3 * arg}\n    \"\"\"\n    return 3 * x\n",
        encoding="utf-8")
    (info / "RECORD").write_text(
        "tinydist/__init__.py,,\n"
        f"tinydist-{version}.dist-info/METADATA,,\n"
        f"tinydist-{version}.dist-info/LICENSE,,\n"
        f"tinydist-{version}.dist-info/RECORD,,\n", encoding="utf-8")


def test_package_source(library: Library, tmp_path: Path, monkeypatch) -> None:
    site = tmp_path / "site"
    fake_distribution(site, "1.0")
    monkeypatch.syspath_prepend(str(site))
    src = sources.add(library, "pkg:tinydist")
    assert (src.id, src.kind, src.url, src.license) == ("tinydist", "package", "pkg:tinydist", "MIT")
    assert src.settings.repository == "https://github.com/lab/tinydist"
    with pytest.raises(SourceError, match="already registered as source 'tinydist'"):
        sources.add(library, "pkg:TinyDist")
    report = refresh(library, validate=False)
    assert report.sources[0].pin == "1.0" and report.totals()["added"] == 2
    by_path = {s.source.path: s for s in library.all()}
    assert set(by_path) == {"tinydist/__init__.py", "README.md"}
    doc = by_path["tinydist/__init__.py"]
    assert (doc.source.kind, doc.source.package, doc.source.version, doc.source.license) == (
        "package", "tinydist", "1.0", "MIT")
    # The installed file's path is not a path in the repository, and no tag "1.0" was seen there.
    assert doc.source.link() == "https://github.com/lab/tinydist"
    assert library.source("tinydist").last_version == "1.0"

    # Same version: nothing is read again.
    from jupyter_codedistiller.distill import extract

    calls: list[str] = []
    real = extract.extract_file
    monkeypatch.setattr(extract, "extract_file", lambda p, d: calls.append(p) or real(p, d))
    assert refresh(library, validate=False).totals()["files"] == 0 and calls == []

    # A new version with a changed docstring: read again, same ids, revision bumped.
    fake_distribution(site, "1.1", arg=5)
    report = refresh(library, validate=False)
    assert sorted(calls) == ["README.md", "tinydist/__init__.py"]
    assert report.totals()["updated"] == 1 and report.totals()["added"] == 0
    again = library.get(doc.id)
    assert again.revision == 2 and again.source.version == "1.1"
    assert library.get(by_path["README.md"].id).revision == 1


def test_package_that_disappears_is_an_error_on_that_source(library: Library, tmp_path: Path,
                                                            monkeypatch) -> None:
    site = tmp_path / "site"
    fake_distribution(site, "1.0")
    monkeypatch.syspath_prepend(str(site))
    sources.add(library, "pkg:tinydist")
    refresh(library, validate=False)
    for f in sorted(site.rglob("*"), reverse=True):
        f.unlink() if f.is_file() else f.rmdir()
    report = refresh(library, validate=False)
    assert "tinydist" in report.errors["tinydist"]
    src = library.source("tinydist")
    assert src.state == "error" and "no installed distribution 'tinydist'" in src.last_error
    assert library.count() == 2  # what was distilled before is kept


# ---------------------------------------------------------------- licenses


LICENSE_TEXTS = {
    "MIT": MIT_LICENSE,
    "BSD-3-Clause": "Redistribution and use in source and binary forms, with or without\n"
                    "modification, are permitted ... Neither the name of the copyright holder\n"
                    "nor the names of its contributors may be used to endorse or promote\n"
                    "products derived from this software without specific prior permission.",
    "BSD-2-Clause": "Redistribution and use in source and binary forms, with or without "
                    "modification, are permitted provided that: 1. Redistributions of source "
                    "code must retain the above copyright notice.",
    "Apache-2.0": "                                 Apache License\n"
                  "                           Version 2.0, January 2004\n",
    "GPL-3.0": "GNU GENERAL PUBLIC LICENSE\n Version 3, 29 June 2007\n",
    "GPL-2.0": "GNU GENERAL PUBLIC LICENSE\n Version 2, June 1991\n",
    "LGPL-3.0": "GNU LESSER GENERAL PUBLIC LICENSE\n Version 3, 29 June 2007\n",
    "LGPL-2.1": "GNU LESSER GENERAL PUBLIC LICENSE\n Version 2.1, February 1999\n",
    "MPL-2.0": "Mozilla Public License Version 2.0\n==================================\n",
    "ISC": "Permission to use, copy, modify, and/or distribute this software for any\n"
           "purpose with or without fee is hereby granted, provided that the above\n"
           "copyright notice and this permission notice appear in all copies.",
    "Unlicense": "This is free and unencumbered software released into the public domain.",
    "CC0-1.0": "Creative Commons Legal Code\n\nCC0 1.0 Universal\n",
}


@pytest.mark.parametrize("spdx", sorted(LICENSE_TEXTS))
def test_license_texts(spdx: str) -> None:
    assert licenses.from_text(LICENSE_TEXTS[spdx]) == spdx


def test_license_files_names_and_metadata(tmp_path: Path) -> None:
    assert licenses.from_text("All rights reserved. Ask us.") == "unknown"
    tree = tmp_path / "tree"
    tree.mkdir()
    assert licenses.for_tree(tree) == "unknown"
    (tree / "pyproject.toml").write_text('[project]\nname = "x"\nlicense = {text = "BSD"}\n')
    assert licenses.for_tree(tree) == "unknown"  # "BSD" does not say which one
    (tree / "pyproject.toml").write_text('[project]\nname = "x"\nlicense = "MIT OR Apache-2.0"\n')
    assert licenses.for_tree(tree) == "MIT OR Apache-2.0"
    (tree / "COPYING.txt").write_text(LICENSE_TEXTS["GPL-3.0"])
    assert licenses.for_tree(tree) == "GPL-3.0"
    (tree / "LICENSE.md").write_text(LICENSE_TEXTS["Apache-2.0"])
    assert licenses.for_tree(tree) == "Apache-2.0"  # LICENSE before COPYING
    for name, spdx in [("MIT License", "MIT"), ("new BSD", "BSD-3-Clause"),
                       ("Apache 2.0", "Apache-2.0"), ("GPLv3+", "GPL-3.0-or-later"),
                       ("MPL-2.0", "MPL-2.0"), ("BSD", "unknown"), ("", "unknown")]:
        assert licenses.from_name(name) == spdx, name

    from email.message import Message

    meta = Message()
    meta["License"] = "BSD"
    meta["Classifier"] = "License :: OSI Approved :: BSD License"
    assert licenses.from_metadata(meta) == "unknown"
    assert licenses.from_metadata(meta, [LICENSE_TEXTS["BSD-3-Clause"]]) == "BSD-3-Clause"
    meta.replace_header("Classifier",
                        "License :: OSI Approved :: GNU General Public License v3 (GPLv3)")
    assert licenses.from_metadata(meta) == "GPL-3.0-only"
    meta["License-Expression"] = "Apache-2.0 OR MIT"
    assert licenses.from_metadata(meta) == "Apache-2.0 OR MIT"


def test_license_recorded_on_snippets_follows_the_license_file(library: Library, upstream) -> None:
    sources.add(library, file_url(Path(upstream.working_tree_dir)))
    refresh(library, validate=False)
    assert {s.source.license for s in library.all()} == {"MIT"}
    commit(upstream, {"LICENSE": LICENSE_TEXTS["Apache-2.0"],
                      "examples/fit_groups.py": "print('relicensed')\n"})
    refresh(library, validate=False)
    script = [s for s in library.all() if s.source.path == "examples/fit_groups.py"][0]
    assert script.source.license == "Apache-2.0"
    assert library.source("survkit").license == "Apache-2.0"


def test_bundled_license_file_names_its_own_license_first() -> None:
    from jupyter_codedistiller.distill import licenses

    bsd = ("Copyright (c) 2001, SciPy Developers.\nRedistribution and use in source and binary forms, with or "
           "without modification, are permitted ...\nNeither the name of the copyright holder nor the names of "
           "its contributors may be used to endorse or promote products derived from this software\n")
    bundled = ("\n\nThis binary distribution also bundles the following software:\n"
               "GNU AFFERO GENERAL PUBLIC LICENSE\nVersion 3, 19 November 2007\n")
    assert licenses.from_text(bsd + bundled) == "BSD-3-Clause"
    assert licenses.from_text(bundled + bsd) == "AGPL-3.0"
    assert licenses.from_name("BSD License") == "unknown", "the classifier does not say which BSD"


@pytest.mark.parametrize(("spec", "kind"), source_cases.ACCEPTED)
def test_classify_names_the_kind_of_every_source(spec: str, kind: str, tmp_path: Path) -> None:
    found = sources.classify(spec, base=tmp_path)
    assert found.kind == kind
    if kind == "local":
        assert found.path == (tmp_path / spec).resolve() and found.url == str(found.path)
    elif spec.startswith("file://"):
        assert found.url == spec and found.path == Path(spec.removeprefix("file://"))
    else:
        assert found.url == spec and found.path is None


@pytest.mark.parametrize(("spec", "words"), source_cases.REFUSED)
def test_classify_refuses_hostile_sources_in_one_line(spec: str, words: str) -> None:
    with pytest.raises(SourceError) as caught:
        sources.classify(spec)
    assert words in str(caught.value) and "\n" not in str(caught.value)
