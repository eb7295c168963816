"""The ``rubric-judge`` command line, one module per command group; ``app`` is the entry point."""

from judge.cli.app import app

__all__ = ["app"]
