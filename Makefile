# The two commands of the README:
#   make lab    set up, build the default library, start JupyterLab with the demo notebook
#   make test   set up and run every test (ruff, pytest incl. kernel, server and browser tests)
# Both work on a fresh machine: they create .venv and install what they need.

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
LABSRC := $(wildcard labextension/src/*.ts labextension/style/* labextension/schema/*) labextension/package.json
PORT   ?= 8888

.PHONY: lab test install browser lint check-generated generated clean screenshots

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(STAMP): $(BIN)/python pyproject.toml $(LABSRC)
	$(BIN)/python -m pip install --quiet -e '.[test,demo]'
	touch $(STAMP)

install: $(STAMP)

browser:
	@command -v chromium >/dev/null 2>&1 || { \
	  echo "installing Debian's chromium for the browser tests"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; }

lint: install
	$(BIN)/ruff check .

# openapi.yaml's components and labextension/src/records.ts are derived from the declared
# records (model.py, server/bodies.py): `make generated` rewrites them, the check fails on a diff.
generated: install
	$(BIN)/python -m jupyter_codedistiller.schemafiles --write

check-generated: install
	$(BIN)/python -m jupyter_codedistiller.schemafiles --check

test: install browser lint check-generated
	$(BIN)/python -m pytest

# The README's pictures of the side panel (250 and 400 px), taken by the browser test.
screenshots: install browser
	UPDATE_SCREENSHOTS=1 $(BIN)/python -m pytest -q tests/test_ui.py -k screenshot

# JupyterLab starts the background distiller, which gives an empty library the default
# sources (the curated packages installed by the demo extra) and builds it, quickest first.
lab: install
	cd notebooks && exec ../$(BIN)/jupyter lab survival_by_group.ipynb --ip=127.0.0.1 --port=$(PORT) \
	  $(if $(filter 0,$(shell id -u)),--allow-root,)

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
