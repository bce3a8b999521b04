# Two commands: `make run` starts the whole product locally; `make test` runs every test.
# Both install what they need first (Python venv, npm packages, Chromium for browser tests).

SHELL := /bin/bash
# The Python the venv is made with: 3.12 (what the Function App runs in Azure) where it is
# installed, else 3.11, else python3. A candidate counts only if it runs (a pyenv shim of a
# version that is not selected does not). Override: make PYTHON_SYSTEM=/path/to/python3.12 ...
# An existing .venv is kept: `make clean` (or rm -rf .venv) to make it again with another Python.
PYTHON_SYSTEM ?= $(firstword $(foreach candidate,python3.12 python3.11 python3,$(shell \
  command -v $(candidate) >/dev/null 2>&1 && $(candidate) -c 'import sys' >/dev/null 2>&1 && echo $(candidate))))
VENV := .venv
PY := $(VENV)/bin/python
PY_STAMP := $(VENV)/.installed
NPM_STAMP := node_modules/.installed
CHROMIUM := /usr/bin/chromium
REQUIREMENTS := requirements.txt requirements-dev.txt emulators/requirements.txt $(wildcard emulators/*/requirements.txt)
PYTEST_ARGS ?=
# make test's workers (pytest-xdist; each has its own Azurite, see tests/conftest.py); 0: one process.
TEST_WORKERS ?= 2
# make run STACK_ARGS="--skip crm" (or other ports, see python -m local.stack --help)
STACK_ARGS ?=

.PHONY: run test test-slow soak bench lint install clean

run: install
	$(PY) -m local.stack $(STACK_ARGS)

test: install $(CHROMIUM)
	$(VENV)/bin/ruff check .
	$(PY) -m pytest -n $(TEST_WORKERS) --dist loadfile $(PYTEST_ARGS); status=$$?; \
	  if [ $$status -eq 5 ]; then echo "make test: no tests were collected"; exit 1; fi; exit $$status

# The long scenarios (e.g. the 5,000-event initial sync), left out of `make test`.
test-slow: install $(CHROMIUM)
	$(PY) -m pytest -m slow $(PYTEST_ARGS)

# The long reliability runs (20+ host kills, messages delivered 3 times, every fault scenario at
# full size, fuzzing with many examples); ends with one line `soak: kills=N redeliveries=N ...`.
soak: install
	$(PY) -m tests.reliability.soak $(SOAK_ARGS)

bench: install
	@if [ -f bench/__main__.py ]; then $(PY) -m bench; else echo "make bench: no benchmarks yet (see issue 9)"; fi

lint: install
	$(VENV)/bin/ruff check .

install: $(PY_STAMP) $(NPM_STAMP)

$(PY_STAMP): $(REQUIREMENTS)
	test -x $(PY) || $(PYTHON_SYSTEM) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements-dev.txt
	touch $@

$(NPM_STAMP): package.json package-lock.json
	npm ci --ignore-scripts --no-audit --no-fund --loglevel=error
	touch $@

# Debian's Chromium, driven by Playwright through executable_path (Playwright's own browser
# download cannot work here).
$(CHROMIUM):
	@if [ "$$(id -u)" = "0" ]; then \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; \
	else \
	  echo "Chromium is missing: run 'sudo apt-get install chromium' (browser tests need $(CHROMIUM))"; exit 1; \
	fi

clean:
	rm -rf $(VENV) node_modules .local .pytest_cache .ruff_cache .hypothesis
