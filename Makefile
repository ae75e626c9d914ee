# make demo / make test: each creates .venv when missing and installs what it needs.
# Torch comes from TORCH_SPEC (default: the 2.13.0 CPU wheel these machines carry, so a fresh
# machine never pulls a multi-GB CUDA build by accident). GPU users, for example:
#   make demo TORCH_SPEC="torch==2.13.0" TORCH_INDEX="--index-url https://download.pytorch.org/whl/cu128"
PYTHON ?= python3
VENV ?= .venv
TORCH_SPEC ?= torch==2.13.0
TORCH_INDEX ?=
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
ARGS ?=
DEMO_OUT ?= demo_out

.PHONY: demo test test-browser check-cuda-build space space-bundle install-dev install-train benchmark clean

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip

$(VENV)/.torch: | $(PY)
	$(PIP) install -q "$(TORCH_SPEC)" $(TORCH_INDEX)
	touch $@

$(VENV)/.train: pyproject.toml $(VENV)/.torch
	$(PIP) install -q -e ".[train]"
	touch $@

$(VENV)/.dev: pyproject.toml $(VENV)/.torch
	$(PIP) install -q -e ".[dev]"
	touch $@

install-train: $(VENV)/.train
install-dev: $(VENV)/.dev

demo: $(VENV)/.train
	$(VENV)/bin/gan-partseg demo --out $(DEMO_OUT) $(ARGS)

test: $(VENV)/.dev
	$(VENV)/bin/ruff check .
	$(PY) -m pytest -q $(ARGS)

# The Space in a real headless Chromium (Debian's chromium + chromium-driver, Selenium). Kept out of
# `make test` because it installs system packages (apt, root) that CI machines may not allow.
test-browser: $(VENV)/.dev
	command -v chromium >/dev/null && command -v chromedriver >/dev/null || \
		(apt-get update -qq && apt-get install -y -qq chromium chromium-driver)
	$(PIP) install -q "selenium>=4.20"
	$(PY) -m pytest -q -m browser tests/browser $(ARGS)

# The CUDA sources of csrc/ compile with nvcc (objects only; linking needs a CUDA torch build).
check-cuda-build: $(VENV)/.dev
	scripts/check_cuda_build.sh

space: $(VENV)/.dev
	$(PY) spaces_app/app.py

# The folder to upload as a Hugging Face Space: app, front matter, requirements and the package's wheel.
space-bundle: $(VENV)/.dev
	$(PY) spaces_app/bundle.py build/space

benchmark: $(VENV)/.dev
	$(PY) benchmarks/generator.py

clean:
	rm -rf $(VENV) $(DEMO_OUT) .pytest_cache
