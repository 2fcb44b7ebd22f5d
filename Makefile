# Two commands for a newcomer: `make demo` and `make test`. Both install into .venv first.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip
# torch first, pinned: an unpinned torch resolves to a multi-GB CUDA build.
TORCH  ?= torch==2.13.0
DEMO_OUT ?= runs/demo

.PHONY: install install-dev demo test docs lint clean

$(VENV)/bin/python:
	$(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip

$(VENV)/.installed: $(VENV)/bin/python pyproject.toml
	$(PIP) install -q "$(TORCH)"
	$(PIP) install -q -e ".[app,export]"
	touch $@

$(VENV)/.installed-dev: $(VENV)/.installed
	$(PIP) install -q -e ".[dev,app,umap,export,scale,docs,onnx]"
	touch $@

install: $(VENV)/.installed
install-dev: $(VENV)/.installed-dev

demo: install
	$(PY) -m xalign demo --out $(DEMO_OUT)

test: install-dev
	$(PY) -m pytest -q

# the documentation site → site/index.html (offline; warnings are errors)
docs: install
	$(PIP) install -q -e ".[docs]"
	NO_MKDOCS_2_WARNING=1 $(VENV)/bin/mkdocs build --strict -d site

lint: install-dev
	$(VENV)/bin/ruff check xalign dashboards tests benchmarks experiments
	$(VENV)/bin/ruff format --check xalign dashboards tests benchmarks experiments
	$(VENV)/bin/mypy xalign

clean:
	rm -rf $(VENV) runs site .pytest_cache
