# The two commands of the README, and a few more for developers.
#   make run    the demo: gateway + sandbox platforms on the embedded SQLite default, http://127.0.0.1:8600
#   make test   the test suite without the slow tests (needs PostgreSQL at 127.0.0.1:5432, see README)
#   make test-slow  the slow tests (process kills, fuzzing, big uploads, browsers); CI runs both
#   make lock   regenerate docker/requirements.lock (the image's pinned dependencies) from pyproject.toml
# Each target first creates .venv and installs the project into it, once.

VENV ?= .venv
PYTHON ?= python3
BIN := $(VENV)/bin

.PHONY: run test test-slow lint bench install clean contract lock

$(BIN)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $@

install: $(BIN)/.installed

run: $(BIN)/.installed
	$(BIN)/credit-gateway serve --sandbox

test: $(BIN)/.installed
	$(BIN)/pytest -m "not slow"

# the slow tests (process kills, fuzzing, big uploads, browsers): CI runs them after `make test`
test-slow: $(BIN)/.installed
	$(BIN)/pytest -m slow

lint: $(BIN)/.installed
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

bench: $(BIN)/.installed
	$(BIN)/python bench/ingest.py
	$(BIN)/python bench/push.py
	$(BIN)/python bench/drain.py
	$(BIN)/python bench/report.py

# the contract files of schemas/contract, regenerated from the models (a test fails when they drift)
contract: $(BIN)/.installed
	$(BIN)/python -m schemas.jsonschema
	$(BIN)/python -m schemas.xsd
# Python 3.11 on Linux, like the image; pip-compile comes with the dev extra.
lock: $(BIN)/.installed
	CUSTOM_COMPILE_COMMAND="make lock" $(BIN)/pip-compile --quiet --strip-extras --no-emit-index-url \
		--no-emit-find-links --output-file docker/requirements.lock pyproject.toml

clean:
	rm -rf $(VENV) *.egg-info .pytest_cache .mypy_cache .ruff_cache
