# Two commands do all the set-up on a fresh machine with Python 3.11+:
#   make demo   run the product on its embedded defaults
#   make test   run the test suite
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: demo test lint install clean bench

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(STAMP): $(BIN)/python pyproject.toml
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/ovbot demo

test: $(STAMP)
	$(BIN)/python -m pytest -q -n auto

# Lint, format, types and the import contracts (CONTRIBUTING.md); CI runs it before the tests.
lint: $(STAMP)
	$(BIN)/ruff check bot webhooks tests scripts
	$(BIN)/ruff format --check bot webhooks tests scripts
	$(BIN)/mypy
	$(BIN)/lint-imports

bench: $(STAMP)
	$(BIN)/python scripts/bench_emulator.py
	$(BIN)/python scripts/bench_requests.py
	$(BIN)/python scripts/bench_http.py
	$(BIN)/python scripts/bench_reminders.py

clean:
	rm -rf $(VENV) instance/*.db
