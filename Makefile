# Two entry points for a fresh machine (no network needed beyond the package registries):
#   make demo  - set up, migrate the embedded SQLite store and score the example samples offline
#   make test  - set up (with the CPU build of torch) and run the whole test suite
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(VENV)/bin/pip
RJ := $(VENV)/bin/rubric-judge

.PHONY: setup setup-dev system-deps demo test lint typecheck check bench clean

$(VENV)/bin/python:
	python3 -m venv $(VENV)
	$(PIP) install -q --upgrade pip

$(VENV)/.core: pyproject.toml | $(VENV)/bin/python
	$(PIP) install -q -e .
	touch $@

# torch is pinned to the CPU build that installs from local disk; unpinned it would pull CUDA.
$(VENV)/.dev: pyproject.toml | $(VENV)/bin/python
	$(PIP) install -q torch==2.13.0
	$(PIP) install -q -e '.[dev,rm,stats,jobs,trainers]'
	touch $@ $(VENV)/.core

setup: $(VENV)/.core
setup-dev: system-deps $(VENV)/.dev

# Debian packages the tests use: headless Chromium (the agreement report's HTML test) and a CJK font.
system-deps:
	@if ! command -v chromium >/dev/null 2>&1 || ! fc-list :lang=zh 2>/dev/null | grep -q .; then \
	  DEBIAN_FRONTEND=noninteractive apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium fonts-wqy-microhei >/dev/null; \
	fi

demo: setup
	$(RJ) migrate
	$(RJ) score examples/samples.jsonl -o out/demo-verdicts.jsonl --rubric prmed-format --judge rules
	$(RJ) rubrics list

lint: setup-dev
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check rubrics judge api reward_model migrations

typecheck: setup-dev
	$(VENV)/bin/mypy rubrics judge api reward_model

test: setup-dev
	$(VENV)/bin/pytest -q

check: lint typecheck test

# Benchmarks print tables (bench/README.md); run them on an idle machine.
BENCHES := bench_scoring bench_rewards bench_jobs bench_reward_model bench_agreement
bench: setup-dev
	@for b in $(BENCHES); do echo "== $$b"; $(PY) bench/$$b.py || exit 1; done

clean:
	rm -rf $(VENV) out rubric-judge.db
