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

.PHONY: all build demo test lint test-reference test-random-order test-slow test-cuda bench bench-compare clean findings-1 \
	findings-2 findings-3 gpu-check

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

# ruff (pinned in requirements-dev.txt, configured in pyproject.toml): the lint rules, and the formatting the
# whole tree follows. `$(PY) -m ruff format .` applies it.
lint: $(DEPS_STAMP)
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .

# The op, pruner, prunable and distributed tests on the pure-PyTorch reference alone: RGPRUNE_BACKEND=reference
# keeps rgprune._C from loading (so it needs no build), and the tests that compare the compiled kernels with
# the reference skip. A few minutes on 2 cores: the reference sorts, so the torch.prune comparisons on
# ResNet-50 and BERT-base (25M and 85M weights, ~2 and ~4.5 min on the reference) and the 400 MB streaming
# memory test are left to `make test` (the ResNet-18 comparison stays). The test files that belong here carry
# the marker `reference` (pytestmark; declared in pyproject.toml).
REFERENCE_SLOW := (test_masks_equal_torch_prune_three_rounds and (resnet50 or bert)) \
	or test_streaming_memory_does_not_grow_with_the_model

test-reference: $(PKG_STAMP)
	RGPRUNE_BACKEND=reference $(PY) -m pytest -q tests -m "reference and not slow" -k "not ($(REFERENCE_SLOW))"

# The default suite in a random order (pytest-randomly: pyproject.toml's addopts keep it off in a normal run, and
# the later -p randomly turns it back on), to find tests that depend on the order they run in. It prints the seed
# first (-q hides pytest-randomly's own header); `make test-random-order RANDOM_ORDER_SEED=N` replays that order.
test-random-order: build
	@seed=$(RANDOM_ORDER_SEED); seed=$${seed:-$$(od -An -N4 -tu4 /dev/urandom | tr -d ' ')}; \
	echo "test-random-order: --randomly-seed=$$seed (replay: make test-random-order RANDOM_ORDER_SEED=$$seed)"; \
	echo "$(PY) -m pytest -q -p randomly --randomly-seed=$$seed"; \
	$(PY) -m pytest -q -p randomly --randomly-seed=$$seed

test-slow: build
	$(PY) -m pytest -q -m slow

test-cuda: build
	$(PY) -m pytest -q -m cuda

bench: build
	$(PY) -m pytest -q bench -m "not slow" --benchmark-only

bench-compare: build
	$(PY) -m bench.compare

# Every GPU check in one command, < 8 minutes on one H100 (bench/gpu_check.py): builds, then the CUDA tests,
# compute-sanitizer (memcheck, racecheck, synccheck) on a reduced case set and `rgprune bench --device cuda`;
# writes bench/results/gpu-tests-<date>.txt and gpu-<date>.json. Without a GPU: the build and the simulator tests
# only, nothing written. GPU_CHECK_DRY_RUN=1 prints the commands instead. Runs under the system python: it
# makes .venv itself (make build).
gpu-check:
	$(PYTHON) bench/gpu_check.py

# The experiments of docs/findings.md (hours on 2 CPU cores; every step resumes where it stopped). Each step can be
# shared by n processes: run the same command with --shard 0/n ... --shard n-1/n at once. The run directories go to
# FINDINGS_RUNS (git-ignored), the summaries to docs/findings-data/, and docs/findings.py --write updates the document.
FINDINGS_RUNS ?= runs/findings
EXPERIMENTS := $(PY) -m rgprune.experiments

findings-1: build
	$(EXPERIMENTS) run finding1 imp --runs $(FINDINGS_RUNS)
	$(EXPERIMENTS) collect finding1 --runs $(FINDINGS_RUNS)
	$(EXPERIMENTS) run finding1 baselines --runs $(FINDINGS_RUNS)
	$(EXPERIMENTS) run finding1 transfer --runs $(FINDINGS_RUNS)
	$(EXPERIMENTS) collect finding1 --runs $(FINDINGS_RUNS)
	$(PY) docs/findings.py --write

findings-3: build
	$(EXPERIMENTS) run finding3 imp --runs $(FINDINGS_RUNS)
	$(EXPERIMENTS) collect finding3 --runs $(FINDINGS_RUNS)
	$(PY) docs/findings.py --write

findings-2: build
	$(EXPERIMENTS) run finding2 imp --runs $(FINDINGS_RUNS)
	$(EXPERIMENTS) collect finding2 --runs $(FINDINGS_RUNS)
	$(PY) docs/findings.py --write

clean:
	rm -rf build rgprune/_C*.so *.egg-info

# Mutation testing (cosmic-ray, pinned in requirements-dev.txt; docs/mutation.md): mutates the modules that decide
# results, area by area (mutation/areas.toml), on a scratch copy under build/mutation/, and prints the survivors
# not listed in mutation/equivalent.toml and the score per module. Resumable: each run stops after
# MUTATION_BUDGET minutes (25) and the next goes on where it stopped. Hours in all on 2 cores, so not in CI.
# `make mutation AREA=masks` runs one area.
.PHONY: mutation
MUTATION_BUDGET ?= 25
mutation: build
	nice -n 15 $(PY) tools/mutation.py $(if $(AREA),--area $(AREA)) --budget-min $(MUTATION_BUDGET)
