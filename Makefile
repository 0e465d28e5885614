# Set-up is automatic: every target below creates .venv and installs the package first.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
DEMO_LAKE ?= demo-lake
PORT ?= 8091
SERVER ?=

.PHONY: install demo serve test wheel-flow bench clean

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test]'
	touch $@

demo: install
	$(PY) scripts/demo.py --lake $(DEMO_LAKE) $(if $(SERVER),--server $(SERVER))

serve: install
	$(VENV)/bin/datalake init $(DEMO_LAKE)
	$(VENV)/bin/datalake-server --base-path $(DEMO_LAKE) --port $(PORT) --watch

test: install
	$(PY) -m pytest -q

wheel-flow:  # build a wheel, install it into a fresh venv outside the repository, run a user's session
	PYTHON=$(PYTHON) scripts/wheel_flow.sh

bench: install  # bytecode first, as an installed package has it: worker processes start for every large upload
	$(PY) -m compileall -q datalake_py
	$(PY) bench/ingest.py

clean:
	rm -rf $(VENV) $(DEMO_LAKE) .pytest_cache
