# Two commands on a fresh machine: `make run` (the whole system on embedded defaults)
# and `make test`. Everything else here is a convenience around them.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python

.PHONY: run test test-pooled lint bench clean-data

$(VENV)/.runtime: requirements.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements.txt
	touch $@

$(VENV)/.dev: requirements-dev.txt requirements.txt $(VENV)/.runtime
	$(PY) -m pip install --quiet -r requirements-dev.txt
	touch $@

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

bench: $(VENV)/.dev
	$(PY) -m bench

clean-data:
	rm -rf .data
