"""Alembic migrations of the store; applied by ``rubric-judge migrate`` (see :mod:`judge.store.migrate`)."""
