# The commands a newcomer needs. `make run` starts a local three-datacenter Cassandra
# testbed and the exporter against it; `make test` runs the suite against a real cluster.
# `make test-unit` runs the tier that needs no cluster and no Java; `make check` the linters,
# the type checker and the import contracts.

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin

.PHONY: install run test test-unit lint typecheck contracts check generate check-generated down clean

$(BIN)/cqrs-exporter: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e ".[test]"
	@touch $@

install: $(BIN)/cqrs-exporter

run: install
	$(BIN)/python -m testbed demo

test: install
	$(BIN)/pytest

test-unit: install
	$(BIN)/pytest tests/unit

lint: install
	$(BIN)/ruff check .

typecheck: install
	$(BIN)/mypy

contracts: install
	$(BIN)/lint-imports

check: lint typecheck contracts

generate: install
	$(BIN)/cqrs-exporter generate

check-generated: install
	$(BIN)/cqrs-exporter generate --check

down: install
	$(BIN)/python -m testbed down

clean: down
	rm -rf .testbed
