# PID Memory Inspector: `make run` records this machine and serves the dashboard; `make test` runs every test.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PORT ?= 8501
DUMPS ?= dumps
INTERVAL ?= 5

.PHONY: run share share-check test lint format bench collect venv deps dev-deps spark-deps browser prometheus nginx clean-venv

$(VENV)/bin/python:
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip

# runtime packages, re-installed whenever requirements.txt changes
$(VENV)/.deps: requirements.txt | $(VENV)/bin/python
	$(PY) -m pip install -q -r requirements.txt
	touch $@

$(VENV)/.dev-deps: requirements-dev.txt requirements.txt $(VENV)/.deps
	$(PY) -m pip install -q -r requirements-dev.txt
	touch $@

$(VENV)/.spark-deps: requirements-spark.txt $(VENV)/.deps
	$(PY) -m pip install -q -r requirements-spark.txt
	touch $@

venv deps: $(VENV)/.deps
dev-deps: $(VENV)/.dev-deps

# Spark for the fleet rollups: pyspark from PyPI and Debian's headless JRE (when no java is on PATH)
spark-deps: $(VENV)/.spark-deps
	@if ! command -v java >/dev/null; then \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -q && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -q default-jre-headless; \
	fi

# Debian chromium for the browser tests (playwright drives it; no browser download)
browser:
	@if [ ! -x /usr/bin/chromium ]; then \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -q && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -q chromium; \
	fi

# Debian's prometheus + promtool for tests/test_prometheus.py (waits for a dpkg lock another apt-get holds)
prometheus:
	@if [ ! -x /usr/bin/prometheus ] || [ ! -x /usr/bin/promtool ]; then \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get -o DPkg::Lock::Timeout=600 update -q && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get \
	    -o DPkg::Lock::Timeout=600 install -y -q --no-install-recommends prometheus; \
	fi

# Debian nginx for the end-to-end test on real software (the test runs its own on 127.0.0.1 with a temp config)
nginx:
	@if ! command -v nginx >/dev/null && [ ! -x /usr/sbin/nginx ]; then \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get -o DPkg::Lock::Timeout=600 update -q && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get \
	    -o DPkg::Lock::Timeout=600 install -y -q --no-install-recommends nginx; \
	fi

# record this machine in the background (stopped with the dashboard), then serve the dashboard on 127.0.0.1
run: $(VENV)/.deps
	@mkdir -p $(DUMPS)
	@$(PY) -m collector --dumps $(DUMPS) --interval $(INTERVAL) & cpid=$$!; \
	trap 'kill $$cpid 2>/dev/null; wait $$cpid 2>/dev/null' EXIT INT TERM; \
	PMI_DUMPS=$(DUMPS) $(PY) -m streamlit run serve.py --server.port $(PORT) --server.address 127.0.0.1

# serve the dashboard on every interface (0.0.0.0) for teammates: refused unless access control is configured,
# i.e. PMI_TOKEN (>= 16 characters) or an [auth] OIDC section in .streamlit/secrets.toml (README, "Sharing")
share-check:
	@$(PYTHON) -m ui.auth --check-share

share: share-check $(VENV)/.deps
	$(PY) -m streamlit run serve.py --server.port $(PORT) --server.address 0.0.0.0

collect: $(VENV)/.deps
	$(PY) -m collector --dumps $(DUMPS) --interval $(INTERVAL)

lint: $(VENV)/.dev-deps
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy --config-file pyproject.toml

format: $(VENV)/.dev-deps
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

test: $(VENV)/.dev-deps browser prometheus nginx spark-deps lint
	$(PY) -m pytest

bench: $(VENV)/.dev-deps
	$(PY) -m bench

clean-venv:
	rm -rf $(VENV)
