"""Optional extras: which feature needs which, and one clear error when one is missing (CLI line, HTTP 501)."""

from __future__ import annotations

from rubrics.errors import RubricJudgeError

# Top-level modules of the optional extras, and the extra that brings each (pyproject.toml).
EXTRA_OF_MODULE = {
    "numpy": "stats",
    "scipy": "stats",
    "sklearn": "stats",
    "krippendorff": "stats",
    "pingouin": "stats",
    "matplotlib": "stats",
    "arq": "jobs",
    "torch": "rm",
    "transformers": "rm",
    "peft": "rm",
    "tokenizers": "rm",
    "safetensors": "rm",
    "verl": "trainers",
    "trl": "trainers",
}


class MissingExtra(RubricJudgeError):
    """A feature whose optional dependencies are not installed (HTTP 501: this server does not implement it)."""

    status_code = 501

    def __init__(self, extra: str, module: str) -> None:
        super().__init__(
            f"this feature needs the `{extra}` extra ({module} is not installed): pip install 'rubric-judge[{extra}]'"
        )
        self.extra = extra
        self.module = module


def missing_extra(exc: BaseException) -> MissingExtra | None:
    """The :class:`MissingExtra` an ImportError means, or None when it is not an optional extra's module."""
    current: BaseException | None = exc
    while current is not None:
        if isinstance(current, ImportError):
            module = (current.name or "").split(".")[0]
            extra = EXTRA_OF_MODULE.get(module)
            if extra is not None:
                return MissingExtra(extra, module)
        current = current.__cause__ or current.__context__
    return None
