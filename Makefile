# The two commands of a fresh machine: `make run` and `make test`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
CONFIG ?=

.PHONY: run test lint unit bench clean help

help:
	@echo "make run    start the service with the embedded defaults (prints the URL and a dispatcher token)"
	@echo "make test   install with test extras, lint, type-check and run the whole suite"
	@echo "make bench  run the benchmarks in bench/"

$(BIN)/python:
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "Python 3.11+ is needed")'
	$(PYTHON) -m venv $(VENV)

# Re-install when the project's dependencies change.
$(VENV)/.installed-run: pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet --disable-pip-version-check -e .
	@touch $@

$(VENV)/.installed-test: pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet --disable-pip-version-check -e '.[test]'
	@touch $@ $(VENV)/.installed-run

run: $(VENV)/.installed-run
	@mkdir -p var
	@echo "Dispatcher token for local use (shown once; a new one each run):"
	@$(BIN)/incident tokens add local-dispatcher --role dispatcher --replace $(if $(CONFIG),--config $(CONFIG))
	@echo
	@echo "Open the console at the URL below and sign in with that token."
	@echo "Drills: in another terminal, $(BIN)/incident drill list, then"
	@echo "        INCIDENT_TOKEN=<the token> $(BIN)/incident drill run main_break"
	@echo
	exec $(BIN)/incident serve $(if $(CONFIG),--config $(CONFIG))

lint: $(VENV)/.installed-test
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench
	$(BIN)/mypy
	$(BIN)/lint-imports

test: lint
	$(BIN)/pytest

$(VENV)/.installed-bench: pyproject.toml $(VENV)/.installed-test
	$(BIN)/pip install --quiet --disable-pip-version-check -e '.[test,bench]'
	@touch $@

bench: $(VENV)/.installed-bench
	$(BIN)/python -m bench

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache
