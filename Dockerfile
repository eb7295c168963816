# syntax=docker/dockerfile:1
# rubric-judge API image: a builder stage that fills a virtualenv, a slim runtime that only copies it.
# The reward-model stack (torch, transformers, peft) is left out: it belongs on a GPU image of its own.
#   docker build -t rubric-judge .                       # API + arq job queue + agreement statistics
#   docker build --build-arg EXTRAS=jobs -t rubric-judge:slim .
# Versions come from requirements/docker.lock (make lock), so that a rebuild installs what was tested.

ARG PYTHON_VERSION=3.11

FROM python:${PYTHON_VERSION}-slim AS builder
ARG EXTRAS=jobs,stats
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    VIRTUAL_ENV=/opt/venv \
    PATH=/opt/venv/bin:$PATH
RUN python -m venv /opt/venv && pip install --upgrade pip
WORKDIR /src

# Dependencies first, from pyproject alone, so that a code change does not re-download them.
COPY pyproject.toml README.md ./
COPY requirements/docker.lock ./requirements/docker.lock
RUN python -c "import os, tomllib; p = tomllib.load(open('pyproject.toml', 'rb'))['project']; \
extras = [e for e in os.environ.get('EXTRAS', '').split(',') if e]; \
print('\n'.join(p['dependencies'] + [d for e in extras for d in p['optional-dependencies'][e]]))" \
        > /tmp/requirements.txt \
    && pip install -c requirements/docker.lock -r /tmp/requirements.txt

# Then the project itself (a regular, non-editable install: built-in rubrics and migrations are package data).
COPY rubrics ./rubrics
COPY judge ./judge
COPY api ./api
COPY reward_model ./reward_model
COPY migrations ./migrations
RUN pip install --no-deps . && pip check


FROM python:${PYTHON_VERSION}-slim AS runtime
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    VIRTUAL_ENV=/opt/venv \
    PATH=/opt/venv/bin:$PATH
RUN groupadd --system --gid 10001 app \
    && useradd --system --uid 10001 --gid app --home-dir /app --no-create-home --shell /usr/sbin/nologin app \
    && mkdir -p /app /var/lib/rubric-judge/spool \
    && chown app:app /app /var/lib/rubric-judge/spool
COPY --from=builder /opt/venv /opt/venv
# The working directory is writable by the app user: the default SQLite store (./rubric-judge.db) lives here.
WORKDIR /app
USER app
EXPOSE 8000
# Ready, not just alive: the database answers with the current schema (and Redis, when configured); a 503 fails it.
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 \
    CMD ["python", "-c", "import sys, urllib.request; r = urllib.request.urlopen('http://127.0.0.1:8000/readyz', timeout=4); sys.exit(0 if r.status == 200 else 1)"]
CMD ["rubric-judge", "serve", "--host", "0.0.0.0", "--port", "8000"]
