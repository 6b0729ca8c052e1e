# The README's two commands: `make demo` and `make test`. Each builds what it needs in .venv.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

MIN_VENV := .venv-min
MIN_STAMP := $(MIN_VENV)/.installed
EXTRAS := xlsx,speedups,cli,redis

.PHONY: demo test test-min lint typecheck unit bench clean

# pip >= 25.1 reads the dependency groups (dev, test, bench) of pyproject.toml.
$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[$(EXTRAS)]' --group dev --group bench
	touch $(STAMP)

# The lowest versions pyproject.toml allows for every runtime dependency and extra, exactly.
$(MIN_STAMP): pyproject.toml requirements/minimum.txt
	$(PYTHON) -m venv $(MIN_VENV)
	$(MIN_VENV)/bin/python -m pip install --quiet --upgrade pip
	$(MIN_VENV)/bin/python -m pip install --quiet -c requirements/minimum.txt \
		-e '.[$(EXTRAS)]' --group test
	touch $(MIN_STAMP)

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

test-min: $(MIN_STAMP)
	$(MIN_VENV)/bin/python -m pip check
	$(MIN_VENV)/bin/python -m pip list --format=freeze | grep -ixF -f requirements/minimum.txt
	PYTHONDEVMODE=1 $(MIN_VENV)/bin/python -m pytest -q

bench: $(STAMP)
	$(BIN)/python -m benchmarks.pagination
	$(BIN)/python -m benchmarks.decode
	$(BIN)/python -m benchmarks.enrollment
	$(BIN)/python -m benchmarks.fleet
	$(BIN)/python -m benchmarks.watch
	$(BIN)/python -m benchmarks.journal
	$(BIN)/python -m benchmarks.dashboard

clean:
	rm -rf $(VENV) $(MIN_VENV) .coverage .mypy_cache .ruff_cache build dist *.egg-info
