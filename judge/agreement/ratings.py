"""Ratings: one rater's score on one axis of one sample; import from CSV or JSONL with per-line errors.

Raters are named ``kind:name`` with kind ``judge`` (a judge profile), ``rm`` (a reward model) or ``human``;
an imported rater name without a known kind is a human (``张医生`` becomes ``human:张医生``).
A file keys each rating by ``sample_hash`` (the content hash) or by ``sample_id``; ids are turned into
hashes with :meth:`ImportResult.resolve_sample_ids` before the ratings are stored.
"""

from __future__ import annotations

import csv
import io
import math
import re
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from fnmatch import fnmatchcase
from pathlib import Path
from typing import Annotated, Any, Literal, Protocol

import orjson
from pydantic import BaseModel, ConfigDict, Field

from judge.agreement.errors import InvalidRatingsFile, RaterNotFound
from judge.verdicts import AxisStatus, Verdict
from rubrics.schema import LEVELS, Rubric
from rubrics.storable import UNSTORABLE_MESSAGE, unstorable_path

RATER_KINDS = ("judge", "rm", "human")
RatingsFormat = Literal["csv", "tsv", "jsonl"]

_HASH_RE = re.compile(r"^[0-9a-f]{64}$")
# Characters that would make a rater name ambiguous in a pattern list such as ``judge:a,human:*``.
_RATER_FORBIDDEN = re.compile(r"[*?\[\],\s]")
_MAX_RATER_LEN = 200
_MAX_ID_LEN = 512
_REQUIRED = ("rater", "axis", "score")


class RatingLike(Protocol):
    """What the statistics read from a rating: the store's rows, :class:`Rating` and plain dataclasses fit."""

    @property
    def sample_hash(self) -> str: ...
    @property
    def rater(self) -> str: ...
    @property
    def axis(self) -> str: ...
    @property
    def score(self) -> float: ...
    @property
    def run(self) -> int: ...


