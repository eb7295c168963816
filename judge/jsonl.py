"""One wording for a JSONL line that is not JSON, wherever a file is read (score, filter/curate jobs, ratings
import): ``invalid JSON (<where and why>)``, reported with its line number as ``line N: invalid JSON (…)``."""

from __future__ import annotations

from pathlib import Path

import orjson


def invalid_json(raw: bytes | str) -> str | None:
    """``invalid JSON (…)`` if ``raw`` does not parse, else None (positions as in the line, without its newline)."""
    try:
        orjson.loads(raw.rstrip(b"\r\n") if isinstance(raw, bytes) else raw.rstrip("\r\n"))
    except orjson.JSONDecodeError as exc:
        return f"invalid JSON ({exc})"
    return None


def line_error(line: int, message: str) -> str:
    """How a bad line is shown to a person."""
    return f"line {line}: {message}"


def first_bad_lines(path: Path, limit: int = 3) -> list[str]:
    """``line N: reason`` for the first ``limit`` bad-line records of an output file (score's errors file, or the
    ``invalid`` records of filter/curate), for the end of a run."""
    shown: list[str] = []
    if not path.exists():
        return shown
    with path.open("rb") as fh:
        for raw in fh:
            try:
                record = orjson.loads(raw)
            except orjson.JSONDecodeError:
                continue
            if record.get("outcome", "invalid") != "invalid" or "line" not in record:
                continue
            shown.append(line_error(int(record["line"]), str(record.get("error") or "invalid line")))
            if len(shown) >= limit:
                break
    return shown
