# Quick start: `make demo` and `make test`. Both set up .venv, install the dependencies, build the
# extension (incrementally: ninja recompiles only what changed) and run.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
DEPS_STAMP := $(VENV)/.deps-installed
PKG_STAMP := $(VENV)/.pkg-installed
EXT_STAMP := build/.ext-built
EXT_SOURCES := $(shell find csrc -name '*.cpp' -o -name '*.cu' -o -name '*.h' -o -name '*.cuh') setup.py

# Nothing may come from a model hub at run time.
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1
export MPLBACKEND := Agg

.PHONY: all build demo test test-slow test-cuda bench bench-compare clean

all: build

$(DEPS_STAMP): requirements-dev.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements-dev.txt
	touch $@

# Register the package (editable) and its console script; the extension itself is built below, in place.
$(PKG_STAMP): $(DEPS_STAMP) pyproject.toml setup.py
	RGPRUNE_SKIP_EXT=1 $(PY) -m pip install --quiet --no-build-isolation --no-deps -e .
	touch $@

$(EXT_STAMP): $(PKG_STAMP) $(EXT_SOURCES)
	$(PY) setup.py --quiet build_ext --inplace
	mkdir -p build && touch $@

build: $(EXT_STAMP)

demo: build
	$(PY) -m rgprune.cli demo

test: build
	$(PY) -m pytest -q

test-slow: build
	$(PY) -m pytest -q -m slow

test-cuda: build
	$(PY) -m pytest -q -m cuda

bench: build
	$(PY) -m pytest -q bench -m "not slow" --benchmark-only

bench-compare: build
	$(PY) -m bench.compare

clean:
	rm -rf build rgprune/_C*.so *.egg-info
