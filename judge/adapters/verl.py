"""verl custom reward function backed by a rubric-judge server (``POST /v1/rewards``).

verl calls ``compute_score(data_source, solution_str, ground_truth, extra_info, **reward_kwargs)`` once per
response; ``solution_str`` is the decoded response only, so the conversation comes from ``extra_info``:
``messages`` (a list of ``{"role", "content"}``, e.g. a multi-turn dialogue), else ``prompt`` (messages or text),
else ``question`` (text, as verl's data preprocessing examples write it). ``ground_truth``, when it is text, is the
reference answer. Configure verl with::

    custom_reward_function:
      path: <site-packages>/judge/adapters/verl.py
      name: compute_score
      reward_kwargs: {base_url: "http://127.0.0.1:8000", judge: deepseek}

The answer is ``{"score": reward, **axis_scores, "judge_failed", "truncated", "passed", "score_expected",
"score_mixed", "refused"}`` with the same keys for every sample (verl logs them): an axis without a score is 0.0
(scores are 1..5), and a failed sample's score is ``fallback`` with ``judge_failed`` 1.0. ``score_expected`` /
``score_mixed`` are 1.0 when the reward's axis scores were all / only partly expected scores (``score_method``);
``refused`` is 1.0 when an integrity guard refused the sample (turn markers, a malformed conversation).
"""

from __future__ import annotations

import os
from collections.abc import Awaitable, Callable
from typing import Any

from judge.adapters.client import ClientConfig, shared_client

ComputeScore = Callable[..., Awaitable[dict[str, float]]]
_ROLES = {"system": "system", "user": "user", "assistant": "assistant"}


def conversation(extra_info: Any) -> list[dict[str, str]] | None:
    """The conversation before the judged response, from a verl sample's ``extra_info`` (None if it has none)."""
    if not isinstance(extra_info, dict):
        return None
    for key in ("messages", "prompt", "raw_prompt"):
        value = extra_info.get(key)
        if isinstance(value, list) and value and all(isinstance(m, dict) for m in value):
            return [
                {"role": _ROLES.get(str(m.get("role")), "user"), "content": str(m.get("content") or "")} for m in value
            ]
        if isinstance(value, str) and value.strip():
            return [{"role": "user", "content": value}]
    question = extra_info.get("question")
    if isinstance(question, str) and question.strip():
        return [{"role": "user", "content": question}]
    return None


def make_compute_score(
    base_url: str | None = None,
    *,
    judge: str | None = None,
    rubric: str | None = None,
    fallback: float | None = None,
    deadline_ms: int | None = None,
    api_key: str | None = None,
    timeout_s: float | None = None,
    max_retries: int | None = None,
) -> ComputeScore:
    """An async ``compute_score`` bound to one server, judge and rubric (unset: ``RJ_REWARD_*`` variables).

    The server unreachable after the retries raises ``RewardServerError``: there is no honest score to give.
    """
    if fallback is None:
        fallback = float(os.environ.get("RJ_REWARD_FALLBACK", "0"))
    config = ClientConfig.from_env(base_url=base_url, api_key=api_key, timeout_s=timeout_s, max_retries=max_retries)
    request: dict[str, Any] = {"on_failure": "null"}
    judge = judge or os.environ.get("RJ_REWARD_JUDGE") or None
    rubric = rubric or os.environ.get("RJ_REWARD_RUBRIC") or None
    if judge is not None:
        request["judge"] = judge
    if rubric is not None:
        request["rubric"] = rubric
    if deadline_ms is not None:
        request["deadline_ms"] = deadline_ms

    async def compute_score(
        data_source: Any = None,
        solution_str: str = "",
        ground_truth: Any = None,
        extra_info: Any = None,
        **kwargs: Any,
    ) -> dict[str, float]:
        """One response's reward and per-axis scores (keys the same for every response)."""
        messages = conversation(extra_info)
        item: dict[str, Any] = {"completion": solution_str}
        # No conversation: sent as an item without one, which the server marks invalid (keys stay the same).
        if messages is not None:
            item["messages"] = messages
        if isinstance(ground_truth, str) and ground_truth.strip():
            item["reference"] = ground_truth
        answer = await shared_client(config).post("/v1/rewards", {**request, "items": [item]})
        result = answer["items"][0]
        failed = result["status"] != "ok" or result["reward"] is None
        scores = {key: float(value) if value is not None else 0.0 for key, value in result["scores"].items()}
        return {
            "score": float(fallback if failed else result["reward"]),
            **scores,
            "judge_failed": 1.0 if failed else 0.0,
            "truncated": 1.0 if result["truncated"] else 0.0,
            "passed": 1.0 if result["passed"] else 0.0,
            "score_expected": 1.0 if result.get("score_method") == "expected" else 0.0,
            "score_mixed": 1.0 if result.get("score_method") == "mixed" else 0.0,
            "refused": 1.0 if result.get("reason") in ("turn_markers", "conversation") else 0.0,
        }

    return compute_score


_DEFAULT: ComputeScore | None = None
_DEFAULT_KWARGS: dict[str, Any] = {}


async def compute_score(
    data_source: Any = None,
    solution_str: str = "",
    ground_truth: Any = None,
    extra_info: Any = None,
    **kwargs: Any,
) -> dict[str, float]:
    """verl's entry point. Settings come from verl's ``reward_kwargs`` (``base_url``, ``judge``, ``rubric``,
    ``fallback``, ``deadline_ms``, ``api_key``, ``timeout_s``, ``max_retries``), else ``RJ_REWARD_*`` variables."""
    global _DEFAULT, _DEFAULT_KWARGS
    names = ("base_url", "judge", "rubric", "fallback", "deadline_ms", "api_key", "timeout_s", "max_retries")
    options = {name: kwargs[name] for name in names if name in kwargs}
    if _DEFAULT is None or options != _DEFAULT_KWARGS:
        _DEFAULT, _DEFAULT_KWARGS = make_compute_score(**options), options
    return await _DEFAULT(data_source, solution_str, ground_truth, extra_info)
