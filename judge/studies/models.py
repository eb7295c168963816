"""ORM models of rating studies: the study, its raters (with hashed tokens) and their assignments.

Scores are not here: a submitted item's scores are ratings of ``human:<name>`` in the shared ``ratings``
table (written through :func:`judge.agreement.store.save_ratings`), so the agreement statistics read them
with every other rater's. What only a study knows lives here: who rates what, in which order, drafts,
per-axis comments, skip reasons, timestamps and the seconds spent.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Boolean, Float, ForeignKey, Index, Integer, String, Text, UniqueConstraint, false, text
from sqlalchemy.orm import Mapped, mapped_column

from judge.db.base import HASH_LEN, Base, JSONType, UTCDateTime, utcnow

STUDY_ID_LEN = 32


def _now_column() -> Mapped[datetime]:
    return mapped_column(UTCDateTime(), nullable=False, default=utcnow, server_default=text("CURRENT_TIMESTAMP"))


class StudyRow(Base):
    __tablename__ = "studies"

    id: Mapped[str] = mapped_column(String(STUDY_ID_LEN), primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    rubric_ref: Mapped[str] = mapped_column(String(120))
    rubric_hash: Mapped[str] = mapped_column(String(HASH_LEN))
    per_sample: Mapped[int] = mapped_column(Integer)
    # Calibration: after submitting an item the rater sees the judges' scores on it (blind otherwise).
    calibration: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    # open -> closed; a closed study takes no more ratings or corrections.
    state: Mapped[str] = mapped_column(String(16), default="open", server_default=text("'open'"))
    seed: Mapped[int] = mapped_column(Integer, default=0, server_default=text("0"))
    created_at: Mapped[datetime] = _now_column()
    closed_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class StudyRaterRow(Base):
    """A rater of a study: a name (stored as rater ``human:<name>``) and the sha256 of their token."""

    __tablename__ = "study_raters"
    __table_args__ = (UniqueConstraint("study_id", "name"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    study_id: Mapped[str] = mapped_column(String(STUDY_ID_LEN), ForeignKey("studies.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(190))
    # Only the hash is kept: a leaked database does not hand out rating links.
    token_hash: Mapped[str] = mapped_column(String(HASH_LEN), unique=True)
    created_at: Mapped[datetime] = _now_column()


class StudyItemRow(Base):
    """One assignment: a rater's position-th sample, and what they did with it."""

    __tablename__ = "study_items"
    __table_args__ = (
        UniqueConstraint("rater_id", "position"),
        UniqueConstraint("rater_id", "sample_hash"),
        Index("ix_study_items_study_id_state", "study_id", "state"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    study_id: Mapped[str] = mapped_column(String(STUDY_ID_LEN), ForeignKey("studies.id", ondelete="CASCADE"))
    rater_id: Mapped[int] = mapped_column(Integer, ForeignKey("study_raters.id", ondelete="CASCADE"))
    sample_hash: Mapped[str] = mapped_column(String(HASH_LEN), ForeignKey("samples.hash"))
    # The id the sample had in the study's input file, shown to the rater and in exports.
    sample_id: Mapped[str | None] = mapped_column(String(512))
    position: Mapped[int] = mapped_column(Integer)  # 1-based, in this rater's own order
    # pending -> done (scores submitted) or skipped (with a reason); a skipped item can still be rated.
    state: Mapped[str] = mapped_column(String(16), default="pending", server_default=text("'pending'"))
    # Unsubmitted scores and comments, autosaved as the rater works: {"scores": {axis: 1..5}, "comments": {...}}.
    draft: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    # The scores as last submitted, a copy of the rater's rows in ``ratings`` kept so that the page shows them
    # without reading that table (which stays the record the statistics read).
    scores: Mapped[dict[str, int]] = mapped_column(JSONType, default=dict)
    comments: Mapped[dict[str, str]] = mapped_column(JSONType, default=dict)
    skip_reason: Mapped[str | None] = mapped_column(Text)
    # Seconds the page was open and visible on this item, summed over visits (reported by the page).
    seconds_spent: Mapped[float] = mapped_column(Float, default=0.0, server_default=text("0"))
    opened_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    first_submitted_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    submitted_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
