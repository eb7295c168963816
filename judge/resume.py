"""Resuming a JSONL run from its own output: which input lines are already written.

The output files are the record, so a run keeps no state of its own. A rerun reads which line numbers they
hold (a torn last line, from a crash mid-write, is cut off first) and does every other line. Line numbers
are kept in a bitmap, an eighth of a byte per input line, so memory stays flat for millions of lines. Used
by ``rubric-judge score`` and by local ``filter``/``curate`` runs.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from pathlib import Path

import orjson

_PREFIX = b'{"line":'


class LineSet:
    """A set of positive line numbers as a growable bitmap."""

    def __init__(self) -> None:
        self._bits = bytearray()
        self.count = 0

    def add(self, line: int) -> None:
        index, bit = divmod(line, 8)
        if index >= len(self._bits):
            self._bits.extend(bytes(index - len(self._bits) + 1 + len(self._bits) // 2))
        if not self._bits[index] & (1 << bit):
            self._bits[index] |= 1 << bit
            self.count += 1

    def __contains__(self, line: object) -> bool:
        if not isinstance(line, int):
            return False
        index, bit = divmod(line, 8)
        return index < len(self._bits) and bool(self._bits[index] & (1 << bit))


def record_line(raw: bytes) -> int | None:
    """The ``line`` of an output record: read from its fixed prefix, else by parsing it."""
    if raw.startswith(_PREFIX):
        end = raw.find(b",", len(_PREFIX))
        if end != -1:
            try:
                return int(raw[len(_PREFIX) : end])
            except ValueError:
                pass
    try:
        value = orjson.loads(raw).get("line")
    except (orjson.JSONDecodeError, AttributeError):
        return None
    return value if isinstance(value, int) else None


def cut_torn_tail(path: Path) -> None:
    """Drop a last line without its newline: a record cut by a crash is redone, not half-kept."""
    if not path.exists():
        return
    with path.open("r+b") as fh:
        size = fh.seek(0, os.SEEK_END)
        if size == 0:
            return
        pos = size
        while pos > 0:
            step = min(1 << 16, pos)
            fh.seek(pos - step)
            block = fh.read(step)
            newline = block.rfind(b"\n")
            if newline != -1:
                end = pos - step + newline + 1
                if end < size:
                    fh.truncate(end)
                return
            pos -= step
        fh.truncate(0)


def iter_records(path: Path) -> Iterator[bytes]:
    if not path.exists():
        return
    with path.open("rb") as fh:
        for raw in fh:
            if raw.strip():
                yield raw


def done_lines(paths: Iterable[Path]) -> LineSet:
    """Line numbers already written to any of the output files (after cutting torn tails)."""
    done = LineSet()
    for path in paths:
        cut_torn_tail(path)
        for raw in iter_records(path):
            line = record_line(raw)
            if line is not None:
                done.add(line)
    return done


def count_lines(path: Path) -> int:
    """Non-blank lines of the input (what the progress bar counts)."""
    count = 0
    with path.open("rb") as fh:
        for raw in fh:
            count += bool(raw.strip())
    return count
