# The commands a newcomer needs. Each first sets up what it lacks (scripts/setup.sh: Debian
# packages, the venv, Go tools in .tools/, the Cassandra jars), saying what it does; with
# everything in place that check takes well under a second.
#   make run        a local three-datacenter Cassandra testbed, the workload and the exporter
#   make test       generated files, ruff, mypy, import contracts, then every test tier
#   make test-unit  the tier that needs no cluster and no Java (the venv and promtool)
#   make check      ruff, mypy (strict) and the import contracts
# PYTEST_ARGS reaches pytest: `make test PYTEST_ARGS='-m "not fault"'`.

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
SETUP  := scripts/setup.sh
TIERS  := tests/unit tests/chart tests/cluster tests/e2e tests/production
PYTEST_ARGS ?=

.PHONY: install setup-run setup-test setup-unit run test test-unit lint typecheck contracts \
	check generate check-generated down clean

$(BIN)/cqrs-exporter: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e ".[test]"
	@touch $@

install: $(BIN)/cqrs-exporter

setup-run setup-test setup-unit:
	@PYTHON=$(PYTHON) bash $(SETUP) --for $(@:setup-%=%)

run: setup-run
	$(BIN)/python -m testbed demo

test: setup-test
	$(MAKE) --no-print-directory check-generated check
	$(BIN)/pytest $(PYTEST_ARGS) $(TIERS)

test-unit: setup-unit
	$(BIN)/pytest $(PYTEST_ARGS) tests/unit

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
