"""The side panel in a real browser, and the TypeScript unit tests.

JupyterLab runs on 127.0.0.1 with a fixture library; Debian's chromium,
driven by the PyPI ``playwright`` package through its executable path (no
browser download), opens the panel, searches, inserts a snippet into a
notebook, flags and approves snippets, and checks that repository text is
shown as text; in a notebook running on a real kernel, the Insert button of
``%distill search``'s widgets inserts a cell. A Kaplan-Meier snippet is validated by the real
sandbox, so its card shows the figure the sandbox saved. Screenshots go to ``ui-tests/output/``;
with ``UPDATE_SCREENSHOTS=1`` (``make screenshots``) the panel screenshots at 250 and 400 px
replace ``docs/panel-250.png`` and ``docs/panel-400.png``.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import nbformat
import pytest

from jupyter_codedistiller.distill.sandbox import validate
from jupyter_codedistiller.library import Library
from jupyter_codedistiller.model import RegisteredSource
from jupyter_codedistiller.provenance import cell_metadata, cell_source, parse_marker

from .conftest import make_snippet

ROOT = Path(__file__).resolve().parent.parent
LABEXTENSION = ROOT / "labextension"
OUTPUT = ROOT / "ui-tests" / "output"
CHROMIUM = os.environ.get("CODEDISTILLER_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--disable-quic",
    "--disable-sync",
    "--disable-dev-shm-usage",
]
XSS_TITLE = "Volcano <img src=x onerror=alert(1)> plot"
COX = """from lifelines import CoxPHFitter
from lifelines.datasets import load_rossi
df = load_rossi()
cph = CoxPHFitter().fit(df, duration_col="week", event_col="arrest")
cph.print_summary()
"""
LOGRANK = """from lifelines.datasets import load_waltons
from lifelines.statistics import logrank_test
df = load_waltons()
a, b = df[df.group == "control"], df[df.group == "miR-137"]
result = logrank_test(a["T"], b["T"], event_observed_A=a["E"], event_observed_B=b["E"])
print(result.p_value)
"""
VOLCANO = """import matplotlib.pyplot as plt
import numpy as np
rng = np.random.default_rng(0)
log2fc, p = rng.normal(0, 2, 500), rng.uniform(0, 1, 500)
plt.scatter(log2fc, -np.log10(p), s=4)
plt.xlabel("log2 fold change")
"""
KM_PLOT = """import matplotlib.pyplot as plt
from lifelines import KaplanMeierFitter
from lifelines.datasets import load_waltons
df = load_waltons()
ax = plt.subplot(111)
for name, grouped in df.groupby("group"):
    KaplanMeierFitter().fit(grouped["T"], grouped["E"], label=name).plot(ax=ax)
plt.title("Waltons by group")
df.head()
"""
TIMEOUT_MS = 60_000
WIDGET_QUERY = "log-rank test"  # finds the log-rank snippet only
PANEL = "#jp-codedistiller-panel"


def _unavailable(reason: str) -> None:
    """Fail in CI (where the browser test must run), skip on a developer's machine."""
    if os.environ.get("CI"):
        pytest.fail(f"{reason} (the browser test must run in CI; see .ci/run)")
    pytest.skip(reason)


# ---------------------------------------------------------------- TypeScript unit tests


def test_typescript_unit_tests_pass() -> None:
    """The API client and model tests of the labextension, run by node's test runner."""
    npm = shutil.which("npm")
    if npm is None or not (LABEXTENSION / "node_modules").is_dir():
        _unavailable("npm or labextension/node_modules missing; `pip install -e .` installs them")
    out = subprocess.run([npm, "test", "--silent"], cwd=LABEXTENSION, capture_output=True,
                         text=True, timeout=300, check=False)
    assert out.returncode == 0, out.stdout[-4000:] + out.stderr[-2000:]
    summary = {line.split()[1]: int(line.split()[2]) for line in out.stdout.splitlines()
               if line.startswith("# ") and len(line.split()) == 3 and line.split()[2].isdigit()}
    assert summary.get("fail") == 0 and summary.get("pass", 0) >= 10, out.stdout[-2000:]


# ---------------------------------------------------------------- JupyterLab with a fixture library


