# The commands a newcomer needs. `make run` starts a local three-datacenter Cassandra
# testbed and the exporter against it; `make test` runs the suite against a real cluster.

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin

.PHONY: install run test lint generate check-generated down clean

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

lint: install
	$(BIN)/ruff check .

generate: install
	$(BIN)/cqrs-exporter generate

check-generated: install
	$(BIN)/cqrs-exporter generate --check

down: install
	$(BIN)/python -m testbed down

clean: down
	rm -rf .testbed
