# Set-up is automatic: every target below creates .venv and installs the package first.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
DEMO_LAKE ?= demo-lake
PORT ?= 8091
SERVER ?=

.PHONY: install browser java demo serve test wheel-flow bench clean

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test,spark]'
	touch $@

# The page tests drive the distribution's headless Chromium (Selenium downloads nothing).
CHROMEDRIVER ?= /usr/bin/chromedriver
APT_CHROMIUM := apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y chromium chromium-driver

browser:
	@if [ ! -x $(CHROMEDRIVER) ]; then \
	  if [ "$$(id -u)" = 0 ]; then sh -c '$(APT_CHROMIUM)'; \
	  elif command -v sudo >/dev/null && sudo -n true 2>/dev/null; then sudo -n sh -c '$(APT_CHROMIUM)'; \
	  else echo "The page tests need Chromium and its driver ($(CHROMEDRIVER)); install them as root: $(APT_CHROMIUM)" >&2; exit 1; fi; \
	fi

# The Spark build test (tests/test_spark_build.py) runs pyspark, which needs a Java runtime.
APT_JRE := apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y default-jre-headless

java:
	@if ! command -v java >/dev/null; then \
	  if [ "$$(id -u)" = 0 ]; then sh -c '$(APT_JRE)'; \
	  elif command -v sudo >/dev/null && sudo -n true 2>/dev/null; then sudo -n sh -c '$(APT_JRE)'; \
	  else echo "The Spark build test needs a Java runtime; install it as root: $(APT_JRE)" >&2; exit 1; fi; \
	fi

demo: install
	$(PY) scripts/demo.py --lake $(DEMO_LAKE) $(if $(SERVER),--server $(SERVER))

serve: install
	$(VENV)/bin/datalake init $(DEMO_LAKE)
	$(VENV)/bin/datalake-server --base-path $(DEMO_LAKE) --port $(PORT) --watch

test: install browser java
	$(PY) -m pytest -q

wheel-flow:  # build a wheel, install it into a fresh venv outside the repository, run a user's session
	PYTHON=$(PYTHON) scripts/wheel_flow.sh

bench: install  # bytecode first, as an installed package has it: worker processes start for every large upload
	$(PY) -m compileall -q datalake_py
	$(PY) bench/ingest.py

clean:
	rm -rf $(VENV) $(DEMO_LAKE) .pytest_cache
