# Two entry points for a fresh machine (no network needed beyond the package registries):
#   make demo  - set up, migrate the embedded SQLite store and score the example samples offline
#   make test  - set up (with the CPU build of torch) and run the whole test suite
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(VENV)/bin/pip
RJ := $(VENV)/bin/rubric-judge

.PHONY: setup setup-dev system-deps demo test lint typecheck check bench clean lock

$(VENV)/bin/python:
	python3 -m venv $(VENV)
	$(PIP) install -q --upgrade pip

# Versions come from the lock files (make lock): requirements/docker.lock for the service, requirements/ci.lock for
# development and CI (every extra, torch left out).
$(VENV)/.core: pyproject.toml requirements/docker.lock | $(VENV)/bin/python
	$(PIP) install -q -c requirements/docker.lock -e .
	touch $@

# torch is pinned to the CPU build that installs from local disk; unpinned it would pull CUDA.
$(VENV)/.dev: pyproject.toml requirements/ci.lock | $(VENV)/bin/python
	$(PIP) install -q torch==2.13.0
	$(PIP) install -q -c requirements/ci.lock -e '.[dev,rm,stats,jobs,export,trainers,trainer_agent_loops]'
	touch $@ $(VENV)/.core

# Re-resolve the locks (uv, into the venv); commit both. ci.lock pins every extra for the CPU torch in ci.in.
UV_COMPILE = $(VENV)/bin/uv pip compile pyproject.toml --python-version 3.11 --python-platform x86_64-manylinux_2_28 --no-header
lock: | $(VENV)/bin/python
	$(PIP) install -q uv
	$(UV_COMPILE) --extra dev --extra rm --extra stats --extra jobs --extra export --extra trainers --extra trainer_agent_loops --find-links /opt/wheels \
	    -c requirements/ci.in --no-emit-package torch -o requirements/ci.lock
	$(UV_COMPILE) --extra jobs --extra stats -c requirements/ci.lock -o requirements/docker.lock

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
BENCHES := bench_scoring bench_rewards bench_jobs bench_reward_model bench_agreement bench_studies bench_cost bench_simulate bench_integrity bench_reliability bench_verl
bench: setup-dev
	@for b in $(BENCHES); do echo "== $$b"; $(PY) bench/$$b.py || exit 1; done

clean:
	rm -rf $(VENV) out rubric-judge.db
