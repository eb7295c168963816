"""verl reward functions backed by a rubric-judge server (``POST /v1/rewards``).

verl 0.9 reads its reward function from ``reward.custom_reward_function`` (a top-level
``custom_reward_function`` is ignored by ``main_ppo``). ``pkg://`` imports this module by name, so that its
functions pickle (the ``prime`` manager sends them to worker processes)::

    reward.custom_reward_function.path=pkg://judge.adapters.verl
    reward.custom_reward_function.name=compute_score            # or compute_score_sync / _batch / _scalar
    +reward.custom_reward_function.reward_kwargs.base_url=http://127.0.0.1:8000
    +reward.custom_reward_function.reward_kwargs.judge=deepseek

(the ``+`` because verl's shipped config has no ``reward_kwargs`` key; ``RJ_REWARD_URL``, ``RJ_REWARD_JUDGE``,
``RJ_REWARD_RUBRIC`` and ``RJ_API_KEY`` in the trainer's environment do the same).

Which function for which reward manager:

- ``compute_score`` (async): the reward loop's managers (``naive``, ``dapo``, ``limited``...), verl's default.
- ``compute_score_sync``: the same, synchronous, for the legacy ``naive`` manager (``verl.workers.reward_manager``)
  and anything else that calls ``compute_score`` without awaiting it.
- ``compute_score_batch``: the ``batch`` manager (``data_sources, solution_strs, ground_truths, extra_infos``);
  one HTTP request for the whole batch.
- ``compute_score_scalar``: the ``prime`` manager, which wants a bare float.

``solution_str`` is the decoded response only, and verl does not pass the prompt to a reward function: the
conversation must be in the dataset's ``extra_info`` (``messages``: a list of ``{"role", "content"}``, e.g. a
multi-turn dialogue; or ``prompt``; or ``question`` as text). A sample without one raises
:class:`MissingConversation` naming the fix, unless ``allow_missing_conversation`` is set: then it gets
``fallback`` with ``judge_failed`` 1. ``ground_truth``, when it is text, is the reference answer.

The answer is ``{"score": reward, **axis scores, "judge_failed", "truncated", "passed", "cache_hit",
"score_expected", "score_mixed", "refused"}``, every value a float and the same keys for every sample (verl turns
them into per-key metrics): an axis without a score is 0.0 (scores are 1..5), and a failed sample's score is
``fallback`` with ``judge_failed`` 1.0. ``score_expected`` / ``score_mixed`` are 1.0 when the reward's axis
scores were all / only partly expected scores (``score_method``); ``refused`` is 1.0 when an integrity guard
refused the sample (turn markers, a malformed conversation).
"""

from __future__ import annotations

import asyncio
import logging
import os
import threading
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

from judge.adapters.client import ClientConfig, shared_client

log = logging.getLogger(__name__)

ComputeScore = Callable[..., Awaitable[dict[str, float]]]
T = TypeVar("T")
_ROLES = {"system": "system", "user": "user", "assistant": "assistant"}
OPTION_NAMES = (
    "base_url",
    "judge",
    "rubric",
    "fallback",
    "deadline_ms",
    "api_key",
    "timeout_s",
    "max_retries",
    "allow_missing_conversation",
)
PREPROCESS_HINT = (
    'put the conversation into extra_info when preparing the dataset, e.g. extra_info={"messages": prompt} '
    '(a list of {"role", "content"}) or extra_info={"question": text}; or pass '
    "+reward.custom_reward_function.reward_kwargs.allow_missing_conversation=true to give such samples the "
    "fallback score"
)


class MissingConversation(ValueError):
    """A verl sample whose ``extra_info`` holds no conversation: there is nothing to judge the response against."""


