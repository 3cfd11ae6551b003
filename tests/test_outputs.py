"""Captured results: figures and reprs a snippet shows in the real sandbox, how they are kept,
checked, exported and shown (as text and images only)."""

from __future__ import annotations

import io
import os
import struct
import zlib
from pathlib import Path

import pytest

from jupyter_codedistiller import htmlview
from jupyter_codedistiller.cli import main
from jupyter_codedistiller.distill import capture, sources
from jupyter_codedistiller.distill.refresh import refresh
from jupyter_codedistiller.distill.sandbox import SandboxSettings, validate
from jupyter_codedistiller.figures import BadPNG, FigureStore, check_png
from jupyter_codedistiller.library import Library
from jupyter_codedistiller.model import Snippet

from .conftest import make_snippet
from .gitrepos import commit, file_url, make_repo

pytest.importorskip("matplotlib")

KM = """\
import matplotlib.pyplot as plt
from lifelines import KaplanMeierFitter
from lifelines.datasets import load_waltons
df = load_waltons()
ax = plt.subplot(111)
for name, grouped in df.groupby("group"):
    KaplanMeierFitter().fit(grouped["T"], grouped["E"], label=name).plot_survival_function(ax=ax)
plt.title("Survival by group")
plt.show()
df.head()
"""


def png(width: int = 2, height: int = 2) -> bytes:
    """A real RGB PNG built by hand (so the checks are tested without matplotlib)."""
    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))
    raw = b"".join(b"\0" + b"\x10\x20\x30" * width for _ in range(height))
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
            + chunk(b"tEXt", b"Comment\0<script>alert(1)</script>")
            + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))


def stored(library: Library, snippet: Snippet, code: str, **kwargs) -> Snippet:
    library.put(snippet)
    library.set_validation(snippet.id, validate(code, **kwargs), snippet.revision)
    return library.get(snippet.id)


def test_a_kaplan_meier_plot_and_the_final_repr_are_kept(library: Library, capsys) -> None:
    s = stored(library, make_snippet("km"), KM)
    assert s.validation.status == "passed", s.validation.stderr_tail
    figure, = s.validation.figures
    data = library.figures.get(figure.sha256)
    assert data and check_png(data)[1:] == (figure.width, figure.height) == (640, 480)
    result = next(o for o in s.validation.outputs if o.kind == "text")
    assert result.label == "Result" and "miR-137" in result.text  # df.head() as text
    assert main(["why", s.id]) == 0
    printed = capsys.readouterr().out
    assert f"showed   Figure 1: 640x480 PNG, figure {figure.sha256}" in printed and "miR-137" in printed


def test_a_snippet_drawing_ten_figures_stores_four(library: Library) -> None:
    code = ("import matplotlib.pyplot as plt\n"
            "for i in range(10):\n    plt.figure()\n    plt.plot([0, i], [i, 0])\n")
    s = stored(library, make_snippet("ten"), code)
    assert s.validation.status == "passed"
    assert [o.label for o in s.validation.figures] == ["Figure 1", "Figure 2", "Figure 3", "Figure 4"]
    assert len({o.sha256 for o in s.validation.figures}) == 4
    assert len(list(Path(library.figures.root).glob("*/*.png"))) == 4
    assert any("drew 10 figures" in o.text for o in s.validation.outputs if o.kind == "note")


def test_a_figure_shown_and_closed_is_kept() -> None:
    code = ("import matplotlib.pyplot as plt\nplt.plot([1, 2], [2, 1])\nplt.show()\n"
            "plt.close('all')\nprint(plt.get_backend())\n")
    v = validate(code)
    assert v.status == "passed" and v.stdout_tail.strip().lower() == "agg"
    assert len(v.figures) == 1


def test_a_50_mb_figure_is_refused(library: Library) -> None:
    code = (f"import os\nwith open(os.path.join({capture.DIRNAME!r}, 'figure-1.png'), 'wb') as f:\n"
            "    f.write(b'\\x89PNG\\r\\n\\x1a\\n' + b'\\0' * 50_000_000)\n")
    s = stored(library, make_snippet("huge"), code)
    assert s.validation.status == "passed", s.validation.stderr_tail
    assert s.validation.figures == []
    note, = [o.text for o in s.validation.outputs if o.kind == "note"]
    assert note.startswith("figure 1 not kept") and "200,000-byte limit" in note
    assert not Path(library.figures.root).exists() or not any(Path(library.figures.root).rglob("*.png"))


def test_a_forged_or_linked_output_is_not_read(library: Library, tmp_path: Path) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_text("the supervisor's secret")
    code = (f"import os\nd = {capture.DIRNAME!r}\n"
            f"os.symlink({str(secret)!r}, os.path.join(d, 'result.txt'))\n"
            "open(os.path.join(d, 'figure-1.png'), 'wb').write(b'\\x89PNG\\r\\n\\x1a\\nnot really')\n")
    for isolation in ("auto", "none"):
        v = validate(code, settings=SandboxSettings(isolation=isolation))
        if v.status == "skipped" and "throwaway uid cannot read" in (v.reason or ""):
            continue  # as root without namespaces the sandbox refuses to run at all (issue 16.3)
        assert all("secret" not in o.text for o in v.outputs), isolation
        assert v.figures == [] and any("not kept" in o.text for o in v.outputs), isolation


