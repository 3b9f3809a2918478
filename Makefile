# Two commands after cloning: `make run` (install everything, transcribe a sample)
# and `make test` (lint, types, the test suite against real Redis and real workers).
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
FILE ?= samples/jfk.mp3
ARGS ?=

.PHONY: install run test lint format bench clean

# torch is pinned and installed first: an unpinned one pulls a multi-GB CUDA build.
$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet torch==2.13.0
	$(BIN)/pip install --quiet -e '.[worker,models,embedded,dev]'
	touch $@

install: $(VENV)/.installed

run: install
	$(BIN)/farm transcribe $(FILE) $(ARGS)

lint: install
	$(BIN)/ruff check farm tasks tests bench
	$(BIN)/ruff format --check farm tasks tests bench
	$(BIN)/mypy

test: lint
	$(BIN)/pytest

format: install
	$(BIN)/ruff format farm tasks tests bench
	$(BIN)/ruff check --fix farm tasks tests bench

bench: install
	$(BIN)/python bench/wer.py

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
