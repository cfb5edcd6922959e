# Two entry points: `make demo` (a real pinning run on the built-in model) and
# `make test` (the test suite). Both first install what is missing, and only that
# (tools/setup_env.py): torch only when it cannot be imported (CPU wheels unless an
# NVIDIA driver is present), the package and its extras only when one is missing.
PYTHON ?= python3

.PHONY: setup setup-test demo test bench

setup:
	$(PYTHON) tools/setup_env.py --extras plots

setup-test:
	$(PYTHON) tools/setup_env.py --extras plots,test,diffusers,ray --nodeps requirements-nodeps.txt
	bash tools/install_chromium.sh

demo: setup
	$(PYTHON) -m prompt_pinning --prompt "a red circle, on a blue background" --negative green --outdir outputs

test: setup-test
	$(PYTHON) -m pytest -q
