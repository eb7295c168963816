"""The OpenAI judge when calls fail: rate limits, server and client errors, timeouts, truncation, bad bodies.

Every failure becomes an axis status with no score; what is retried, how long it waits and what is not
retried are checked through the real ``openai`` client against the loopback server.
"""

from __future__ import annotations

import json

import openai
import pytest

from judge.backends.openai.judge import OpenAIJudge
from judge.profiles import JudgeProfile
from judge.samples import Sample
from judge.verdicts import AxisStatus
from rubrics.schema import Rubric
from tests.judge.conftest import KEYS, MakeJudge, axis_scores, metric_value
from tests.support.openai_server import (
    HTTPError,
    OpenAIServer,
    RawBody,
    Slow,
    Truncated,
    Verdict,
    bad_request,
    rate_limited,
    server_error,
)


async def test_rate_limit_retry_after_honoured_then_success(
    make_judge: MakeJudge, openai_server: OpenAIServer, tiny_rubric: Rubric, zh_sample: Sample
) -> None:
    openai_server.script(rate_limited(retry_after="1"), Verdict(scores=5))
    judge = make_judge()
    outcome = await judge.score(zh_sample, tiny_rubric)

    assert outcome.complete
    assert axis_scores(outcome) == dict.fromkeys(KEYS, 5)
    first, second = openai_server.requests
    assert first.status == 429
    assert second.status == 200
    assert first.answered_at is not None
    assert second.received_at - first.answered_at >= 1.0
    assert outcome.usage.retries == 1
    assert outcome.usage.calls == 1
    assert metric_value("rj_judge_retries_total", judge=judge.profile.name, reason="rate_limit") == 1


async def test_rate_limit_retry_after_ms_honoured(
    make_judge: MakeJudge, openai_server: OpenAIServer, tiny_rubric: Rubric, zh_sample: Sample
) -> None:
    openai_server.script(rate_limited(retry_after=None, retry_after_ms="300"), Verdict(scores=2))
    outcome = await make_judge().score(zh_sample, tiny_rubric)

    first, second = openai_server.requests
    assert first.answered_at is not None
    assert second.received_at - first.answered_at >= 0.3
    assert axis_scores(outcome) == dict.fromkeys(KEYS, 2)


async def test_server_error_retried(
    make_judge: MakeJudge, openai_server: OpenAIServer, tiny_rubric: Rubric, zh_sample: Sample
) -> None:
    openai_server.script(server_error(500), server_error(503), Verdict(scores=3))
    outcome = await make_judge(max_retries=2).score(zh_sample, tiny_rubric)

    assert openai_server.calls == 3
    assert outcome.complete
    assert outcome.usage.retries == 2


async def test_server_errors_exhaust_retries(
    make_judge: MakeJudge, openai_server: OpenAIServer, tiny_rubric: Rubric, zh_sample: Sample
) -> None:
    openai_server.default = server_error(502)
    outcome = await make_judge(max_retries=1).score(zh_sample, tiny_rubric)

    assert openai_server.calls == 2
    for axis in outcome.axes.values():
        assert axis.status is AxisStatus.judge_error
        assert axis.score is None
        assert axis.error is not None
        assert "HTTP 502" in axis.error
    assert outcome.usage.retries == 1


async def test_bad_request_not_retried(
    make_judge: MakeJudge, openai_server: OpenAIServer, tiny_rubric: Rubric, zh_sample: Sample
) -> None:
    openai_server.script(bad_request())
    outcome = await make_judge(max_retries=5).score(zh_sample, tiny_rubric)

    assert openai_server.calls == 1
    for axis in outcome.axes.values():
        assert axis.status is AxisStatus.judge_error
        assert axis.score is None
        assert axis.error is not None
        assert "HTTP 400" in axis.error
        assert "maximum context length" in axis.error
    assert outcome.usage.retries == 0


@pytest.mark.parametrize("status", [401, 403, 404, 422])
async def test_other_client_errors_not_retried(
    make_judge: MakeJudge, openai_server: OpenAIServer, tiny_rubric: Rubric, zh_sample: Sample, status: int
) -> None:
    openai_server.script(HTTPError(status, "不可重试"))
    outcome = await make_judge().score(zh_sample, tiny_rubric)

    assert openai_server.calls == 1
    assert all(axis.status is AxisStatus.judge_error for axis in outcome.axes.values())


