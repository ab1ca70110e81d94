# Two commands do all set-up on a fresh machine: `make demo` and `make test`.
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: install demo test lint up down status bench

$(STAMP): pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet torch==2.13.0  # the CPU build first: see pyproject's train extra
	$(PY) -m pip install --quiet -e ".[test]"
	touch $(STAMP)

install: $(STAMP)

## demo: install, start a local platform on the embedded defaults, run the quickstart
demo: install
	$(VENV)/bin/lakeray up
	$(VENV)/bin/lakeray models import   # SmolLM2-135M-Instruct and all-MiniLM-L6-v2 into system.ai (idempotent)
	$(PY) notebooks/quickstart.py
	@echo
	@echo "lakeray is still running at http://127.0.0.1:$${LAKERAY_PORT:-8000}"
	@echo "  admin token: $${LAKERAY_HOME:-$$HOME/.lakeray}/credentials"
	@echo "  stop it:     $(VENV)/bin/lakeray down   (data is kept)"

## test: the whole suite (CI runs this through .ci/run)
test: install
	$(PY) -m pytest -q -p no:cacheprovider

lint: install
	$(VENV)/bin/ruff check platform actors jobs tests benchmarks notebooks

up: install
	$(VENV)/bin/lakeray up

down:
	$(VENV)/bin/lakeray down

status:
	$(VENV)/bin/lakeray status

bench: install
	$(PY) benchmarks/catalog_api.py
	$(PY) benchmarks/tracking.py
	$(PY) benchmarks/training.py
	$(PY) benchmarks/serving.py
