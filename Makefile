# `make demo` trains the tutorial's three autoencoders on the embedded digits set (~1 minute);
# `make test` runs the test suite. Both create .venv first (torch pinned to the local CPU wheel).
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
export AEKIT_DATA_HOME ?= $(abspath ../shared/datasets)

.PHONY: demo test lint venv dev clean bench-quick

$(BIN)/python:
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q "torch==2.13.0"

$(VENV)/.installed: $(BIN)/python pyproject.toml
	$(BIN)/pip install -q -e .
	touch $@

$(VENV)/.installed-dev: $(VENV)/.installed pyproject.toml
	$(BIN)/pip install -q -e '.[dev]'
	touch $@

venv: $(VENV)/.installed
dev: $(VENV)/.installed-dev

demo: $(VENV)/.installed
	$(BIN)/aekit demo --out runs/demo

test: $(VENV)/.installed-dev
	$(BIN)/python -m pytest -q

lint: $(VENV)/.installed-dev
	$(BIN)/ruff check src tests benchmarks

bench-quick: $(VENV)/.installed-dev
	$(BIN)/python benchmarks/tutorial.py --quick

clean:
	rm -rf runs .pytest_cache
