# deploy-console: `make demo` runs the console on the embedded world; `make test` runs every check.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test lint bench bench-deploys bench-audit bench-queue bench-actor bench-kiosk bench-notify bench-bake bench-backup bench-metrics install clean

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "deploy-console needs Python 3.11 or newer")'
	@$(PYTHON) -m venv $(VENV) 2>/dev/null || { \
		echo "python3 -m venv failed (no ensurepip?); trying virtualenv from PyPI"; \
		$(PYTHON) -m pip install --quiet --user virtualenv && $(PYTHON) -m virtualenv --quiet $(VENV); }
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	@touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/deploy-console demo

lint: $(STAMP)
	$(BIN)/ruff check console screens tests
	$(BIN)/ruff format --check console screens tests
	$(BIN)/mypy
	$(BIN)/lint-imports

# Three workers, one test file each at a time (a file's world is started once): most tests
# wait on the world's health checks and drains, not on the CPU. Files start in collection
# order, the slowest first (tests/conftest.py SLOWEST_FIRST): no worker ends alone on one.
test: lint
	$(BIN)/pytest -q -n 3 --dist loadfile --no-loadscope-reorder

bench: $(STAMP)
	$(BIN)/python -m tests.bench.run
	$(BIN)/python -m tests.bench.deploys
	$(BIN)/python -m tests.bench.audit_query
	$(BIN)/python -m tests.bench.queue
	$(BIN)/python -m tests.bench.actor_filter
	$(BIN)/python -m tests.bench.notify_delay
	$(BIN)/python -m tests.bench.bake_rollback
	$(BIN)/python -m tests.bench.store_backup
	$(BIN)/python -m tests.bench.metrics_overhead

bench-deploys: $(STAMP)
	$(BIN)/python -m tests.bench.deploys

bench-audit: $(STAMP)
	$(BIN)/python -m tests.bench.audit_query

bench-queue: $(STAMP)
	$(BIN)/python -m tests.bench.queue

bench-actor: $(STAMP)
	$(BIN)/python -m tests.bench.actor_filter

bench-kiosk: $(STAMP)
	$(BIN)/python -m tests.bench.bench_kiosk_latency

bench-notify: $(STAMP)
	$(BIN)/python -m tests.bench.notify_delay

bench-bake: $(STAMP)
	$(BIN)/python -m tests.bench.bake_rollback

bench-backup: $(STAMP)
	$(BIN)/python -m tests.bench.store_backup

bench-metrics: $(STAMP)
	$(BIN)/python -m tests.bench.metrics_overhead

clean:
	rm -rf $(VENV) .venv-bench .mypy_cache .ruff_cache .pytest_cache
