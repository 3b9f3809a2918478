# Two commands after cloning: `make run` (install everything, transcribe a sample)
# and `make test` (lint, types, the test suite against real Redis and real workers).
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
FILE ?= samples/jfk.mp3
ARGS ?=

.PHONY: install run test lint format bench clean audit constraints

# One line per step on the terminal; what pip says goes to $(LOG), shown (its end) when a step fails.
LOG := $(VENV)/install.log
FAILED = { tail -n 30 $(LOG); echo "make: that step failed; the whole log is $(LOG)"; exit 1; }

# torch is pinned and installed first: an unpinned one pulls a multi-GB CUDA build.
$(VENV)/.installed: pyproject.toml constraints.txt
	@echo "make: creating $(VENV) (pip's output goes to $(LOG))"
	@$(PYTHON) -m venv $(VENV) && : > $(LOG)
	@$(BIN)/pip install --quiet --upgrade pip >>$(LOG) 2>&1 || $(FAILED)
	@echo "make: installing torch (the pinned CPU build)"
	@$(BIN)/pip install --quiet -c constraints.txt torch==2.13.0 >>$(LOG) 2>&1 || $(FAILED)
	@echo "make: installing whisperfarm with its worker, models, embedded, api and dev extras"
	@$(BIN)/pip install --quiet -c constraints.txt -e '.[worker,models,embedded,api,dev]' >>$(LOG) 2>&1 || $(FAILED)
	@touch $@

install: $(VENV)/.installed

run: install
	@echo "make: farm transcribe $(FILE) $(ARGS)"
	@$(BIN)/farm transcribe $(FILE) $(ARGS)

lint: install
	$(BIN)/ruff check farm tasks tests bench
	$(BIN)/ruff format --check farm tasks tests bench
	$(BIN)/mypy
	$(BIN)/lint-imports

test: lint
	$(BIN)/pytest

format: install
	$(BIN)/ruff format farm tasks tests bench
	$(BIN)/ruff check --fix farm tasks tests bench

bench: install
	$(BIN)/python bench/wer.py

# Known vulnerabilities in the pinned versions (PyPI's advisory data). It reports and never
# fails the build: an advisory, or PyPI out of reach, is for people to read, not a red CI.
audit: install
	-$(BIN)/pip-audit --requirement constraints.txt --no-deps --disable-pip --progress-spinner off \
		|| echo "pip-audit: vulnerabilities found or PyPI unreachable (see above); not failing the build"

# Re-pin after changing dependencies: in a fresh `make install` venv the freeze is exactly
# the project's dependency closure (local labels such as +cpu dropped).
constraints: install
	{ sed -n '/^#/p' constraints.txt; $(BIN)/pip freeze --exclude-editable \
		| grep -viE '^(pip|setuptools)==' | sed -e 's/+[A-Za-z0-9.]*$$//'; } > constraints.txt.new
	mv constraints.txt.new constraints.txt

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