async def test_slow_past_timeout_gives_timeout_and_no_score(
    make_judge: MakeJudge, openai_server: OpenAIServer, tiny_rubric: Rubric, zh_sample: Sample
) -> None:
    openai_server.default = Slow(delay_s=5.0)
    judge = make_judge(timeout_s=0.3, max_retries=1)
    outcome = await judge.score(zh_sample, tiny_rubric)

    assert openai_server.calls == 2  # the timed-out attempt was retried once
    for axis in outcome.axes.values():
        assert axis.status is AxisStatus.timeout
        assert axis.score is None
        assert axis.expected is None
    assert outcome.error is not None
    assert "timed out" in outcome.error
    assert outcome.usage.retries == 1
    assert metric_value("rj_judge_call_seconds_count", judge=judge.profile.name, outcome="timeout") == 1


async def test_truncated_answer_marks_every_axis_truncated(
    make_judge: MakeJudge, openai_server: OpenAIServer, tiny_rubric: Rubric, zh_sample: Sample
) -> None:
    openai_server.script(Truncated(scores=5))
    outcome = await make_judge().score(zh_sample, tiny_rubric)

    assert openai_server.calls == 1  # a cut answer is not repaired: it would be cut again
    for axis in outcome.axes.values():
        assert axis.status is AxisStatus.truncated
        assert axis.score is None
        assert axis.error is not None
        assert "max_tokens" in axis.error


async def test_unreachable_server_is_a_judge_error(tiny_rubric: Rubric, zh_sample: Sample) -> None:
    with OpenAIServer() as server:
        url = server.url
    judge = OpenAIJudge(JudgeProfile(name="gone", model="m", base_url=url, max_retries=1, retry_budget_s=5))
    try:
        outcome = await judge.score(zh_sample, tiny_rubric)
    finally:
        await judge.aclose()

    for axis in outcome.axes.values():
        assert axis.status is AxisStatus.judge_error
        assert axis.score is None
        assert axis.error is not None
        assert "cannot connect to judge" in axis.error and "connection refused" in axis.error
        assert "timed out" not in axis.error
    assert outcome.usage.retries == 1


async def test_given_client_keeps_to_the_profile_timeout(
    openai_server: OpenAIServer, tiny_rubric: Rubric, zh_sample: Sample
) -> None:
    openai_server.default = Slow(delay_s=5.0)
    client = openai.AsyncOpenAI(base_url=openai_server.url, api_key="EMPTY", max_retries=0, timeout=60.0)
    judge = OpenAIJudge(JudgeProfile(name="shared-timeout", model="m", timeout_s=0.3, max_retries=0), client=client)
    try:
        outcome = await judge.score(zh_sample, tiny_rubric)
    finally:
        await client.close()

    assert all(axis.status is AxisStatus.timeout for axis in outcome.axes.values())
    assert openai_server.calls == 1


async def test_a_malformed_200_body_is_a_judge_error_without_scores(
    openai_server: OpenAIServer, tiny_rubric: Rubric, zh_sample: Sample
) -> None:
    openai_server.script(RawBody('{"choices": [ 这不是JSON'.encode()))
    judge = OpenAIJudge(JudgeProfile(name="raw", model="m", base_url=openai_server.url, max_retries=0))
    try:
        outcome = await judge.score(zh_sample, tiny_rubric)
    finally:
        await judge.aclose()
    assert {a.status for a in outcome.axes.values()} == {AxisStatus.judge_error}
    assert all(a.score is None for a in outcome.axes.values())
    assert outcome.error is not None and "invalid JSON" in outcome.error


async def test_a_completion_missing_optional_fields_is_still_read(
    openai_server: OpenAIServer, tiny_rubric: Rubric, zh_sample: Sample
) -> None:
    # Some OpenAI-compatible servers leave out "created", "object" and "usage"; strict validation fails,
    # the lenient path still reads the answer.
    answer = {"axes": {key: {"rationale": "理由充分", "score": 3} for key in tiny_rubric.axis_keys}}
    body = {"id": "x", "model": "m", "choices": [
        {"index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": json.dumps(answer)}}
    ]}  # fmt: skip
    openai_server.script(RawBody(json.dumps(body).encode()))
    judge = OpenAIJudge(JudgeProfile(name="raw", model="m", base_url=openai_server.url, max_retries=0))
    try:
        outcome = await judge.score(zh_sample, tiny_rubric)
    finally:
        await judge.aclose()
    assert {k: a.score for k, a in outcome.axes.items()} == dict.fromkeys(tiny_rubric.axis_keys, 3)