def conversation(extra_info: Any) -> list[dict[str, str]] | None:
    """The conversation before the judged response, from a verl sample's ``extra_info`` (None if it has none)."""
    if not isinstance(extra_info, dict):
        return None
    for key in ("messages", "prompt", "raw_prompt"):
        value = extra_info.get(key)
        # Parquet round trips turn lists into numpy arrays; anything iterable of dicts will do.
        if value is not None and not isinstance(value, str | dict) and hasattr(value, "__iter__"):
            value = list(value)
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


@dataclass(frozen=True)
class RewardScorer:
    """One server, judge and rubric: turns verl samples into ``/v1/rewards`` items and answers into verl dicts."""

    config: ClientConfig
    request: dict[str, Any] = field(default_factory=dict)
    fallback: float = 0.0
    allow_missing_conversation: bool = False

    def item(self, solution_str: str, ground_truth: Any, extra_info: Any) -> dict[str, Any]:
        messages = conversation(extra_info)
        if messages is None and not self.allow_missing_conversation:
            keys = sorted(extra_info) if isinstance(extra_info, dict) else type(extra_info).__name__
            raise MissingConversation(
                f"verl sample has no conversation in extra_info (it has {keys}): {PREPROCESS_HINT}"
            )
        item: dict[str, Any] = {"completion": solution_str or ""}
        # No conversation (opted in): the server marks the item invalid without asking the judge; keys stay the same.
        if messages is not None:
            item["messages"] = messages
        if isinstance(ground_truth, str) and ground_truth.strip():
            item["reference"] = ground_truth
        return item

    def answer(self, result: dict[str, Any]) -> dict[str, float]:
        failed = result["status"] != "ok" or result["reward"] is None
        scores = {key: float(value) if value is not None else 0.0 for key, value in result["scores"].items()}
        return {
            "score": float(self.fallback if failed else result["reward"]),
            **scores,
            "judge_failed": 1.0 if failed else 0.0,
            "truncated": 1.0 if result.get("truncated") else 0.0,
            "passed": 1.0 if result.get("passed") else 0.0,
            "cache_hit": 1.0 if result.get("cache_hit") else 0.0,
            "score_expected": 1.0 if result.get("score_method") == "expected" else 0.0,
            "score_mixed": 1.0 if result.get("score_method") == "mixed" else 0.0,
            "refused": 1.0 if result.get("reason") in ("turn_markers", "conversation") else 0.0,
        }

    async def score(self, samples: Sequence[tuple[str, Any, Any]]) -> list[dict[str, float]]:
        """``(solution_str, ground_truth, extra_info)`` per sample -> verl dicts, in one request."""
        items = [self.item(*sample) for sample in samples]
        if not items:
            return []
        answer = await shared_client(self.config).post("/v1/rewards", {**self.request, "items": items})
        results = [self.answer(r) for r in answer["items"]]
        failed = sum(1 for r in results if r["judge_failed"])
        if failed:
            log.warning(
                "rubric-judge: %d of %d verl samples not scored (score = fallback %s)",
                failed,
                len(results),
                self.fallback,
            )
        return results


def reward_scorer(
    base_url: str | None = None,
    *,
    judge: str | None = None,
    rubric: str | None = None,
    fallback: float | None = None,
    deadline_ms: int | None = None,
    api_key: str | None = None,
    timeout_s: float | None = None,
    max_retries: int | None = None,
    allow_missing_conversation: bool | str | None = None,
) -> RewardScorer:
    """A scorer from keyword options (verl's ``reward_kwargs``), unset ones from ``RJ_REWARD_*`` variables."""
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
        request["deadline_ms"] = int(deadline_ms)
    allow = allow_missing_conversation
    if isinstance(allow, str):  # from a command line override or an environment variable
        allow = allow.strip().lower() in {"1", "true", "yes", "on"}
    return RewardScorer(config, request, float(fallback), bool(allow))