class Rating(BaseModel):
    """One score by one rater on one axis of one sample; ``run`` tells repeated ratings apart."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    sample_hash: Annotated[str, Field(min_length=1)]
    rater: Annotated[str, Field(min_length=1, max_length=_MAX_RATER_LEN)]
    axis: Annotated[str, Field(min_length=1)]
    score: Annotated[float, Field(ge=min(LEVELS), le=max(LEVELS))]
    run: Annotated[int, Field(ge=0)] = 0


class RatingIssue(BaseModel):
    """A rejected line of an import: where, which field, why."""

    model_config = ConfigDict(frozen=True)

    line: int
    field: str | None = None
    message: str

    def __str__(self) -> str:
        where = f"line {self.line}" + (f", {self.field}" if self.field else "")
        return f"{where}: {self.message}"


class ImportedRating(BaseModel):
    """A validated line of an import; keyed by ``sample_hash`` or, until resolved, by ``sample_id``."""

    model_config = ConfigDict(frozen=True)

    line: int
    sample_id: str | None = None
    sample_hash: str | None = None
    rater: str
    axis: str
    score: int
    run: int = 0

    @property
    def sample_key(self) -> str:
        """The content hash when known, else the sample id (enough to compare raters within one file set)."""
        return self.sample_hash if self.sample_hash is not None else f"id:{self.sample_id}"

    def to_rating(self) -> Rating:
        return Rating(sample_hash=self.sample_key, rater=self.rater, axis=self.axis, score=self.score, run=self.run)


class ImportResult(BaseModel):
    """Good rows and bad lines of one import: bad lines never hide the good ones."""

    rows: list[ImportedRating] = Field(default_factory=list)
    errors: list[RatingIssue] = Field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.errors

    @property
    def unresolved(self) -> list[ImportedRating]:
        return [row for row in self.rows if row.sample_hash is None]

    def ratings(self) -> list[Rating]:
        return [row.to_rating() for row in self.rows]

    def resolve_sample_ids(self, lookup: Mapping[str, str] | Callable[[str], str | None]) -> ImportResult:
        """Turn ``sample_id`` keys into content hashes; ids the lookup does not know become errors."""
        find = lookup.get if isinstance(lookup, Mapping) else lookup
        rows: list[ImportedRating] = []
        errors = list(self.errors)
        for row in self.rows:
            if row.sample_hash is not None or row.sample_id is None:
                rows.append(row)
                continue
            digest = find(row.sample_id)
            if digest is None:
                errors.append(
                    RatingIssue(line=row.line, field="sample_id", message=f"unknown sample {row.sample_id!r}")
                )
            else:
                rows.append(row.model_copy(update={"sample_hash": digest}))
        errors.sort(key=lambda issue: issue.line)
        return ImportResult(rows=rows, errors=errors)


def verdict_ratings(verdict: Verdict, *, run: int = 0) -> list[Rating]:
    """A judge verdict as ratings by ``judge:<profile>``: the integer score of every axis that is ok.

    Agreement is measured on the Likert levels, so the expected score from logprobs is not used here.
    """
    rater = f"judge:{verdict.judge}"
    return [
        Rating(sample_hash=verdict.sample_hash, rater=rater, axis=axis, score=result.score, run=run)
        for axis, result in verdict.axes.items()
        if result.status is AxisStatus.ok and result.score is not None
    ]


def normalise_rater(name: str, default_kind: str = "human") -> str:
    """``kind:name`` for a known kind stays; any other name gets ``default_kind:`` in front."""
    name = name.strip()
    kind, sep, rest = name.partition(":")
    if sep and kind in RATER_KINDS and rest.strip():
        return f"{kind}:{rest.strip()}"
    return f"{default_kind}:{name}"


def expand_raters(patterns: str | Sequence[str], available: Iterable[str]) -> list[str]:
    """Expand rater names and glob patterns (``human:*``) against the raters that have ratings.

    ``patterns`` is a list or one comma-separated string. Order follows the patterns; matches of one glob are
    sorted; each rater appears once. A name or pattern that matches nobody raises :class:`RaterNotFound`.
    """
    items = [p.strip() for p in (patterns.split(",") if isinstance(patterns, str) else patterns)]
    known = sorted(set(available))
    out: list[str] = []
    for pattern in filter(None, items):
        matches = [r for r in known if fnmatchcase(r, pattern)]
        if not matches:
            raise RaterNotFound(f"no ratings by {pattern!r} under this rubric", field="raters")
        out.extend(m for m in matches if m not in out)
    return out


# --- import --------------------------------------------------------------------------------------------------


class _LineError(ValueError):
    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


def _axis_lookup(rubric: Rubric) -> dict[str, str]:
    """Axis keys, and their Chinese and English titles, as physicians may write either."""
    lookup: dict[str, str] = {}
    for axis in rubric.axes:
        lookup[axis.title.zh.strip()] = axis.key
        lookup[axis.title.en.strip().casefold()] = axis.key
    for axis in rubric.axes:
        lookup[axis.key] = axis.key
    return lookup


# The run is an INTEGER column: larger numbers would fail the insert for the whole import.
_MAX_RUN = 2**31 - 1


def _text(value: Any, field: str, *, required: bool = True) -> str | None:
    if value is None or (isinstance(value, str) and not value.strip()):
        if required:
            raise _LineError(field, "missing value")
        return None
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise _LineError(field, f"expected text, got {type(value).__name__}")
    if isinstance(value, str) and unstorable_path(value) is not None:
        raise _LineError(field, UNSTORABLE_MESSAGE)
    return str(value).strip()


def _integer(value: Any, field: str) -> int:
    """An integer from JSON or CSV text; ``4`` and ``4.0`` are fine, ``4.5`` and ``四`` are not."""
    if isinstance(value, bool):
        raise _LineError(field, f"not an integer: {value!r}")
    if isinstance(value, int):
        return value
    if isinstance(value, str):
        text = value.strip()
        try:
            number = float(text)
        except ValueError:
            raise _LineError(field, f"not a number: {text!r}") from None
    elif isinstance(value, float):
        number = value
    else:
        raise _LineError(field, f"not a number: {value!r}")
    if not math.isfinite(number) or number != int(number):
        raise _LineError(field, f"not an integer: {value!r}")
    return int(number)


def _validate(line: int, record: Mapping[str, Any], axes: Mapping[str, str], levels: tuple[int, ...]) -> ImportedRating:
    sample_hash = _text(record.get("sample_hash"), "sample_hash", required=False)
    sample_id = _text(record.get("sample_id"), "sample_id", required=False)
    if sample_hash is None and sample_id is None:
        raise _LineError("sample_id", "needs sample_id or sample_hash")
    if sample_hash is not None:
        sample_hash = sample_hash.lower()
        if not _HASH_RE.match(sample_hash):
            raise _LineError("sample_hash", "not a sample content hash (64 hex digits)")
    if sample_id is not None and len(sample_id) > _MAX_ID_LEN:
        raise _LineError("sample_id", f"longer than {_MAX_ID_LEN} characters")
    raw_rater = _text(record.get("rater"), "rater")
    assert raw_rater is not None
    if _RATER_FORBIDDEN.search(raw_rater.strip()):
        raise _LineError("rater", "a rater name may not contain spaces or any of * ? [ ] ,")
    rater = normalise_rater(raw_rater)
    if len(rater) > _MAX_RATER_LEN:
        raise _LineError("rater", f"longer than {_MAX_RATER_LEN} characters")
    raw_axis = _text(record.get("axis"), "axis")
    assert raw_axis is not None
    axis = axes.get(raw_axis) or axes.get(raw_axis.casefold())
    if axis is None:
        raise _LineError("axis", f"unknown axis {raw_axis!r}")
    if record.get("score") is None or (isinstance(record.get("score"), str) and not record["score"].strip()):
        raise _LineError("score", "missing value")
    score = _integer(record["score"], "score")
    if score not in levels:
        raise _LineError("score", f"{score} is outside {levels[0]}..{levels[-1]}")
    run_value = record.get("run")
    run = 0 if run_value is None or run_value == "" else _integer(run_value, "run")
    if not 0 <= run <= _MAX_RUN:
        raise _LineError("run", f"must be 0..{_MAX_RUN}")
    return ImportedRating(
        line=line, sample_id=sample_id, sample_hash=sample_hash, rater=rater, axis=axis, score=score, run=run
    )


def validate_records(records: Iterable[tuple[int, Mapping[str, Any]]], rubric: Rubric) -> ImportResult:
    """Validate ``(line, record)`` pairs against the rubric: collect an error per bad line, keep the good ones."""
    axes = _axis_lookup(rubric)
    rows: list[ImportedRating] = []
    errors: list[RatingIssue] = []
    seen: dict[tuple[str, str, str, int], int] = {}
    for line, record in records:
        try:
            row = _validate(line, record, axes, LEVELS)
        except _LineError as exc:
            errors.append(RatingIssue(line=line, field=exc.field, message=str(exc)))
            continue
        key = (row.sample_key, row.rater, row.axis, row.run)
        if key in seen:
            errors.append(
                RatingIssue(line=line, message=f"duplicate of line {seen[key]} (same sample, rater, axis, run)")
            )
            continue
        seen[key] = line
        rows.append(row)
    return ImportResult(rows=rows, errors=errors)


def _csv_records(text: str, delimiter: str) -> tuple[Iterator[tuple[int, dict[str, Any]]], list[RatingIssue]]:
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
    try:
        header = next(reader)
    except StopIteration:
        return iter(()), [RatingIssue(line=1, message="empty file: expected a header row")]
    except csv.Error as exc:
        return iter(()), [RatingIssue(line=1, message=f"unreadable header: {exc}")]
    names = [name.strip().lstrip("\ufeff").lower() for name in header]
    issues = [
        RatingIssue(line=1, field=column, message=f"missing column {column!r}")
        for column in _REQUIRED
        if column not in names
    ]
    if "sample_id" not in names and "sample_hash" not in names:
        issues.append(RatingIssue(line=1, field="sample_id", message="missing column 'sample_id' or 'sample_hash'"))
    if issues:
        return iter(()), issues

    def records() -> Iterator[tuple[int, dict[str, Any]]]:
        start = reader.line_num + 1
        while True:
            try:
                cells = next(reader)
            except StopIteration:
                return
            except csv.Error as exc:
                yield start, {"__error__": str(exc)}
                start = reader.line_num + 1
                continue
            line, start = start, reader.line_num + 1
            if not any(cell.strip() for cell in cells):
                continue
            yield line, {name: (cells[i] if i < len(cells) else None) for i, name in enumerate(names)}

    return records(), []


def _jsonl_records(text: str) -> Iterator[tuple[int, dict[str, Any]]]:
    for number, raw in enumerate(text.splitlines(), start=1):
        if not raw.strip():
            continue
        try:
            value = orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            yield number, {"__error__": f"invalid JSON ({exc})"}
            continue
        if not isinstance(value, dict):
            yield number, {"__error__": f"expected a JSON object, got {type(value).__name__}"}
            continue
        yield number, value


def _split_broken(
    records: Iterable[tuple[int, dict[str, Any]]], errors: list[RatingIssue]
) -> Iterator[tuple[int, dict[str, Any]]]:
    for line, record in records:
        if "__error__" in record:
            errors.append(RatingIssue(line=line, message=str(record["__error__"])))
        else:
            yield line, record


_LINE_END = re.compile("\r\n|[\n\r\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029]")


def count_lines(text: str) -> int:
    """Lines as the parsers see them: every line ending (CRLF, CR, LF and the rest of ``str.splitlines``)."""
    return len(_LINE_END.findall(text))


def parse_ratings(text: str, rubric: Rubric, *, format: RatingsFormat) -> ImportResult:
    """Parse and validate a ratings file's text: CSV/TSV with a header row, or JSON Lines."""
    broken: list[RatingIssue] = []
    if format == "jsonl":
        records: Iterable[tuple[int, dict[str, Any]]] = _jsonl_records(text)
    else:
        records, header_issues = _csv_records(text, "\t" if format == "tsv" else ",")
        if header_issues:
            return ImportResult(errors=header_issues)
    result = validate_records(_split_broken(records, broken), rubric)
    if broken:
        result.errors = sorted([*result.errors, *broken], key=lambda issue: issue.line)
    return result


def detect_format(path: Path) -> RatingsFormat:
    suffix = path.suffix.lower()
    if suffix == ".csv":
        return "csv"
    if suffix == ".tsv":
        return "tsv"
    if suffix in {".jsonl", ".ndjson", ".json"}:
        return "jsonl"
    raise InvalidRatingsFile(f"cannot tell the format of {path.name!r}: use .csv, .tsv or .jsonl", field="file")


def read_ratings(path: Path, rubric: Rubric, *, format: RatingsFormat | None = None) -> ImportResult:
    """Read and validate a ratings file (UTF-8, a BOM is fine)."""
    format = format or detect_format(path)
    try:
        text = path.read_bytes().decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise InvalidRatingsFile(f"{path.name} is not UTF-8 text (byte {exc.start})", field="file") from None
    return parse_ratings(text, rubric, format=format)
