"""The local spool: verdicts the store could not take yet, one JSON line each, fsynced, replayed later.

A file belongs to one database (its URL's hash is in the name) and to the process writing it, which holds an
exclusive ``flock`` on it while open. Replay claims only unlocked files of the same database, so two processes
never replay the same file and a file still being written is never taken. Replayed rows are inserted with
ON CONFLICT DO NOTHING on the verdict id, so a file replayed twice (a crash between commit and unlink) is safe.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import logging
import os
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import orjson

from judge.samples import Sample
from judge.verdicts import Verdict

log = logging.getLogger(__name__)

__all__ = ["Spool", "SpooledFile", "decode", "encode"]


def encode(verdict: Verdict, sample: Sample) -> bytes:
    return orjson.dumps({"verdict": verdict.model_dump(mode="json"), "sample": sample.model_dump(mode="json")})


def decode(line: bytes) -> tuple[Verdict, Sample]:
    record = orjson.loads(line)
    return Verdict.model_validate(record["verdict"]), Sample.model_validate(record["sample"])


@dataclass
class SpooledFile:
    """A claimed spool file (locked by this process until :meth:`release`)."""

    path: Path
    handle: IO[bytes]

    def records(self) -> Iterator[tuple[Verdict, Sample]]:
        """Every readable record; a torn last line (a crash mid-write) is skipped with a warning."""
        self.handle.seek(0)
        for number, line in enumerate(self.handle, start=1):
            if not line.strip():
                continue
            try:
                yield decode(line)
            except (ValueError, KeyError) as exc:
                log.warning("spool %s line %d unreadable, skipped (%s)", self.path.name, number, exc)

    def done(self) -> None:
        """Everything in it is stored: remove it, then let go of the lock."""
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()
        self.release()

    def release(self) -> None:
        with contextlib.suppress(OSError):
            fcntl.flock(self.handle, fcntl.LOCK_UN)
        self.handle.close()


class Spool:
    """Spool files of one database under ``directory``."""

    def __init__(self, directory: Path, database_url: str) -> None:
        self.directory = directory
        self._db = hashlib.sha256(database_url.encode()).hexdigest()[:12]
        self._own: IO[bytes] | None = None
        self._own_path: Path | None = None

    def _pattern(self, kind: str) -> str:
        return f"{kind}-{self._db}-*.jsonl"

    def append(self, records: Sequence[bytes]) -> None:
        """Append records to this process's spool file and fsync: once this returns they survive a crash."""
        if not records:
            return
        if self._own is None:
            self.directory.mkdir(parents=True, exist_ok=True)
            self._own_path = self.directory / f"verdicts-{self._db}-{os.getpid()}-{uuid.uuid4().hex[:8]}.jsonl"
            handle = open(self._own_path, "ab")  # noqa: SIM115 - held open (and locked) until replayed or closed
            fcntl.flock(handle, fcntl.LOCK_EX)
            self._own = handle
        self._own.write(b"".join(r + b"\n" for r in records))
        self._own.flush()
        os.fsync(self._own.fileno())

    def reject(self, records: Sequence[bytes]) -> Path:
        """Rows the store refused (not an outage): kept for an operator, never replayed automatically."""
        self.directory.mkdir(parents=True, exist_ok=True)
        path = self.directory / f"rejected-{self._db}-{os.getpid()}.jsonl"
        with open(path, "ab") as handle:
            handle.write(b"".join(r + b"\n" for r in records))
            handle.flush()
            os.fsync(handle.fileno())
        return path

    def close_own(self) -> None:
        """Stop appending to the current file (it becomes claimable; a later spill opens a new one)."""
        if self._own is not None:
            with contextlib.suppress(OSError):
                fcntl.flock(self._own, fcntl.LOCK_UN)
            self._own.close()
            self._own = None
            self._own_path = None

    def has_files(self) -> bool:
        return self.directory.is_dir() and any(self.directory.glob(self._pattern("verdicts")))

    def claim(self) -> Iterator[SpooledFile]:
        """Spool files of this database that no live process holds, each locked while the caller replays it."""
        if not self.directory.is_dir():
            return
        for path in sorted(self.directory.glob(self._pattern("verdicts"))):
            if path == self._own_path:
                continue
            try:
                handle = open(path, "rb")  # noqa: SIM115 - handed to the caller, closed by done()/release()
            except FileNotFoundError:
                continue
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                handle.close()
                continue
            if not path.exists():  # replayed and removed by another process between glob and lock
                handle.close()
                continue
            yield SpooledFile(path, handle)
