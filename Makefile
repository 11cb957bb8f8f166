# vsrpipe developer commands. `make demo` sets everything up and upscales the sample clip;
# `make test` sets up and runs the default test suite.

PYTHON ?= $(shell pyenv which python3.12 2>/dev/null || command -v python3.12 || command -v python3)
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: setup demo test test-slow test-all mutation bench docs clean cli-reference

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; assert sys.version_info >= (3, 12), f"vsrpipe needs Python >= 3.12, {sys.executable} is {sys.version.split()[0]}"'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	$(BIN)/vapoursynth config
	@touch $@

setup: $(STAMP)

demo: setup
	@mkdir -p out
	$(BIN)/vsrpipe enhance examples/sample.mp4 out/sample_x4.mp4 --overwrite
	@echo "Upscaled clip: out/sample_x4.mp4"

test: setup
	$(BIN)/python -m pytest

test-slow: setup
	$(BIN)/python -m pytest -m slow

test-all: setup
	$(BIN)/python -m pytest -m ''

# Mutation testing of the core modules listed under [tool.mutmut] in pyproject.toml (slow:
# hours on two cores; not part of `make test`). Scores: docs/benchmarks.md#test-strength.
# mutmut forks one child per mutant from a process that has already run the tests: with
# torch's OpenMP/MKL thread pools started in the parent, the children deadlock in them and
# show up as false "timeouts"; one thread each keeps the forked children safe. (PyAV's cached
# swscale context has the same problem: tests/io/conftest.py drops it after a fork.)
mutation: setup
	OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 $(BIN)/mutmut run
	$(BIN)/mutmut results

bench: setup
	$(BIN)/python benchmarks/bench_pipeline.py

docs: setup
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict -d out/site
	@echo "Documentation: out/site/index.html"

clean:
	rm -rf $(VENV) out .pytest_cache mutants .hypothesis

cli-reference: setup
	$(BIN)/python scripts/gen_cli_reference.py
