# One entry point for people and CI. `make book` builds the course; `make test` runs every test.
# Both do every set-up step on first use (the virtual environment .venv, and the system packages: Debian's
# Fashion-MNIST for the book, Chromium for the browser test), with only Python 3.11 (or 3.12) and make present.

PYTHON ?= $(shell command -v python3.11 || command -v python3.12 || command -v python3)
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed-stamp
JB     := $(VENV)/bin/jupyter-book

.PHONY: all env book execute student system-deps lint test test-slow test-unit test-notebooks test-colab bench clean help

help:  ## list the targets
	@grep -E '^[a-z-]+:.*##' $(MAKEFILE_LIST) | sed 's/:.*##/ --/'

all: book

env: $(STAMP)  ## create .venv and install the package with its book and test extras

$(STAMP): pyproject.toml constraints.txt
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -c constraints.txt -e ".[book,dev]"
	@touch $@

book: $(STAMP) system-deps  ## execute every chapter and build the static site into _build/html
	TQDM_DISABLE=1 $(JB) build . -W -n --keep-going

execute: $(STAMP)  ## re-execute the notebooks in book/ in place (quick scale), storing their outputs
	LOWRANK_SCALE=quick $(PY) scripts/execute_notebooks.py book/*.ipynb book/backmatter/*.ipynb

student: $(STAMP)  ## regenerate student/ (solutions replaced by stubs) from book/
	$(PY) -m lowrank_utils.exercises book student

system-deps:  ## install Chromium, chromedriver and Debian's Fashion-MNIST when missing (apt-get, if permitted)
	@scripts/install_system_deps.sh

lint: $(STAMP)  ## ruff (code and notebooks) and mypy, configured in pyproject.toml: both must report nothing
	$(PY) -m ruff check .
	$(PY) -m mypy

# lint runs first (a few seconds), so a finding stops `make test` before the long tests start.
test: $(STAMP) lint system-deps  ## lint, then every test but the slow ones: unit tests, nbval, the stub grading round trip, the site in Chromium
	LOWRANK_SCALE=quick $(PY) -m pytest -n auto --dist loadfile --durations=15 -m "not slow"

test-slow: $(STAMP)  ## the tests marked slow: nbgrader grading of every chapter's reference solutions (CI runs it)
	LOWRANK_SCALE=quick $(PY) -m pytest -n auto --dist loadfile --durations=15 -m slow

test-unit: $(STAMP)  ## only the package's unit tests
	$(PY) -m pytest tests

test-notebooks: $(STAMP)  ## only nbval over book/
	LOWRANK_SCALE=quick $(PY) -m pytest book

test-colab: system-deps  ## each chapter alone in a Colab-like Python 3.12 env (ipywidgets 7.7.1, package installed from the checkout)
	scripts/colab_like_test.sh $(PYTHON312)

bench: $(STAMP)  ## speed benchmarks (ratios against baselines measured in the same run)
	$(PY) benchmarks/bench_rank.py
	$(PY) benchmarks/bench_overparam.py

clean:  ## remove the built site and caches (keeps .venv)
	rm -rf _build .pytest_cache .venv-colab
