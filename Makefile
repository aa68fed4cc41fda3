# Two commands on a fresh machine: `make run` and `make test`. Only Python 3.11 and pip are needed.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin

.PHONY: run test lint bench screenshots clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip

# Stamps re-install whenever a requirements file changes.
$(VENV)/.runtime: requirements.txt | $(BIN)/python
	$(BIN)/pip install -q -r requirements.txt
	touch $@

$(VENV)/.dev: requirements.txt requirements-dev.txt | $(BIN)/python
	$(BIN)/pip install -q -r requirements-dev.txt
	touch $@ $(VENV)/.runtime

run: $(VENV)/.runtime  ## start Redis (embedded unless REDIS_URL is set), web and worker; Ctrl-C stops all
	$(BIN)/python scripts/devstack.py

test: $(VENV)/.dev  ## lint, then the whole test suite against a private redis-server and real workers
	$(BIN)/ruff check .
	$(BIN)/python -m tests.browser.chromium  # finds Chromium for the browser tests, installing it if missing
	$(BIN)/python -m pytest $(PYTEST_ARGS)

screenshots: $(VENV)/.dev  ## re-take the README screenshots in docs/screenshots/ from the browser tests
	$(BIN)/python -m tests.browser.chromium
	SCREENSHOT_DIR=docs/screenshots $(BIN)/python -m pytest tests/browser

lint: $(VENV)/.dev
	$(BIN)/ruff check .

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
