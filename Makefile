# One command per job; each creates .venv with the pinned packages when missing.
#   make book     build the HTML book, instructor edition (solutions too), into _build/html/
#   make book-student  the student edition, without any instructor material, into _build/student/_build/html/
#   make linkcheck     check the book's links (LINKCHECK_EXTERNAL=1 also checks other sites; needs the internet)
#   make test     run the whole test suite
#   make test-cuda  the checks, wrong kernels and kernel benchmark on a GPU, with a plain Python (no venv, no install)
#   make release  regenerate what follows from solutions/ and the TOC: notebooks/ (nbgrader), the Colab
#                 install cells and the README's table of exercises
#   make lab      open JupyterLab on the student notebooks
#   make check    your progress through the course: visible checks of notebooks/
#   make grade    grade a class: make grade ASSIGNMENT=<aid> SUBMISSIONS=<folder or zip> OUT=<folder>
#   make gradescope  the Gradescope autograder of one assignment: make gradescope ASSIGNMENT=<aid> OUT=<folder>
#   make bench    timings as ratios against a baseline run side by side
#   make clean    remove build outputs (never your notebooks)

SHELL   := /bin/bash
PYTHON  ?= python3
VENV    := .venv
BIN     := $(abspath $(VENV))/bin
STAMP   := $(VENV)/.installed-stamp
NOTEBOOKS ?= notebooks

# nbgrader runs the `alembic` executable: the venv's bin/ must be on PATH for every call.
export PATH := $(BIN):$(PATH)
# nbgrader reads its configuration from autograder/nbgrader_config.py.
export JUPYTER_CONFIG_PATH := $(abspath autograder)
export PYDEVD_DISABLE_FILE_VALIDATION := 1

