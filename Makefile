# The commands a newcomer needs. Each first sets up what it lacks (scripts/setup.sh: Debian
# packages, the venv, Go tools in .tools/, the Cassandra jars), saying what it does; with
# everything in place that check takes well under a second.
#   make run        a local three-datacenter Cassandra testbed, the workload and the exporter
#   make chaos      (beside a running `make run`) faults that make its alerts fire and resolve
#   make test       generated files, ruff, mypy, import contracts, then every test tier
#   make test-unit  the tier that needs no cluster and no Java (the venv and promtool)
#   make check      ruff, mypy (strict) and the import contracts
#   make lock       requirements.lock, the image's dependencies pinned with their hashes
# PYTEST_ARGS reaches pytest: `make test PYTEST_ARGS='-m "not fault"'`.

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
SETUP  := scripts/setup.sh
TIERS  := tests/unit tests/chart tests/cluster tests/e2e tests/production
PYTEST_ARGS ?=
# The lock's tool, installed into the venv by `make lock` only; LOCK_ARGS=--upgrade moves pins.
UV_VERSION ?= 0.13.9
LOCK_ARGS ?=

.PHONY: install setup-run setup-test setup-unit run chaos test test-unit lint typecheck contracts \
	check generate check-generated down clean lock

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

chaos: setup-run
	$(BIN)/python -m testbed chaos

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

# Pyproject's runtime dependencies resolved for the image (CPython 3.11 on Linux), every
# version pinned with the hashes of all its files; the Dockerfile installs from it with
# --require-hashes. Pins already in the file are kept unless pyproject needs others.
lock: install
	$(BIN)/pip install --quiet "uv==$(UV_VERSION)"
	$(BIN)/uv pip compile --quiet --python-version 3.11 --python-platform linux \
		--generate-hashes --custom-compile-command "make lock" $(LOCK_ARGS) \
		pyproject.toml -o requirements.lock

down: install
	$(BIN)/python -m testbed down

clean: down
	rm -rf .testbed
