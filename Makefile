# The README's two commands: `make demo` and `make test`. Each builds what it needs in .venv.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test lint typecheck unit bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev,bench]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/python examples/demo.py

lint: $(STAMP)
	$(BIN)/ruff check dialnexa_async tests benchmarks examples
	$(BIN)/ruff format --check dialnexa_async tests benchmarks examples

typecheck: $(STAMP)
	$(BIN)/mypy

unit: $(STAMP)
	PYTHONDEVMODE=1 PYTHONASYNCIODEBUG=1 $(BIN)/coverage run -m pytest -q
	$(BIN)/coverage report

test: lint typecheck unit

bench: $(STAMP)
	$(BIN)/python -m benchmarks.pagination
	$(BIN)/python -m benchmarks.decode
	$(BIN)/python -m benchmarks.enrollment

clean:
	rm -rf $(VENV) .coverage .mypy_cache .ruff_cache build *.egg-info