def make_compute_score(base_url: str | None = None, **options: Any) -> ComputeScore:
    """An async ``compute_score`` bound to one server, judge and rubric (options as for :func:`reward_scorer`).

    The server unreachable after the retries raises ``RewardServerError``: there is no honest score to give.
    """
    scorer = reward_scorer(base_url, **options)

    async def compute_score(
        data_source: Any = None,
        solution_str: str = "",
        ground_truth: Any = None,
        extra_info: Any = None,
        **kwargs: Any,
    ) -> dict[str, float]:
        """One response's reward and per-axis scores (keys the same for every response)."""
        return (await scorer.score([(solution_str, ground_truth, extra_info)]))[0]

    return compute_score


_SCORERS: dict[tuple[tuple[str, Any], ...], RewardScorer] = {}


def _scorer_for(kwargs: dict[str, Any]) -> RewardScorer:
    """The scorer for verl's ``reward_kwargs`` (built once per distinct options; other keyword arguments ignored)."""
    options = {name: kwargs[name] for name in OPTION_NAMES if name in kwargs}
    key = tuple(sorted((k, repr(v)) for k, v in options.items()))
    scorer = _SCORERS.get(key)
    if scorer is None:
        scorer = _SCORERS[key] = reward_scorer(**options)
    return scorer


async def compute_score(
    data_source: Any = None,
    solution_str: str = "",
    ground_truth: Any = None,
    extra_info: Any = None,
    **kwargs: Any,
) -> dict[str, float]:
    """verl's async entry point (reward-loop managers). Options come from verl's ``reward_kwargs`` (``base_url``,
    ``judge``, ``rubric``, ``fallback``, ``deadline_ms``, ``api_key``, ``timeout_s``, ``max_retries``,
    ``allow_missing_conversation``), else ``RJ_REWARD_*`` variables."""
    return (await _scorer_for(kwargs).score([(solution_str, ground_truth, extra_info)]))[0]


class _Portal:
    """An event loop on a daemon thread, so synchronous callers share one pooled client across threads."""

    def __init__(self) -> None:
        self.pid = os.getpid()
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="rubric-judge-verl", daemon=True)
        self.thread.start()


_portal: _Portal | None = None
_portal_lock = threading.Lock()


def run_sync(coro: Coroutine[Any, Any, T]) -> T:
    """Run ``coro`` on this process's portal loop and wait for it (a forked child gets a portal of its own)."""
    global _portal
    with _portal_lock:
        if _portal is None or _portal.pid != os.getpid() or not _portal.thread.is_alive():
            _portal = _Portal()
        portal = _portal
    return asyncio.run_coroutine_threadsafe(coro, portal.loop).result()


def compute_score_sync(
    data_source: Any = None,
    solution_str: str = "",
    ground_truth: Any = None,
    extra_info: Any = None,
    **kwargs: Any,
) -> dict[str, float]:
    """Synchronous ``compute_score`` with verl's signature (legacy ``naive`` manager); same options and answer."""
    scorer = _scorer_for(kwargs)
    return run_sync(scorer.score([(solution_str, ground_truth, extra_info)]))[0]


def compute_score_batch(
    data_sources: Sequence[Any],
    solution_strs: Sequence[str],
    ground_truths: Sequence[Any],
    extra_infos: Sequence[Any],
    **kwargs: Any,
) -> list[dict[str, float]]:
    """verl's ``batch`` manager: the whole batch in one request, one dict per response in order."""
    if not len(solution_strs) == len(ground_truths) == len(extra_infos):
        raise ValueError("solution_strs, ground_truths and extra_infos must have the same length")
    samples = list(zip(solution_strs, ground_truths, extra_infos, strict=True))
    return run_sync(_scorer_for(kwargs).score(samples))


def compute_score_scalar(
    data_source: Any = None,
    solution_str: str = "",
    ground_truth: Any = None,
    extra_info: Any = None,
    **kwargs: Any,
) -> float:
    """The reward alone, for the ``prime`` manager (which calls ``f(data_source, solution, ground_truth,
    extra_info)`` in worker processes and wants a number)."""
    return compute_score_sync(data_source, solution_str, ground_truth, extra_info, **kwargs)["score"]
