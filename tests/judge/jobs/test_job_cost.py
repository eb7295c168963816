"""What a job's judge and generator calls cost, in its view (judge/jobs/service.py: job_view)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from judge.jobs.models import JobRow
from judge.jobs.service import job_view
from judge.pricing.prices import TokenPrices

JUDGE = TokenPrices(currency="CNY", prompt=2.0, cached=0.2, completion=8.0)
GENERATOR = TokenPrices(prompt=0.5, completion=1.5)


def _job(generator: str | None = "写手") -> JobRow:
    usage = {"calls": 38, "prompt_tokens": 190_000, "cached_tokens": 160_000, "completion_tokens": 4_000, "hedges": 2}
    drafts = {"calls": 10, "prompt_tokens": 20_000, "completion_tokens": 9_000}
    return JobRow(
        id="job-1", kind="curate", state="done", rubric_ref="prmed@1", rubric_hash="h" * 64, judge="评审",
        profile_hash="p" * 64, generator=generator, options={}, source="upload", total=40, kept=14, dropped=24,
        failed=0, invalid=2, chunks=5, stats={"usage": usage, "generator_usage": drafts}, error=None,
        created_at=datetime(2026, 12, 1, tzinfo=UTC), started_at=None, finished_at=None,
    )  # fmt: skip


def test_a_job_summary_costs_its_judge_and_generator_calls_at_their_prices() -> None:
    prices: dict[str | None, TokenPrices | None] = {"评审": JUDGE, "写手": GENERATOR}
    summary = job_view(_job(), prices=prices.get)["summary"]
    judge_amount = (30_000 * 2.0 + 160_000 * 0.2 + 4_000 * 8.0) / 1e6
    assert summary["cost"] == {"amount": pytest.approx(judge_amount), "currency": "CNY", "unpriced_calls": 2}
    drafts_amount = (20_000 * 0.5 + 9_000 * 1.5) / 1e6
    assert summary["generator_cost"] == {"amount": pytest.approx(drafts_amount), "currency": "USD", "unpriced_calls": 0}


def test_an_unpriced_or_unknown_profile_gets_no_cost() -> None:
    unpriced: dict[str | None, TokenPrices | None] = {"评审": None}
    assert job_view(_job(generator=None), prices=unpriced.get)["summary"]["cost"] is None
    nothing: dict[str | None, TokenPrices | None] = {}
    unknown = job_view(_job(), prices=nothing.get)["summary"]
    assert unknown["cost"] is None and unknown["generator_cost"] is None
    # Without prices asked for (job lists), no cost keys at all.
    assert "cost" not in job_view(_job())["summary"]
