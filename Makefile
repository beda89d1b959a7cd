# Everything bootstraps itself: a .venv with pinned packages and generated protobuf code.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
PY := $(VENV)/bin/python
INSTALLED := $(VENV)/.installed
GEN := build/gen
GENERATED := $(GEN)/.generated
PROTOS := $(shell find protos -name '*.proto')
DATA_DIR ?= .local
TYPED := pscommon contracts services workflows pscli

.PHONY: all demo up down clean test test-browser lint fmt typecheck protos manifests

all: $(GENERATED)

$(INSTALLED): requirements.txt requirements-build.txt requirements-dev.txt pyproject.toml
	@command -v $(PYTHON) >/dev/null || { echo "need $(PYTHON) on PATH"; exit 1; }
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements-dev.txt
	$(PY) -m pip install --quiet --disable-pip-version-check --no-deps --no-build-isolation -e .
	echo "$(abspath $(GEN))" > $$($(PY) -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')/carrier_generated.pth
	touch $@

$(GENERATED): $(INSTALLED) $(PROTOS)
	$(PY) -m pscommon.codegen protos $(GEN) --stubs
	touch $@

protos: $(GENERATED)

lint: $(GENERATED)
	$(VENV)/bin/buf lint protos
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/lint-imports

typecheck: $(GENERATED)
	$(VENV)/bin/mypy $(TYPED)

manifests: $(INSTALLED)
	$(PY) deploy/k8s/render.py

fmt: $(INSTALLED)
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

test: lint typecheck
	$(PY) -m pytest

# The portal in headless Chromium (needs a `chromium` binary: apt-get install chromium; skipped without one).
test-browser: $(GENERATED)
	$(PY) -m pytest tests/portal -m browser -rs

up: $(GENERATED)
	$(PY) -m stack up --data-dir $(DATA_DIR)

down: $(INSTALLED)
	$(PY) -m stack down --data-dir $(DATA_DIR)

demo: $(GENERATED)
	$(PY) -m stack up --data-dir $(DATA_DIR)
	$(VENV)/bin/psctl demo

clean:
	-test -x $(PY) && $(PY) -m stack down --data-dir $(DATA_DIR)
	rm -rf $(DATA_DIR) build
