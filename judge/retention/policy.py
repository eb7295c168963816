"""What a prune removes: failed verdicts past an age, superseded verdicts, finished jobs past an age."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta

from judge.retention.errors import InvalidRetentionOption

_AGE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw])\s*$")
_UNIT_S = {"s": 1, "m": 60, "h": 3600, "d": 86_400, "w": 7 * 86_400}


def parse_age(text: str, *, field: str = "age") -> timedelta:
    """``30d``, ``12h``, ``2w``, ``90m``, ``45s`` -> a timedelta; anything else is a 422 naming ``field``."""
    match = _AGE.match(text)
    if match is None:
        raise InvalidRetentionOption(
            f"{text!r} is not an age: use a number and a unit s, m, h, d or w (e.g. 30d)", field=field
        )
    return timedelta(seconds=float(match.group(1)) * _UNIT_S[match.group(2)])


@dataclass(frozen=True)
class PrunePolicy:
    """Each rule is off unless set. Ages count back from ``now``."""

    now: datetime
    failed_older_than: timedelta | None = None
    superseded: bool = False
    jobs_finished_older_than: timedelta | None = None

    @property
    def failed_before(self) -> datetime | None:
        return self.now - self.failed_older_than if self.failed_older_than is not None else None

    @property
    def jobs_finished_before(self) -> datetime | None:
        return self.now - self.jobs_finished_older_than if self.jobs_finished_older_than is not None else None

    @property
    def empty(self) -> bool:
        return self.failed_older_than is None and not self.superseded and self.jobs_finished_older_than is None
