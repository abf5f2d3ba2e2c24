# coreset-lab: `make run` (the default experiment on bundled data), `make test`.
PYTHON ?= python3.11
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: help install run test test-slow test-all lint format clean

help:  ## list targets
	@grep -E '^[a-z-]+:.*##' $(MAKEFILE_LIST) | awk 'BEGIN{FS=":.*## "}{printf "  %-10s %s\n",$$1,$$2}'

$(STAMP): pyproject.toml constraints.txt
	@command -v $(PYTHON) >/dev/null || { echo "need $(PYTHON) (set PYTHON=...)"; exit 1; }
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e ".[dev,cpu]" -c constraints.txt
	touch $(STAMP)

install: $(STAMP)  ## create .venv and install coreset-lab with its dev tools

run: $(STAMP)  ## the default experiment end to end on scikit-learn's bundled digits
	$(BIN)/coreset-lab $(ARGS)

# One intra-op thread: the tests' models are tiny, and on a 2-core machine two threads per
# process (and per DDP or subprocess worker) oversubscribe the cores many times over.
test: $(STAMP)  ## the test suite (no GPU, no downloads)
	OMP_NUM_THREADS=1 $(BIN)/pytest -q -m "not slow" $(ARGS)

test-slow: $(STAMP)  ## only the slow tier (end-to-end repeats of what the fast tests show; CI runs it)
	OMP_NUM_THREADS=1 $(BIN)/pytest -q -m slow $(ARGS)

test-all: $(STAMP)  ## every test, the slow end-to-end ones too
	OMP_NUM_THREADS=1 $(BIN)/pytest -q $(ARGS)

lint: $(STAMP)  ## ruff
	$(BIN)/ruff check coreset_lab tests scripts benchmarks

format: $(STAMP)
	$(BIN)/ruff format coreset_lab tests scripts benchmarks

clean:  ## remove run outputs and caches (not the venv)
	rm -rf outputs/runs outputs/multirun outputs/store .pytest_cache .ruff_cache
