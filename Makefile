# Two commands on a fresh machine: `make run` (the whole system on embedded defaults)
# and `make test`. Everything else here is a convenience around them.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python

# Installs come from the hash-pinned lock files (--require-hashes); `make lock`
# regenerates them from requirements*.txt (pip-tools, from PyPI only). The installer is uv
# (about 40x faster than pip on a first install): pip installs uv itself from the
# hash-pinned requirements-bootstrap.lock, then uv installs the lock; if either fails, pip
# installs the lock as before.
LOCK_ENV := PIP_CONFIG_FILE=/dev/null PIP_CONSTRAINT= PIP_FIND_LINKS= PIP_EXTRA_INDEX_URL=
COMPILE  := $(LOCK_ENV) $(VENV)/bin/pip-compile --quiet --generate-hashes --strip-extras --allow-unsafe \
            --index-url https://pypi.org/simple --no-emit-index-url

.PHONY: run test test-pooled lint bench clean-data lock

# $(call install,LOCK): uv when it installs and works, else pip; both check every hash.
define install
	{ $(PY) -m pip install --quiet --disable-pip-version-check --require-hashes -r requirements-bootstrap.lock \
	  && $(VENV)/bin/uv pip install --quiet --native-tls --python $(PY) --require-hashes -r $(1); } \
	|| { echo "uv unavailable: installing $(1) with pip"; \
	     $(PY) -m pip install --quiet --require-hashes -r $(1); }
endef

$(VENV)/.runtime: requirements.lock requirements-bootstrap.lock
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(call install,requirements.lock)
	touch $@

$(VENV)/.dev: requirements-dev.lock $(VENV)/.runtime
	$(call install,requirements-dev.lock)
	touch $@

lock: $(VENV)/.dev
	$(COMPILE) --output-file requirements.lock requirements.txt
	$(COMPILE) --output-file requirements-dev.lock requirements-dev.txt
	$(COMPILE) --output-file requirements-bootstrap.lock requirements-bootstrap.txt

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