@dataclass
class Lab:
    url: str
    token: str
    root: Path
    home: Path
    ids: dict[str, str]

    def api(self, path: str) -> Any:
        request = urllib.request.Request(
            f"{self.url}codedistiller/api/{path}", headers={"Authorization": f"token {self.token}"}
        )
        with urllib.request.urlopen(request, timeout=30) as response:
            return json.loads(response.read())


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_until_up(url: str, token: str, proc: subprocess.Popen, log: Path) -> None:
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError("JupyterLab exited:\n" + log.read_text()[-3000:])
        try:
            request = urllib.request.Request(f"{url}codedistiller/api/status",
                                             headers={"Authorization": f"token {token}"})
            with urllib.request.urlopen(request, timeout=5) as response:
                if response.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.5)
    raise RuntimeError("JupyterLab did not answer within 90 s:\n" + log.read_text()[-3000:])


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    if not (ROOT / "jupyter_codedistiller" / "labextension" / "package.json").is_file():
        _unavailable("the labextension is not built; run `pip install -e .`")
    base = tmp_path_factory.mktemp("ui")
    home, root = base / "home", base / "root"
    root.mkdir()
    ids = {}
    with Library.open(home) as lib:
        for name, kwargs in {
            "km": {},
            "logrank": {"title": "Log-rank test between treatment arms", "code": LOGRANK,
                        "summary": "Compare survival of two groups with lifelines."},
            "cox": {"title": "Cox proportional hazards regression", "code": COX,
                    "summary": "Survival regression on covariates.", "origin": "generated",
                    "model": "some-llm", "validation": "skipped"},
            "xss": {"title": XSS_TITLE, "code": VOLCANO, "package": "matplotlib", "tags": ["rna-seq"],
                    "summary": "<script>alert(2)</script> of differential expression"},
        }.items():
            ids[name] = lib.put(make_snippet(name, **kwargs)).id
        ids["kmplot"] = lib.put(make_snippet("kmplot", title="Kaplan-Meier curves per group",
                                             code=KM_PLOT, summary="One curve per group, drawn "
                                             "with lifelines.")).id
        drawn = validate(KM_PLOT)  # the real sandbox: the figure is the one it saved
        assert drawn.status == "passed" and drawn.figures, drawn.stderr_tail
        lib.set_validation(ids["kmplot"], drawn, 1)
    nb = nbformat.v4.new_notebook()
    nb.cells.append(nbformat.v4.new_code_cell("x = 1"))
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3",
                                 "language": "python"}
    nbformat.write(nb, root / "analysis.ipynb")
    widgets_nb = nbformat.v4.new_notebook()
    widgets_nb.cells.append(nbformat.v4.new_code_cell(
        f"%load_ext jupyter_codedistiller\n%distill search {WIDGET_QUERY}"))
    widgets_nb.metadata["kernelspec"] = nb.metadata["kernelspec"]
    nbformat.write(widgets_nb, root / "widgets.ipynb")

    port, token = _free_port(), "ui-test-token"
    env = dict(os.environ)
    env.update({
        "CODEDISTILLER_HOME": str(home),
        "CODEDISTILLER_USER": "ui-tester",
        "JUPYTER_CONFIG_DIR": str(base / "config"),
        "JUPYTER_RUNTIME_DIR": str(base / "runtime"),
        "JUPYTER_DATA_DIR": str(base / "data"),
        "JUPYTER_PLATFORM_DIRS": "1",
    })
    news = base / "settings" / "@jupyterlab" / "apputils-extension" / "notification.jupyterlab-settings"
    news.parent.mkdir(parents=True)
    news.write_text(json.dumps({"fetchNews": "false", "checkForUpdates": False}))
    # Serve this tree's build of the extension ahead of whatever copy the environment holds.
    built = ROOT / "jupyter_codedistiller" / "labextension"
    labextensions = base / "labextensions"
    labextensions.mkdir()
    (labextensions / json.loads((LABEXTENSION / "package.json").read_text())["name"]).symlink_to(built)
    log = base / "lab.log"
    command = [
        sys.executable, "-m", "jupyterlab",
        f"--LabApp.extra_labextensions_path={labextensions}",
        "--allow-root", "--no-browser", "--ip=127.0.0.1", f"--port={port}",
        "--ServerApp.port_retries=0", "--ServerApp.open_browser=False",
        f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={root}",
        f"--CodeDistiller.home={home}", "--CodeDistiller.daemon=False", "--LabApp.expose_app_in_browser=True",
        f"--LabApp.user_settings_dir={base / 'settings'}",
        f"--LabApp.workspaces_dir={base / 'workspaces'}",
    ]
    with open(log, "wb") as log_file:
        proc = subprocess.Popen(command, stdout=log_file, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, env=env, cwd=root,
                                start_new_session=True)
    url = f"http://127.0.0.1:{port}/"
    try:
        _wait_until_up(url, token, proc, log)
        entry = json.loads((built / "package.json").read_text())["jupyterlab"]["_build"]["load"]
        with urllib.request.urlopen(f"{url}lab?token={token}", timeout=60) as response:
            assert entry in response.read().decode(), "JupyterLab does not load this tree's build"
        yield Lab(url=url, token=token, root=root, home=home, ids=ids)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


