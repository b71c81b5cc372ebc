# The two commands of README.md: `make run` and `make test`.
# Both set up everything they need on a fresh Debian with Python 3.11.

PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python

.PHONY: run test test-unit gates bench bench-scale venv clean docs

venv: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	@$(PYTHON) -c 'import ensurepip, venv' 2>/dev/null || { \
	    echo "installing python3-venv"; \
	    apt-get update -qq && apt-get install -y -qq python3-venv; }
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[test]'
	@touch $@

run: venv
	@mkdir -p var/radicale
	$(PY) -m radicale --config config/radicale.conf

# The gates, in order (cheap, and each names the line), then the whole suite.
test: gates
	$(PY) -m pytest -q

# The unit tests alone: no servers, no sockets, a few seconds.
test-unit: venv
	$(PY) -m pytest -q tests/unit

# Lint and format check; types (strict on the pure core); the import contract
# (the core imports no state, provider, mail or shell). Settings in pyproject.toml.
gates: venv
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy
	$(VENV)/bin/lint-imports

# docs/configuration.md is generated from the config schemas (a test checks it is current).
docs: venv
	$(PY) docs/gen_configuration.py

# Benchmarks: plain Radicale vs Radicale with the plugin, in a production-like venv
# (no test extras: the caldav client's dependencies would inflate memory figures).
BENCH_VENV := .venv-bench
$(BENCH_VENV)/.installed: pyproject.toml
	@$(PYTHON) -c 'import ensurepip, venv' 2>/dev/null || { \
	    apt-get update -qq && apt-get install -y -qq python3-venv; }
	$(PYTHON) -m venv $(BENCH_VENV)
	$(BENCH_VENV)/bin/python -m pip install -q --upgrade pip
	$(BENCH_VENV)/bin/python -m pip install -q -e .
	@touch $@

bench: $(BENCH_VENV)/.installed
	$(BENCH_VENV)/bin/python bench/run.py $(BENCH_ARGS)

# The bridge over many accounts with 1, 2 and 4 shared workers (bench/scale.py): on one
# PostgreSQL database when initdb is there (psycopg in the bench venv), else on sqlite.
$(BENCH_VENV)/.postgresql: $(BENCH_VENV)/.installed
	$(BENCH_VENV)/bin/python -m pip install -q -e '.[postgresql]'
	@touch $@

bench-scale: $(BENCH_VENV)/.postgresql
	$(BENCH_VENV)/bin/python bench/scale.py $(BENCH_ARGS)

clean:
	rm -rf $(VENV) $(BENCH_VENV) var .pytest_cache .mypy_cache .ruff_cache .import_linter_cache
