"""What every table shares: the declarative base with its naming convention, and the column types.

ORM models of every feature (``judge/store/models.py``, ``judge/jobs/models.py``, ...) import from here, so
no feature's models import another's just to reach the base.
"""

from judge.db.base import (
    HASH_LEN,
    NAMING_CONVENTION,
    VERDICT_ID_LEN,
    Base,
    BigIntPK,
    JSONType,
    UTCDateTime,
    created_at_column,
    utcnow,
)

__all__ = [
    "HASH_LEN",
    "NAMING_CONVENTION",
    "VERDICT_ID_LEN",
    "Base",
    "BigIntPK",
    "JSONType",
    "UTCDateTime",
    "created_at_column",
    "utcnow",
]