@pytest.fixture(scope="module")
def page(lab: Lab, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    if not Path(CHROMIUM).is_file():
        _unavailable(f"no chromium at {CHROMIUM}; apt-get install chromium")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _unavailable("the playwright package is not installed (pip install -e '.[test]')")
    OUTPUT.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as p:
        context = p.chromium.launch_persistent_context(
            str(tmp_path_factory.mktemp("chromium-profile")),
            executable_path=CHROMIUM,
            headless=True,
            args=CHROMIUM_ARGS,
            viewport={"width": 1400, "height": 900},
        )
        page = context.pages[0] if context.pages else context.new_page()
        page.set_default_timeout(TIMEOUT_MS)
        page.dialogs_seen = []  # browser alert/confirm dialogs: the XSS test wants none
        page.on("dialog", lambda d: (page.dialogs_seen.append(d.message), d.dismiss()))
        page.console_errors = []
        page.on("console", lambda m: m.type == "error" and page.console_errors.append(m.text))
        page.goto(f"{lab.url}lab/tree/analysis.ipynb?token={lab.token}")
        page.wait_for_function("() => window.jupyterapp && window.jupyterapp.shell")
        page.wait_for_selector(".jp-Notebook .jp-Cell", state="attached")
        try:
            yield page
        finally:
            page.screenshot(path=str(OUTPUT / "lab.png"))
            context.close()


def _search(page: Any, text: str) -> Any:
    """Open the panel with the keyboard shortcut, type ``text`` and wait for its answer."""
    page.locator(".jp-Notebook").first.click()
    page.keyboard.press("Escape")
    page.keyboard.press("Control+Alt+d")
    box = page.locator(f"{PANEL} .jp-codedistiller-search")
    box.wait_for(state="visible")
    assert page.evaluate("() => document.activeElement.classList.contains('jp-codedistiller-search')")
    box.fill("")
    page.evaluate("() => { delete document.querySelector('#jp-codedistiller-panel').dataset.query; }")
    box.press_sequentially(text, delay=20)  # search as you type: no Enter
    page.wait_for_function(
        "q => { const p = document.querySelector('#jp-codedistiller-panel');"
        " return p.dataset.query === q && !p.dataset.searching; }",
        arg=text,
    )
    return page.locator(f"{PANEL} .jp-codedistiller-result")


def _result(page: Any, snippet_id: str) -> Any:
    return page.locator(f'{PANEL} .jp-codedistiller-result[data-snippet-id="{snippet_id}"]')


def test_search_and_insert_below_writes_source_and_metadata(lab: Lab, page: Any) -> None:
    results = _search(page, "kaplan meier")
    assert results.count() >= 1
    km = _result(page, lab.ids["km"])
    km.wait_for()
    assert km.locator(".jp-codedistiller-title").text_content() == (
        "Kaplan-Meier fit by treatment group"
    )
    labels = km.locator(".jp-codedistiller-badge").all_text_contents()
    assert labels[0].startswith("passed") and "unreviewed" in labels and "verbatim" in labels
    assert km.locator(".jp-codedistiller-code span").count() > 0, "code is syntax-highlighted"
    assert "KaplanMeierFitter" in km.locator(".jp-codedistiller-code").text_content()
    page.locator(f"{PANEL}").screenshot(path=str(OUTPUT / "panel-search.png"))

    page.locator(".jp-Notebook .jp-Cell").first.click()
    km.get_by_role("button", name="Insert below").click()
    page.wait_for_function("() => window.jupyterapp.shell.currentWidget"
                           " .content.model.cells.length === 2")
    cell = page.evaluate(
        "() => { const c = window.jupyterapp.shell.currentWidget.content.model.cells.get(1);"
        " return {type: c.type, source: c.sharedModel.getSource(),"
        " meta: c.getMetadata('codedistiller')}; }"
    )
    detail = lab.api(f"snippets/{lab.ids['km']}")
    with Library.open(lab.home) as lib:
        expected_source = cell_source(lib.get(lab.ids["km"]))
    assert cell["type"] == "code"
    assert cell["source"] == detail["cell_source"] == expected_source
    assert cell["source"].splitlines()[0] == detail["marker"]
    expected_meta = {k: v for k, v in detail["cell_metadata"].items() if k != "inserted"}
    assert {k: v for k, v in cell["meta"].items() if k != "inserted"} == expected_meta

    badge = page.locator(".jp-Notebook .jp-Cell.jp-codedistiller-cell")
    badge.wait_for()
    assert badge.count() == 1
    assert badge.get_attribute("data-codedistiller") == f"library {lab.ids['km']} rev 1"
    page.locator(".jp-Notebook .jp-Cell").nth(1).screenshot(path=str(OUTPUT / "inserted-cell.png"))

    page.evaluate("() => window.jupyterapp.commands.execute('docmanager:save')")
    path = lab.root / "analysis.ipynb"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        saved = nbformat.read(path, as_version=4)
        if len(saved.cells) == 2:
            break
        time.sleep(0.2)
    assert saved.cells[1].source == expected_source
    assert saved.cells[1].metadata["codedistiller"]["id"] == lab.ids["km"]
    assert saved.cells[1].metadata["codedistiller"]["code_sha256"] == expected_meta["code_sha256"]


def test_flag_dialog_raises_a_flag_and_the_badge_shows(lab: Lab, page: Any) -> None:
    _search(page, "kaplan meier")
    km = _result(page, lab.ids["km"])
    km.get_by_role("button", name="Flag").click()
    dialog = page.locator(".jp-Dialog")
    dialog.wait_for()
    dialog.locator("select.jp-codedistiller-flag-kind").select_option("incorrect")
    dialog.locator("textarea.jp-codedistiller-flag-reason").fill("uses the wrong event column")
    dialog.locator("button.jp-mod-accept").click()
    flagged = km.locator(".jp-codedistiller-badge-flags")
    flagged.wait_for()
    assert flagged.text_content() == "flagged (1)"
    assert "jp-codedistiller-badge-bad" in flagged.get_attribute("class")
    with Library.open(lab.home) as lib:
        flags = lib.get(lab.ids["km"]).open_flags
    assert [(f.kind, f.reason, f.by) for f in flags] == [
        ("incorrect", "uses the wrong event column", "ui-tester")
    ]

    # A flagged snippet needs --force in the magic: the panel asks before inserting.
    cells = "() => window.jupyterapp.shell.currentWidget.content.model.cells.length"
    before = page.evaluate(cells)
    km.get_by_role("button", name="Insert below").click()
    dialog = page.locator(".jp-Dialog")
    dialog.wait_for()
    assert "open flag" in dialog.text_content()
    dialog.get_by_role("button", name="Cancel").click()
    dialog.wait_for(state="detached")
    assert page.evaluate(cells) == before


def test_approve_updates_the_review_badge(lab: Lab, page: Any) -> None:
    _search(page, "cox hazards")
    cox = _result(page, lab.ids["cox"])
    assert "LLM-generated" in cox.locator(".jp-codedistiller-badge").all_text_contents()
    cox.get_by_role("button", name="Approve").click()
    dialog = page.locator(".jp-Dialog")
    dialog.wait_for()
    dialog.locator("textarea").fill("read and ran it")
    dialog.locator("button.jp-mod-accept").click()
    page.wait_for_function(
        "id => [...document.querySelectorAll(`[data-snippet-id='${id}'] .jp-codedistiller-badge`)]"
        ".some(b => b.textContent === 'approved')",
        arg=lab.ids["cox"],
    )
    with Library.open(lab.home) as lib:
        review = lib.get(lab.ids["cox"]).review
    assert review.status == "approved" and review.history[-1].note == "read and ran it"


def test_repository_text_is_shown_as_text(lab: Lab, page: Any) -> None:
    _search(page, "volcano")
    xss = _result(page, lab.ids["xss"])
    xss.wait_for()
    assert xss.locator(".jp-codedistiller-title").text_content() == XSS_TITLE
    assert "<script>alert(2)</script>" in xss.locator(".jp-codedistiller-summary").text_content()
    xss.get_by_role("button", name="Details").click()
    why = xss.locator(".jp-codedistiller-why")
    why.wait_for()
    assert "0123456789abcdef0123456789abcdef01234567" in why.text_content()
    link = why.locator("a.jp-codedistiller-link")
    assert link.get_attribute("href").startswith(
        "https://example.org/lab/survival-examples/blob/0123456789abcdef0123456789abcdef01234567/"
        "examples/xss.py"
    )
    assert page.locator(f"{PANEL} img, {PANEL} script").count() == 0
    page.wait_for_timeout(300)
    assert page.dialogs_seen == []
    ours = [e for e in page.console_errors if "codedistiller" in e.lower()]
    assert ours == [], ours

    status = page.locator(f"{PANEL} .jp-codedistiller-status").text_content()
    assert status.startswith("5 snippets · 1 flagged")
    assert status == lab.api("status")["status_line"], "the panel shows the server's status line"


def _set_panel_width(page: Any, width: int) -> None:
    """Drag the left sidebar's edge until the panel is ``width`` CSS pixels wide."""
    handle = page.locator("#jp-main-split-panel > .lm-SplitPanel-handle").first
    for _ in range(4):
        now = page.locator(PANEL).bounding_box()["width"]
        if abs(now - width) <= 2:
            return
        box = handle.bounding_box()
        x, y = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
        page.mouse.move(x, y)
        page.mouse.down()
        page.mouse.move(x + width - now, y, steps=5)
        page.mouse.up()
    assert abs(page.locator(PANEL).bounding_box()["width"] - width) <= 2


def _loaded(page: Any, image: Any) -> int:
    """Wait for an <img> to finish loading; its natural width."""
    image.wait_for()
    page.wait_for_function("img => img.complete && img.naturalWidth > 0", arg=image.element_handle())
    return image.evaluate("img => img.naturalWidth")


def test_a_card_shows_the_sandbox_figure_and_enter_inserts_it(lab: Lab, page: Any) -> None:
    _set_panel_width(page, 250)
    _search(page, "kaplan meier curves")
    card = _result(page, lab.ids["kmplot"])
    card.wait_for()
    with Library.open(lab.home) as lib:
        snippet = lib.get(lab.ids["kmplot"])
    figure, = snippet.validation.figures
    assert _loaded(page, card.locator("img.jp-codedistiller-thumb")) == figure.width == 640
    title = card.locator(".jp-codedistiller-title")
    assert title.evaluate("t => t.getBoundingClientRect().height") < 24, "the title is one line"
    code = card.locator(".jp-codedistiller-code")
    assert code.evaluate("c => c.textContent.split('\\n').length") == 3
    assert card.evaluate("c => c.scrollWidth <= c.clientWidth + 1"), "nothing sticks out of the card"
    page.locator(PANEL).screenshot(path=str(OUTPUT / "panel-250-results.png"))

    card.get_by_role("button", name="Details").click()
    details = card.locator(".jp-codedistiller-why")
    details.wait_for()
    assert _loaded(page, details.locator("img.jp-codedistiller-figure")) == 640
    assert "miR-137" in details.locator(".jp-codedistiller-output").first.text_content()
    assert "KaplanMeierFitter().fit" in details.locator(".jp-codedistiller-fullcode").text_content()
    table = details.locator("table.jp-codedistiller-provenance")
    assert table.evaluate("t => t.scrollWidth <= t.parentElement.clientWidth + 1"), "the table fits"
    assert details.locator(".jp-codedistiller-section-title", has_text="History").count() == 1
    page.locator(PANEL).screenshot(path=str(OUTPUT / "panel-250-details.png"))
    shown = page.request.get(f"{lab.url}codedistiller/api/figures/{figure.sha256}",
                             headers={"Authorization": f"token {lab.token}"})
    assert shown.status == 200 and shown.headers["content-type"] == "image/png"

    cells = "() => window.jupyterapp.shell.currentWidget.content.model.cells.length"
    page.locator(".jp-Notebook .jp-Cell").first.click()
    before = page.evaluate(cells)
    card.focus()
    page.keyboard.press("Enter")  # a passed snippet: inserted with no question asked
    page.wait_for_function(f"n => ({cells})() === n + 1", arg=before)
    sources = page.evaluate("() => Array.from(window.jupyterapp.shell.currentWidget.content.model"
                            ".cells, c => c.sharedModel.getSource())")
    assert sum(src == cell_source(snippet) for src in sources) == 1
    # arrows move between cards
    _search(page, "kaplan meier")
    first = page.locator(f"{PANEL} .jp-codedistiller-result").first
    page.locator(f"{PANEL} .jp-codedistiller-search").press("ArrowDown")
    assert first.evaluate("c => c === document.activeElement")
    page.keyboard.press("ArrowDown")
    second = page.locator(f"{PANEL} .jp-codedistiller-result").nth(1)
    assert second.evaluate("c => c === document.activeElement")


def test_unvalidated_code_asks_before_it_is_inserted(lab: Lab, page: Any) -> None:
    _search(page, "cox hazards")
    cox = _result(page, lab.ids["cox"])
    cells = "() => window.jupyterapp.shell.currentWidget.content.model.cells.length"
    before = page.evaluate(cells)
    cox.get_by_role("button", name="Insert below").click()
    dialog = page.locator(".jp-Dialog")
    dialog.wait_for()
    detail = lab.api(f"snippets/{lab.ids['cox']}")
    assert detail["validation_note"] and detail["validation_note"] in dialog.text_content()
    dialog.get_by_role("button", name="Cancel").click()
    dialog.wait_for(state="detached")
    assert page.evaluate(cells) == before

    # The details show the server's phrases as sent: validation note, provenance, history.
    cox.get_by_role("button", name="Details").click()
    details = cox.locator(".jp-codedistiller-why")
    details.wait_for()
    assert details.locator(".jp-codedistiller-caution").text_content() == detail["validation_note"]
    rows = details.locator("table.jp-codedistiller-provenance tr")
    assert [(rows.nth(i).locator("th").text_content(), rows.nth(i).locator("td").text_content())
            for i in range(rows.count())] == [(r["label"], r["text"]) for r in detail["provenance"]]
    history = details.locator("ol.jp-codedistiller-history li").all_text_contents()
    assert history == [f"{e['when'][:10]} {e['text']}" for e in detail["history"]]
    assert any("read and ran it" in e["text"] for e in detail["history"]), "the approval is there"


def test_empty_state_says_what_to_try(lab: Lab, page: Any) -> None:
    _search(page, "zebrafish morphometry")
    empty = page.locator(f"{PANEL} .jp-codedistiller-empty")
    empty.wait_for()
    assert "Nothing matches" in empty.text_content() and "kaplan meier" in empty.text_content()

    # While the library is still being built, the panel says so in the server's words.
    with Library.open(lab.home) as lib:
        lib.add_source(RegisteredSource(id="waiting", kind="git", url="https://example.org/lab/w.git"))
    try:
        _search(page, "zebrafish morphometrics")
        note = lab.api("search?q=zebrafish+morphometrics")["building_note"]
        assert note.startswith("The library is still being built")
        assert empty.locator("p").first.text_content() == note
    finally:
        with Library.open(lab.home) as lib:
            lib.remove_source("waiting")


def test_screenshot_of_the_panel(lab: Lab, page: Any) -> None:
    """The pictures in the README: the panel at 250 px (results) and 400 px (a result's details),
    written by ``make screenshots`` (``UPDATE_SCREENSHOTS=1``)."""
    for width in (250, 400):
        _set_panel_width(page, width)
        results = _search(page, "kaplan meier")
        assert results.count() >= 2
        card = _result(page, lab.ids["kmplot"])
        _loaded(page, card.locator("img.jp-codedistiller-thumb"))
        if width == 400:
            card.get_by_role("button", name="Details").click()
            _loaded(page, card.locator("img.jp-codedistiller-figure"))
        page.mouse.move(900, 600)  # no hover highlight in the picture
        shot = OUTPUT / f"panel-{width}.png"
        page.locator(PANEL).screenshot(path=str(shot))
        assert shot.stat().st_size > 10_000
        if os.environ.get("UPDATE_SCREENSHOTS") == "1":
            shutil.copyfile(shot, ROOT / "docs" / f"panel-{width}.png")


def open_widgets_notebook(page: Any) -> str:
    """Open widgets.ipynb and wait for its kernel; returns the JS expression of its panel."""
    current = "window.jupyterapp.shell.currentWidget"
    page.evaluate("() => window.jupyterapp.commands.execute('docmanager:open',"
                  " {path: 'widgets.ipynb'})")
    page.wait_for_function(
        f"() => {{ const w = {current}; const k = w && w.context && w.context.path === 'widgets.ipynb'"
        " && w.sessionContext.session && w.sessionContext.session.kernel;"
        " return !!k && k.connectionStatus === 'connected' && k.status === 'idle'; }"
    )
    return current


def run_cell(page: Any, current: str, index: int) -> None:
    page.evaluate(f"() => {{ {current}.content.activeCellIndex = {index};"
                  " return window.jupyterapp.commands.execute('notebook:run-cell'); }")


def test_widget_insert_button_inserts_the_servers_cell_below(lab: Lab, page: Any) -> None:
    """``%distill search`` on the venv's kernel; a click on a result's Insert fetches the
    snippet from the server API and inserts its marker, code and provenance record."""
    current = open_widgets_notebook(page)
    cells = f"() => {current}.content.model.cells.length"
    assert page.evaluate(cells) == 1
    run_cell(page, current, 0)
    notebook = page.locator(".jp-NotebookPanel:visible")
    logrank = lab.ids["logrank"]
    offer = notebook.locator(f'.jp-codedistiller-insert[data-snippet-id="{logrank}"]')
    offer.wait_for()  # the widget manager rendered the results view and its offers
    assert offer.get_attribute("data-codedistiller-insert") == "offered"
    page.wait_for_timeout(500)
    assert page.evaluate(cells) == 1  # a search, and its rendered offers, insert nothing

    offer.locator("button.jp-codedistiller-insert-button").click()
    page.wait_for_function(f"() => {current}.content.model.cells.length === 2")
    done = notebook.locator(f'.jp-codedistiller-insert[data-codedistiller-insert="inserted"]'
                            f'[data-snippet-id="{logrank}"]')
    done.wait_for()
    assert done.locator(".jp-codedistiller-insert-status").text_content() == (
        "Inserted below: Log-rank test between treatment arms.")
    cell = page.evaluate(
        f"() => {{ const c = {current}.content.model.cells.get(1);"
        " return {type: c.type, source: c.sharedModel.getSource(),"
        " meta: c.getMetadata('codedistiller')}; }"
    )
    detail = lab.api(f"snippets/{lab.ids['logrank']}")
    with Library.open(lab.home) as lib:
        snippet = lib.get(lab.ids["logrank"])
    assert cell["type"] == "code"
    assert cell["source"] == cell_source(snippet) == detail["cell_source"]
    assert cell["source"].splitlines()[0] == detail["marker"]
    assert parse_marker(cell["source"].splitlines()[0])["id"] == snippet.id
    expected = cell_metadata(snippet)
    assert {k: v for k, v in cell["meta"].items() if k != "inserted"} == {
        k: v for k, v in expected.items() if k != "inserted"}
    assert notebook.locator(".jp-Cell.jp-codedistiller-cell").count() == 1
    notebook.screenshot(path=str(OUTPUT / "widget-insert.png"))

    # Reloading the page restores the notebook and the widgets from the live kernel: the
    # offer renders again, and without a click nothing is inserted. Save all first: a
    # kernel's language_info makes its notebook dirty.
    page.evaluate("() => window.jupyterapp.commands.execute('docmanager:save-all')")
    page.wait_for_function("() => !window.jupyterapp.status.isDirty")
    page.reload()
    page.wait_for_function(
        f"() => {{ const w = window.jupyterapp && {current};"
        " return !!w && !!w.context && w.context.path === 'widgets.ipynb'; }"
    )
    again = page.locator(f'.jp-NotebookPanel:visible .jp-codedistiller-insert[data-snippet-id="{logrank}"]')
    again.wait_for()
    assert again.get_attribute("data-codedistiller-insert") == "offered"
    page.wait_for_timeout(500)
    assert page.evaluate(cells) == 2
    page.evaluate(f"() => {current}.sessionContext.shutdown()")
