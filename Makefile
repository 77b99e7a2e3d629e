# The two commands: `make run` serves OmniCX on SQLite; `make test` runs every check.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
PIP := $(BIN)/pip install --quiet --constraint constraints.txt
# uv installs the pinned set in seconds where pip takes most of a minute; pip is the fallback.
INSTALL := $(BIN)/uv pip install --quiet --compile-bytecode --python $(BIN)/python \
	--constraint constraints.txt

.PHONY: run test lint typecheck pytest bench clean chromium

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(PIP) uv || echo "uv could not be installed: installing with pip"

$(VENV)/.run: $(BIN)/python pyproject.toml constraints.txt
	$(INSTALL) -e . || $(PIP) -e .
	touch $@

$(VENV)/.dev: $(BIN)/python pyproject.toml constraints.txt
	$(INSTALL) -e '.[dev]' || $(PIP) -e '.[dev]'
	touch $@

# On a fresh database the demo seeds while the server already answers: logins, journeys and
# the story land first, the customers stream in behind them.
run: $(VENV)/.run
	$(BIN)/omnicx db upgrade
	$(BIN)/omnicx demo --if-empty & $(BIN)/omnicx serve --no-migrate

lint: $(VENV)/.dev
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench

typecheck: $(VENV)/.dev
	$(BIN)/mypy

# The console's browser tests drive Debian's chromium (Playwright cannot download its own
# browser offline); without it they are skipped with that reason.
chromium:
	@test -x /usr/bin/chromium || (apt-get update -qq && apt-get install -y -qq chromium) \
		|| echo "chromium could not be installed: the browser tests will be skipped"

# Two test processes: most tests wait on databases, servers and subprocesses, and the slowest
# (the SIGKILL and scale-out tests) run beside the rest; worksteal evens out the tail.
pytest: $(VENV)/.dev chromium
	$(BIN)/pytest -n 2 --dist worksteal

test: lint typecheck pytest

bench: $(VENV)/.dev
	$(BIN)/python bench/ingest.py

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache
