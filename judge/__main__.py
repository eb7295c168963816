"""``python -m judge`` runs the CLI (the same as the ``rubric-judge`` console script)."""

from judge.cli import app

app()
