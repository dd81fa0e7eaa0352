# Every target creates (or reuses) the local .venv and installs what it needs.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-dev

.PHONY: venv install test lint demo bench notebooks clean

$(BIN)/python:
	$(PY) -m venv $(VENV)
	$(BIN)/python -m pip install --upgrade pip setuptools wheel >/dev/null

$(STAMP): $(BIN)/python pyproject.toml
	$(BIN)/python -m pip install -e ".[dev]"
	touch $(STAMP)

venv: $(STAMP)
install: $(STAMP)

lint: $(STAMP)
	$(BIN)/ruff check learnkit tests benchmarks
	$(BIN)/ruff format --check learnkit tests benchmarks

# Two test processes (pytest-xdist; --dist loadfile keeps each module's fixtures, e.g. the torchrun
# launches, in one process), and a per-test limit so a hung test fails instead of stalling the run.
PYTEST_ARGS ?= -n 2 --dist loadfile --timeout 600

test: $(STAMP)
	$(BIN)/ruff check learnkit tests benchmarks
	$(BIN)/ruff format --check learnkit tests benchmarks
	$(BIN)/python -m pytest -q -p no:cacheprovider $(PYTEST_ARGS)

# Executes every lecture notebook with a real Jupyter kernel (fails on any error) and shows each one's time.
notebooks: $(STAMP)
	$(BIN)/python -m pytest -q -p no:cacheprovider -n 2 --timeout 600 --durations=0 tests/test_notebooks.py

demo: $(STAMP)
	$(BIN)/learnkit demo

bench: $(STAMP)
	@for f in benchmarks/*.py; do echo "== $$f"; $(BIN)/python $$f || exit 1; done

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache
