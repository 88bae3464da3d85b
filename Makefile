# Two commands on a fresh machine: `make run` (the whole system on embedded defaults)
# and `make test`. Everything else here is a convenience around them.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python

# Installs come from the hash-pinned lock files (pip --require-hashes); `make lock`
# regenerates them from requirements*.txt (pip-tools, from PyPI only).
LOCK_ENV := PIP_CONFIG_FILE=/dev/null PIP_CONSTRAINT= PIP_FIND_LINKS= PIP_EXTRA_INDEX_URL=
COMPILE  := $(LOCK_ENV) $(VENV)/bin/pip-compile --quiet --generate-hashes --strip-extras --allow-unsafe \
            --index-url https://pypi.org/simple --no-emit-index-url

.PHONY: run test test-pooled lint bench clean-data lock

$(VENV)/.runtime: requirements.lock
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --require-hashes -r requirements.lock
	touch $@

$(VENV)/.dev: requirements-dev.lock $(VENV)/.runtime
	$(PY) -m pip install --quiet --require-hashes -r requirements-dev.lock
	touch $@

lock: $(VENV)/.dev
	$(COMPILE) --output-file requirements.lock requirements.txt
	$(COMPILE) --output-file requirements-dev.lock requirements-dev.txt

run: $(VENV)/.runtime
	$(PY) -m crm up

test: $(VENV)/.dev
	$(PY) -m pytest

# Only the tests that run through PgBouncer in transaction mode (make test runs them too).
test-pooled: $(VENV)/.dev
	$(PY) -m pytest -k pooled

lint: $(VENV)/.dev
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy
	$(VENV)/bin/lint-imports --no-cache
	$(VENV)/bin/vulture crm db ui webhook ops pages dashboard.py vulture_whitelist.py --min-confidence 60

bench: $(VENV)/.dev
	$(PY) -m bench

clean-data:
	rm -rf .data
