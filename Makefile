# drnb: one entry point. Every target first makes sure .venv holds the pinned stack (fast when it does).
SHELL := /bin/bash
PY    := .venv/bin/python
VENV_STAMP := .venv/.drnb-installed
export VIRTUAL_ENV := $(CURDIR)/.venv
export PATH := $(CURDIR)/.venv/bin:$(PATH)
export PYTHONHASHSEED ?= 0
HAS_CUDA = $(shell $(PY) -c "import torch;print(int(torch.cuda.is_available()))" 2>/dev/null)

.PHONY: help venv demo test check-export nbtest pytest docs bench lab clean-nbs export

help:
	@echo "make demo   - set up .venv and run the main job (drnb demo) on synthetic data"
	@echo "make test   - set up .venv, check drnb/ matches the notebooks, run every notebook and pytest"
	@echo "make docs   - build the documentation site offline into docs/_site"
	@echo "make bench  - print performance figures (bench/bench_*.py)"
	@echo "make lab    - start JupyterLab on the notebooks"

venv: $(VENV_STAMP)

# torch + torchvision come from this machine's disk (pip's find-links); then the project with its dev extras.
$(VENV_STAMP): pyproject.toml setup.py
	@test -x $(PY) || python3.11 -m venv .venv || python3 -m venv .venv
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q "torch==2.14.1" "torchvision==0.29.1"
	$(PY) -m pip install -q -e ".[dev]"
	@touch $@

export: venv
	nbdev-export

demo: venv
	drnb demo

check-export: venv
	$(PY) tools/check_export.py

# every notebook except the papermill templates; cells flagged `slow` are skipped, `cuda` ones run only with a GPU
nbtest: venv
	nbdev-test --n-workers 1 --timing --skip-folder-re '^(experiments|results)$$' $(if $(filter 1,$(HAS_CUDA)),--flags cuda,)

pytest: venv
	$(PY) -m pytest tests -q -ra $(PYTEST_ARGS)

test:
	@set -o pipefail; start=$$(date +%s); \
	$(MAKE) --no-print-directory venv && \
	$(PY) tools/check_export.py && \
	echo "make test: set-up done in $$(( $$(date +%s) - start )) s" && \
	$(MAKE) --no-print-directory nbtest && \
	$(MAKE) --no-print-directory pytest; rc=$$?; \
	echo "make test: exit $$rc after $$(( $$(date +%s) - start )) s"; exit $$rc

docs: venv
	$(PY) tools/build_docs.py

# benchmarks are only right on a quiet machine: the 1-minute load is printed first, with a warning above 1.5
bench: venv
	@load=$$(cut -d' ' -f1 /proc/loadavg); echo "make bench: 1-minute load $$load before starting"; \
	if awk "BEGIN{exit !($$load > 1.5)}"; then echo "make bench: WARNING: load $$load > 1.5, figures taken now are wrong (stop other jobs first)"; fi
	@for b in bench/bench_*.py; do echo "== $$b"; $(PY) $$b || exit 1; done

lab: venv
	jupyter lab --allow-root --no-browser --ip 127.0.0.1 nbs

clean-nbs: venv
	nbdev-clean
