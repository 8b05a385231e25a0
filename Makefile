# The two commands of the README: `make run` and `make test`. Each installs what is missing first.
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
PYTHON ?= python3
VENV := .venv
ASSETS := geo_service/mapview/assets
PY_STAMP := $(VENV)/.installed
JS_STAMP := $(ASSETS)/node_modules/.installed

# Debian packages: what serving needs, and what the test suite adds (GDAL's clients, QGIS's Python bindings
# and its providers, which hold the OAPIF one, for Debian's /usr/bin/python3; a browser; CJK fonts; nginx, which
# the tests run as a caching proxy of their own: the system service the package starts is stopped again;
# docker-compose, which validates docker/compose.yaml without a container engine).
RUN_PACKAGES := postgresql postgresql-postgis python3-venv
TEST_PACKAGES := gdal-bin python3-qgis qgis-providers chromium fonts-wqy-microhei nginx docker-compose

.PHONY: run test bench setup setup-test system-run system-test python-env web-assets lint clean-db

run: setup
	$(VENV)/bin/jxplan run

test: setup-test
	$(VENV)/bin/pytest

# Service vs. raw SQL vs. tipg on generated rows (benchmarks/README.md); e.g. BENCH_ARGS="--rows 1000000".
bench: setup
	$(VENV)/bin/python -m benchmarks.run $(BENCH_ARGS)

setup: system-run python-env web-assets
setup-test: system-run system-test python-env web-assets

# Installs only what is missing. As root directly, otherwise through sudo; without either it says what to install.
define apt_install
	missing=""; \
	for pkg in $(1); do dpkg -s "$$pkg" >/dev/null 2>&1 || missing="$$missing $$pkg"; done; \
	if ! command -v npm >/dev/null 2>&1; then missing="$$missing npm"; fi; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ]; then SUDO=""; \
	  elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then SUDO="sudo"; \
	  else echo "Missing system packages:$$missing"; echo "Install them with: sudo apt-get install$$missing"; exit 1; fi; \
	  echo "Installing system packages:$$missing"; \
	  $$SUDO apt-get update -qq; \
	  DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq --no-install-recommends $$missing >/dev/null; \
	  case " $$missing " in *" nginx "*) \
	    if command -v systemctl >/dev/null 2>&1 && systemctl is-active --quiet nginx 2>/dev/null; then \
	      $$SUDO systemctl disable --now nginx >/dev/null 2>&1 || true; fi ;; \
	  esac; \
	fi
endef

system-run:
	@$(call apt_install,$(RUN_PACKAGES))

system-test:
	@$(call apt_install,$(TEST_PACKAGES))

# The virtual environment, from the lock file; reinstalled only when the lock or pyproject changes.
python-env: $(PY_STAMP)
$(PY_STAMP): requirements.lock pyproject.toml
	@test -x $(VENV)/bin/python || $(PYTHON) -m venv $(VENV)
	@$(VENV)/bin/python -m pip install -q --disable-pip-version-check uv
	@VIRTUAL_ENV=$(VENV) $(VENV)/bin/uv pip install -q -r requirements.lock
	@VIRTUAL_ENV=$(VENV) $(VENV)/bin/uv pip install -q --no-deps -e . --config-settings editable_mode=compat
	@touch $@

# The maps' JavaScript and CSS, from the npm lock file, served by the service itself.
web-assets: $(JS_STAMP)
$(JS_STAMP): $(ASSETS)/package-lock.json
	@npm ci --prefix $(ASSETS) --no-audit --no-fund --loglevel=error
	@touch $@

lint: python-env
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy

clean-db:
	$(VENV)/bin/jxplan db stop || true
	rm -rf .data
