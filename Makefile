# Two entry points: `make demo` (a real pinning run on the built-in model) and
# `make test` (the test suite). Both install what they need first.
PYTHON ?= python3
PIP = $(PYTHON) -m pip

.PHONY: setup setup-test demo test bench

setup:
	$(PIP) install -q torch==2.13.0
	$(PIP) install -q -e ".[plots]"

setup-test: setup
	$(PIP) install -q -e ".[test]"
	$(PIP) install -q --no-deps -r requirements-nodeps.txt
	bash tools/install_chromium.sh

demo: setup
	$(PYTHON) -m prompt_pinning --prompt "a red circle, on a blue background" --negative green --outdir outputs

test: setup-test
	$(PYTHON) -m pytest -q
