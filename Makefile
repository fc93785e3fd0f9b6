# The two set-up commands: `make demo` and `make test`. Both install what is missing.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: demo run test fuzz bench lint screenshots system-deps test-deps bench-deps venv clean

demo: system-deps venv
	$(PY) -m offline_upstream.demo

# Production shape on one machine: gunicorn, RQ workers, janitor (see README).
run: system-deps venv
	$(PY) -m asu.local.run

test: test-deps venv
	$(PY) -m pytest $(PYTEST_ARGS)

# The property tests with new random examples, many more (minutes); add what they
# find to tests/test_fuzz.py as @example cases. `make test` runs them repeatably.
fuzz: test-deps venv
	HYPOTHESIS_PROFILE=fuzz $(PY) -m pytest tests/test_fuzz.py $(PYTEST_ARGS)

bench: bench-deps venv
	$(PY) -m bench

# Refresh the README's screenshots from the browser test.
screenshots: test-deps venv
	SCREENSHOT_DIR=misc/screenshots $(PY) -m pytest -q tests/test_web.py

lint: venv
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

system-deps:
	@sh misc/install-system-deps.sh

test-deps:
	@sh misc/install-system-deps.sh test

bench-deps:
	@sh misc/install-system-deps.sh bench

venv: $(STAMP)

$(STAMP): requirements.txt requirements-dev.txt setup.py
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -r requirements-dev.txt -e .
	touch $@

clean:
	rm -rf var .pytest_cache build *.egg-info
