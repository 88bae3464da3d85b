# Two commands on a fresh machine: `make run` (the whole system on embedded defaults)
# and `make test`. Everything else here is a convenience around them.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python

# Installs come from the hash-pinned lock files (--require-hashes); `make lock`
# regenerates them from requirements*.txt (pip-tools, from PyPI only). The installer is uv,
# many times faster than pip on a first install: uv itself comes from the hash-pinned
# requirements-bootstrap.lock, installed by pip into $(VENV)/.bootstrap. The venv is made
# without pip (seeding pip took 45 s on a loaded 2-core machine); pip is seeded only when
# the system Python has none for the bootstrap, or for the fallback: if uv cannot be
# installed or fails, pip installs the lock, as before.
UV        := $(VENV)/.bootstrap/bin/uv
VENV_PIP  := { $(PY) -m pip --version >/dev/null 2>&1 || $(PY) -m ensurepip --default-pip >/dev/null; }
BOOTSTRAP := --quiet --disable-pip-version-check --require-hashes --target $(VENV)/.bootstrap -r requirements-bootstrap.lock
define install
	{ { test -x $(UV) || $(PYTHON) -m pip install $(BOOTSTRAP) || { $(VENV_PIP) && $(PY) -m pip install $(BOOTSTRAP); }; } \
	  && $(UV) pip install --quiet --native-tls --python $(PY) --require-hashes -r $(1); } \
	|| { echo "uv failed: installing $(1) with pip"; $(VENV_PIP) && $(PY) -m pip install --quiet --require-hashes -r $(1); }
endef

$(VENV)/.runtime: requirements.lock requirements-bootstrap.lock
	test -x $(PY) || $(PYTHON) -m venv --without-pip $(VENV)
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
	$(VENV)/bin/vulture crm db ui webhook ops pages dashboard.py vulture_whitelist.py --min-confidence 60

bench: $(VENV)/.dev
	$(PY) -m bench

# Only the Send part (the workflow against the sandbox, and Confirm send -> pay link in
# Chromium); its section and targets in docs/PERFORMANCE.md are replaced, the rest kept.
bench-send: $(VENV)/.dev
	$(PY) -m bench --only send --merge

clean-data:
	rm -rf .data
