"""Out of the box: a fresh library home gets the default sources, and the demo notebooks run clean.

Needs the ``demo`` extra (lifelines, scipy, statsmodels, ...), which ``make test`` installs.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

from jupyter_codedistiller.distill.defaults import CURATED, ensure_default_sources, installed_curated
from jupyter_codedistiller.library import Library

NOTEBOOKS = Path(__file__).resolve().parent.parent / "notebooks"
DEMO = ("lifelines", "scipy", "statsmodels")
# The daemon's first pass over the eleven default sources takes minutes on a loaded machine.
pytestmark = pytest.mark.timeout(1500)


@pytest.fixture(scope="module")
def default_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh library home built the way a new user's is: default sources, then the daemon's first pass."""
    missing = [name for name in DEMO if name not in dict(installed_curated())]
    if missing:
        pytest.fail(f"the demo extra is not installed (missing {', '.join(missing)}): pip install -e '.[demo]'")
    home = tmp_path_factory.mktemp("default-home")
    with Library.open(home) as lib:
        assert lib.building() is None
        added = ensure_default_sources(lib, per_pass=3)
        assert [s.id for s in added] == [name for name, _ in installed_curated()]
        assert ensure_default_sources(lib) == [], "only an empty library gets the defaults"
        waiting = lib.building()
        assert waiting and waiting["sources_waiting"] == len(added)
    env = {**os.environ, "CODEDISTILLER_HOME": str(home)}
    done = subprocess.run([sys.executable, "-m", "jupyter_codedistiller.cli", "daemon", "--once", "--timeout", "60"],
                          capture_output=True, text=True, env=env, timeout=1400)
    assert done.returncode == 0, done.stderr
    return home


def test_fresh_home_yields_validated_snippets_for_three_packages(default_home: Path) -> None:
    with Library.open(default_home) as lib:
        rows = lib._conn.execute(
            "SELECT package, count(*) FROM snippets WHERE validation_status = 'passed' GROUP BY package"
        ).fetchall()
        passed = {pkg: n for pkg, n in rows if pkg}
        assert len(passed) >= 3, passed
        assert set(passed) <= set(CURATED)
        st = lib.status()
        assert all(s.state == "ok" for s in st.sources), st.sources
        hit = lib.search("kaplan meier", package="lifelines")[0].snippet
        assert "KaplanMeierFitter" in hit.code and hit.source.license == "MIT"
        assert lib.building()["pending"] > 0, "big packages are validated over several passes"
    out = subprocess.run([sys.executable, "-m", "jupyter_codedistiller.cli", "search", "kaplan", "meier"],
                         capture_output=True, text=True, env={**os.environ, "CODEDISTILLER_HOME": str(default_home)},
                         timeout=60)
    assert out.stdout.startswith("The library is still being built:")


@pytest.mark.parametrize("name", ["survival_by_group.ipynb", "differential_expression.ipynb"])
def test_demo_notebook_runs_clean_and_ends_with_an_audit(default_home: Path, name: str,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CODEDISTILLER_HOME", str(default_home))
    nb = nbformat.read(NOTEBOOKS / name, as_version=4)
    NotebookClient(nb, kernel_name="python3", timeout=300, resources={"metadata": {"path": str(NOTEBOOKS)}}).execute()
    errors = [o for c in nb.cells for o in c.get("outputs", []) if o.get("output_type") == "error"]
    assert errors == []
    uses = [c.source for c in nb.cells if c.cell_type == "code" and c.source.startswith("%distill search")]
    assert uses, "the notebook searches the library"
    audit = nb.cells[-1]
    assert audit.source.strip() == "%distill audit"
    text = audit.outputs[0]["data"]["text/plain"]
    assert "## Methods" in text and "from the library: 2" in text and "unknown markers: 0" in text