def test_printed_script_is_text_everywhere(library: Library) -> None:
    code = 'print("<script>alert(1)</script>")\n"<img src=x onerror=alert(2)>"\n'
    s = stored(library, make_snippet("xss"), code)
    assert "<script>" in s.validation.stdout_tail
    assert s.validation.outputs[0].text == repr("<img src=x onerror=alert(2)>")
    page = htmlview.snippet_html(s, library.figures) + htmlview.provenance_html(s, library.figures)
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page and "<script>" not in page
    assert "<img src=x" not in page and "&lt;img src=x" in page


def test_png_checks_keep_only_image_chunks() -> None:
    clean, width, height = check_png(png(3, 2))
    assert (width, height) == (3, 2) and b"tEXt" not in clean and b"script" not in clean
    good = png()
    bad_crc = good[:-5] + bytes([good[-5] ^ 1]) + good[-4:]
    for data, why in ((b"GIF89a", "signature"), (bad_crc, "CRC"), (good + b"x", "after the end"),
                      (good[:40], "truncated"), (png(5000, 1), "outside"),
                      (b"\0" * 300_000, "limit")):
        with pytest.raises(BadPNG, match=why):
            check_png(data)
    # image data that inflates to more than the header says (a decompression bomb) is refused
    body = struct.pack(">IIBBBBB", 2, 2, 8, 2, 0, 0, 0)
    def chunk(kind: bytes, b: bytes) -> bytes:
        return struct.pack(">I", len(b)) + kind + b + struct.pack(">I", zlib.crc32(kind + b))
    bomb = (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", body) + chunk(b"IDAT", zlib.compress(b"\0" * 10**6))
            + chunk(b"IEND", b""))
    with pytest.raises(BadPNG, match="does not match"):
        check_png(bomb)


def test_a_figure_survives_export_and_import(library: Library, tmp_path: Path) -> None:
    s = stored(library, make_snippet("km"), KM)
    figure, = s.validation.figures
    out = io.StringIO()
    library.export(out)
    with Library.open(tmp_path / "elsewhere") as other:
        assert other.import_(out.getvalue().splitlines()) == {"added": 1, "updated": 0, "kept": 0}
        again = other.get(s.id)
        assert [o.sha256 for o in again.validation.figures] == [figure.sha256]
        assert other.figures.get(figure.sha256) == library.figures.get(figure.sha256)
    # a figure that is not a PNG is dropped on import, and so is the output naming it
    forged = out.getvalue().replace(next(iter(__import__("json").loads(out.getvalue())["figures"].values()))[:40],
                                    "QUJD" * 10)
    with Library.open(tmp_path / "third") as third:
        third.import_(forged.splitlines())
        assert third.get(s.id).validation.figures == []


def test_an_upgrade_that_changes_the_snippet_replaces_its_outputs(library: Library,
                                                                  tmp_path: Path) -> None:
    plot = "import matplotlib.pyplot as plt\nplt.plot([1, 2, 3], [{}])\nplt.title('curve')\n"
    repo = make_repo(tmp_path / "lab" / "plots", {"examples/curve.py": plot.format("1, 4, 9")})
    sources.add(library, file_url(Path(repo.working_tree_dir)))
    refresh(library)
    first, = library.all()
    old, = first.validation.figures
    commit(repo, {"examples/curve.py": plot.format("9, 4, 1")})
    refresh(library)
    second, = library.all()
    assert second.revision == first.revision + 1 and second.validation.status == "passed"
    new, = second.validation.figures
    assert new.sha256 != old.sha256 and library.figures.has(new.sha256)
    assert library.figures.has(old.sha256)  # fresh files are spared (a run may be storing it)
    assert library.prune_figures(min_age=0) == 1
    assert not library.figures.has(old.sha256) and library.figures.has(new.sha256)


def test_figure_store_names_are_digests_only(tmp_path: Path) -> None:
    store = FigureStore(tmp_path)
    digest = store.put(check_png(png())[0])
    assert store.get(digest) and store.has(digest)
    for bad in ("../../etc/passwd", "A" * 64, digest[:10]):
        assert store.get(bad) is None and not store.has(bad)
    os.chmod(store.path(digest), 0o600)


def test_distill_show_and_why_show_the_figure_and_results_inline(library: Library) -> None:
    from IPython.core.interactiveshell import InteractiveShell

    from .test_magics import run

    s = stored(library, make_snippet("km"), KM.replace("df.head()", 'print("<script>alert(1)</script>")\ndf.head()'))
    figure, = s.validation.figures
    import base64

    inline = "data:image/png;base64," + base64.b64encode(library.figures.get(figure.sha256)).decode()
    shell = InteractiveShell.instance()
    shell.extension_manager.load_extension("jupyter_codedistiller")
    try:
        shell.magics_manager.registry["DistillMagics"].widgets = "off"
        for command in (f"show {s.id}", f"why {s.id}"):
            html = run(shell, command)[0]["text/html"]
            assert f'src="{inline}"' in html, command
            assert "miR-137" in html and "<script>" not in html and "&lt;script&gt;" in html
    finally:
        shell.extension_manager.unload_extension("jupyter_codedistiller")