ASSIGNMENTS := $(notdir $(wildcard solutions/*))

# MathJax served from the book itself, so math renders offline (npm package, pinned).
MATHJAX_VERSION := 3.2.2
MATHJAX_NPM     := $(VENV)/share/mathjax-npm
MATHJAX         := $(VENV)/share/mathjax-static/mathjax/tex-chtml.js

.PHONY: venv book book-student linkcheck test test-cuda release lab check grade gradescope bench clean FORCE

venv: $(STAMP)

# Reinstall only when what is installed changes, never for a file's date (a fresh clone next to an existing
# .venv has a newer pyproject.toml and the same packages). The stamp holds a sha256 of what `pip install -e
# '.[dev]'` reads from pyproject.toml: [build-system], the project's name, requires-python and dependency
# lists, its optional dependencies, scripts and package selection; comments, blank lines, the version and the
# description do not count. The stamp's rule runs when the stamp is missing or holds another hash.
HASH_CHAR := \#
INSTALL_HASH := $(shell awk '/^\[/ { sec = $$0; inlist = 0 } \
	/^[ \t]*$(HASH_CHAR)/ || /^[ \t]*$$/ { next } \
	sec == "[build-system]" || sec == "[project.optional-dependencies]" || sec == "[project.scripts]" \
	  || sec ~ /^\[tool\.setuptools/ { print; next } \
	sec == "[project]" && /^(name|requires-python|dependencies)[ \t]*=/ { print; inlist = ($$0 ~ /\[/ && $$0 !~ /\]/); next } \
	sec == "[project]" && inlist { print; if ($$0 ~ /\]/) inlist = 0 }' pyproject.toml 2>/dev/null \
	| sha256sum | cut -c1-64)
INSTALLED_HASH := $(shell cat $(STAMP) 2>/dev/null)

$(STAMP): $(if $(and $(INSTALL_HASH),$(filter $(INSTALL_HASH),$(INSTALLED_HASH))),,FORCE)
	@# An empty stamp newer than pyproject.toml was written by the date-based rule this one replaced: adopt it.
	@if [ -f $(STAMP) ] && [ ! -s $(STAMP) ] && [ $(STAMP) -nt pyproject.toml ]; then echo $(INSTALL_HASH) > $(STAMP); exit 0; fi; \
	$(MAKE) --no-print-directory _install

.PHONY: _install
_install:
	@command -v $(PYTHON) >/dev/null 2>&1 || { echo "error: '$(PYTHON)' not found. Install Python 3.11 or newer (or run: make PYTHON=/path/to/python3.11 ...)."; exit 1; }
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))' || { echo "error: Python 3.11 or newer is needed; '$(PYTHON)' is $$($(PYTHON) --version 2>&1). Run: make PYTHON=/path/to/python3.11 ..."; exit 1; }
	@test -x $(VENV)/bin/python || $(PYTHON) -m venv $(VENV)
	@echo "Installing the pinned packages into $(VENV) (once; about a minute)..."
	@$(VENV)/bin/python -m pip install -q --upgrade pip >/dev/null 2>&1 || true
	@$(VENV)/bin/python -m pip install -q -e '.[dev]' || { echo "error: could not install the pinned packages into $(VENV). Is the Python package index reachable from this machine? (pip's own message is above.)"; exit 1; }
	@echo $(INSTALL_HASH) > $(STAMP)

FORCE:

$(MATHJAX):
	@command -v npm >/dev/null 2>&1 || { echo "error: npm (Node.js) is needed once, to fetch MathJax $(MATHJAX_VERSION) so the book's math renders offline. Install nodejs and npm."; exit 1; }
	@rm -rf $(MATHJAX_NPM) $(dir $(MATHJAX))
	@npm install --silent --no-audit --no-fund --prefix $(MATHJAX_NPM) mathjax@$(MATHJAX_VERSION) || { echo "error: could not install MathJax from the npm registry. Is it reachable?"; exit 1; }
	@mkdir -p $(dir $(MATHJAX))
	@cd $(MATHJAX_NPM)/node_modules/mathjax/es5 && cp -r tex-chtml.js input output ui a11y adaptors $(abspath $(dir $(MATHJAX)))/

# Both editions build with warnings as errors and nitpicky references (autograder/book.py) and
# share one execution cache, so the second one executes nothing again.
book: $(STAMP) $(MATHJAX)
	$(BIN)/python -m autograder.book --edition instructor

book-student: $(STAMP) $(MATHJAX)
	$(BIN)/python -m autograder.book --edition student

linkcheck: $(STAMP) $(MATHJAX)
	$(BIN)/python -m autograder.book --edition instructor --builder linkcheck $(if $(LINKCHECK_EXTERNAL),--external)

test: $(STAMP) $(MATHJAX)
	$(BIN)/python -m pytest $(PYTEST_ARGS)

# The CUDA path in one command, on a machine with a GPU: no venv and no install step (that machine may be offline),
# only $(PYTHON) with a CUDA build of torch, numpy, pytest and hypothesis (make test-cuda PYTHON=/path/to/python3).
# Without CUDA it says so and exits 0; tests/test_cuda_command.py runs it with --device cpu in make test.
test-cuda:
	@$(PYTHON) tests/cuda_check.py $(CUDA_ARGS)

release: $(STAMP)
	@mkdir -p .grading
	@$(BIN)/python -m autograder.book.colab
	@for aid in $(ASSIGNMENTS); do \
	  $(BIN)/nbgrader generate_assignment "$$aid" --force --log-level=WARN || exit 1; \
	done
	@echo "Regenerated notebooks/ from solutions/ ($(ASSIGNMENTS))."

lab: $(STAMP)
	$(BIN)/jupyter lab $(NOTEBOOKS)

check: $(STAMP)
	@$(BIN)/python -m autograder.progress $(NOTEBOOKS)

grade: $(STAMP)
	@test -n "$(ASSIGNMENT)" -a -n "$(SUBMISSIONS)" -a -n "$(OUT)" || { echo "usage: make grade ASSIGNMENT=<aid> SUBMISSIONS=<folder or zip> OUT=<folder> [GRADE_ARGS=\"--force --unsafe-no-sandbox ...\"]"; exit 2; }
	$(BIN)/python -m autograder.grading "$(ASSIGNMENT)" "$(SUBMISSIONS)" "$(OUT)" $(GRADE_ARGS)

gradescope: $(STAMP)
	@test -n "$(ASSIGNMENT)" -a -n "$(OUT)" || { echo "usage: make gradescope ASSIGNMENT=<aid> OUT=<folder>"; exit 2; }
	$(BIN)/python -m autograder.grading.gradescope build "$(ASSIGNMENT)" "$(OUT)"

bench: $(STAMP)
	$(BIN)/python -m autograder.bench $(BENCH_ARGS)

clean:
	rm -rf _build .pytest_cache .hypothesis
