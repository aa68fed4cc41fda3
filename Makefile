# Two commands on a fresh machine: `make run` and `make test`. Only Python 3.11 and pip are needed.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
# The runtime venv holds requirements.txt and nothing else, as a deploy does: make run and make smoke use it, so a
# dependency that only the dev tools bring in cannot hide. It is rebuilt from scratch whenever the lock changes.
RUN_VENV := .venv-run
# The dev venv adds the test, lint and bench tools (requirements-dev.txt).
VENV := .venv
BIN := $(VENV)/bin
LOCK := $(BIN)/uv pip compile --quiet --universal --python-version 3.11 --generate-hashes \
	$(if $(UPGRADE),--upgrade-package $(UPGRADE))

.PHONY: run smoke test lint lock bench screenshots clean

$(RUN_VENV)/.installed: requirements.txt
	rm -rf $(RUN_VENV)
	$(PYTHON) -m venv $(RUN_VENV)
	$(RUN_VENV)/bin/pip install -q --require-hashes --no-deps -r requirements.txt
	$(RUN_VENV)/bin/pip check
	touch $@

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip

$(VENV)/.dev: requirements-dev.txt | $(BIN)/python
	$(BIN)/pip install -q --require-hashes -r requirements-dev.txt
	touch $@

run: $(RUN_VENV)/.installed  ## start Redis (embedded unless REDIS_URL is set), web, worker and clock; Ctrl-C stops all
	$(RUN_VENV)/bin/python scripts/devstack.py

smoke: $(RUN_VENV)/.installed  ## what a deploy does: boot web, worker and clock from the Procfile, run one job, stop all
	$(RUN_VENV)/bin/python scripts/smoke.py

test: $(VENV)/.dev  ## lint, then the whole test suite against a private redis-server and real workers
	$(BIN)/ruff check .
	$(BIN)/python -m tests.browser.chromium  # finds Chromium for the browser tests, installing it if missing
	$(BIN)/python -m tests.system_packages  # a TLS-capable redis-server and ip/unshare, for the TLS and multi-host tiers
	$(BIN)/python -m pytest $(PYTEST_ARGS)

lock: $(VENV)/.dev  ## recompile both lock files from requirements*.in; UPGRADE=name bumps that one package
	$(LOCK) requirements.in -o requirements.txt
	$(LOCK) --constraint requirements.txt requirements-dev.in -o requirements-dev.txt

bench: $(VENV)/.dev  ## workers against Dramatiq and Celery, HTTP and latency, on a private Redis; writes bench/results/
	$(BIN)/python bench/run.py $(BENCH_ARGS)

screenshots: $(VENV)/.dev  ## re-take the README screenshots in docs/screenshots/ from the browser tests
	$(BIN)/python -m tests.browser.chromium
	SCREENSHOT_DIR=docs/screenshots $(BIN)/python -m pytest tests/browser

lint: $(VENV)/.dev
	$(BIN)/ruff check .

clean:
	rm -rf $(VENV) $(RUN_VENV) .pytest_cache .ruff_cache
