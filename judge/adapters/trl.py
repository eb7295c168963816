"""TRL ``GRPOTrainer`` reward functions backed by a rubric-judge server (``POST /v1/rewards``).

    from judge.adapters.trl import reward_funcs

    funcs = reward_funcs("http://127.0.0.1:8000", judge="deepseek")                  # one aggregate reward
    funcs = reward_funcs("http://127.0.0.1:8000", judge="deepseek", per_axis=True)   # one per rubric axis
    trainer = GRPOTrainer(model=..., reward_funcs=funcs, args=GRPOConfig(reward_weights=[...]), ...)

Each function is ``async def f(prompts, completions, completion_ids, **kwargs) -> list[float | None]`` (TRL runs
async reward functions on its own event loop). Conversational prompts/completions (lists of messages) and plain
strings both work. The functions of one factory share one request per batch: per-axis functions do not ask the
judge thirteen times. A failed item's value is None (TRL then leaves that function out for that sample), unless
``on_failure="floor"``. Per-axis values are on [0, 1] (``(score - 1) / 4``), like the aggregate reward, so
``reward_weights`` mean what they say; note that weighting axes yourself replaces the rubric's gates.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Literal

import httpx
import orjson

from judge.adapters.client import ClientConfig, RewardServerError, shared_client

RewardFunc = Callable[..., Awaitable[list[float | None]]]
_ROLES = {"system": "system", "user": "user", "assistant": "assistant"}
_KEEP_BATCHES = 8


def _text(content: Any) -> str:
    """A message's text: a string, or the text parts of a multimodal content list."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(str(part.get("text", "")) for part in content if isinstance(part, dict))
    return "" if content is None else str(content)


def _message(message: Any) -> dict[str, str]:
    # Tool and other environment turns reach the judge as user turns (the judged model did not write them).
    role = _ROLES.get(str(message.get("role")), "user") if isinstance(message, dict) else "user"
    return {"role": role, "content": _text(message.get("content") if isinstance(message, dict) else message)}


def to_item(prompt: Any, completion: Any, reference: Any = None) -> dict[str, Any]:
    """One TRL sample as a ``/v1/rewards`` item: the last assistant message is the judged turn."""
    messages = [_message(m) for m in prompt] if isinstance(prompt, list) else [{"role": "user", "content": str(prompt)}]
    if isinstance(completion, list):
        turns = [_message(m) for m in completion]
        last = max((i for i, m in enumerate(turns) if m["role"] == "assistant"), default=len(turns) - 1)
        messages += turns[:last]
        judged = turns[last]["content"] if turns else ""
    else:
        judged = str(completion)
    item: dict[str, Any] = {"messages": messages, "completion": judged}
    if isinstance(reference, str) and reference.strip():
        item["reference"] = reference
    return item


class _BatchScorer:
    """Scores a batch once for all the functions of one factory, whichever of them asks first."""

    def __init__(self, config: ClientConfig, request: dict[str, Any], reference_key: str | None) -> None:
        self.config = config
        self.request = request
        self.reference_key = reference_key
        self._batches: OrderedDict[tuple[int, str], asyncio.Task[dict[str, Any]]] = OrderedDict()

    async def scored(
        self, prompts: Sequence[Any], completions: Sequence[Any], kwargs: dict[str, Any]
    ) -> dict[str, Any]:
        references = kwargs.get(self.reference_key) if self.reference_key else None
        if not isinstance(references, list | tuple) or len(references) != len(prompts):
            references = [None] * len(prompts)
        items = [to_item(p, c, r) for p, c, r in zip(prompts, completions, references, strict=True)]
        digest = hashlib.sha256(orjson.dumps(items, option=orjson.OPT_SORT_KEYS)).hexdigest()
        key = (id(asyncio.get_running_loop()), digest)
        task = self._batches.get(key)
        if task is None:
            task = asyncio.create_task(self._post(items, kwargs.get("log_metric")))
            self._batches[key] = task
            while len(self._batches) > _KEEP_BATCHES:
                self._batches.popitem(last=False)
        return await asyncio.shield(task)

    async def _post(self, items: list[dict[str, Any]], log_metric: Any) -> dict[str, Any]:
        answer: dict[str, Any] = await shared_client(self.config).post("/v1/rewards", {**self.request, "items": items})
        if callable(log_metric):
            usage = answer.get("usage") or {}
            if answer.get("zero_variance_fraction") is not None:
                log_metric("rj/zero_variance_fraction", float(answer["zero_variance_fraction"]))
            if items:
                log_metric("rj/failed_fraction", float(usage.get("failed", 0)) / len(items))
                log_metric("rj/cache_hit_fraction", float(usage.get("cached", 0)) / len(items))
        return answer


def _by_index(answer: dict[str, Any], n: int) -> list[dict[str, Any] | None]:
    found: list[dict[str, Any] | None] = [None] * n
    for item in answer.get("items", []):
        index = item.get("index")
        if isinstance(index, int) and 0 <= index < n:
            found[index] = item
    return found


def reward_funcs(
    base_url: str | None = None,
    *,
    judge: str | None = None,
    rubric: str | None = None,
    per_axis: bool = False,
    axes: Sequence[str] | None = None,
    on_failure: Literal["null", "floor"] = "null",
    deadline_ms: int | None = None,
    reference_key: str | None = "reference",
    api_key: str | None = None,
    timeout_s: float | None = None,
    max_retries: int | None = None,
) -> list[RewardFunc]:
    """Reward functions for ``GRPOTrainer(reward_funcs=...)``: one aggregate, or one per rubric axis.

    ``axes`` (per-axis only): the axis keys to make functions for, in order; default: every axis of the rubric,
    read from the server now. ``reference_key``: the dataset column with a reference answer, if any.
    Unset arguments come from ``RJ_REWARD_URL``, ``RJ_API_KEY``, ``RJ_REWARD_TIMEOUT_S``, ``RJ_REWARD_RETRIES``;
    ``judge`` and ``rubric`` left unset use the server's RJ_REWARD_JUDGE / RJ_REWARD_RUBRIC.
    """
    config = ClientConfig.from_env(base_url=base_url, api_key=api_key, timeout_s=timeout_s, max_retries=max_retries)
    request: dict[str, Any] = {"on_failure": on_failure}
    if judge is not None:
        request["judge"] = judge
    if rubric is not None:
        request["rubric"] = rubric
    if deadline_ms is not None:
        request["deadline_ms"] = deadline_ms
    batches = _BatchScorer(config, request, reference_key)

    if not per_axis:

        async def rj_reward(
            prompts: list[Any], completions: list[Any], completion_ids: list[Any] | None = None, **kwargs: Any
        ) -> list[float | None]:
            answer = await batches.scored(prompts, completions, kwargs)
            return [item.get("reward") if item else None for item in _by_index(answer, len(prompts))]

        return [rj_reward]

    keys = list(axes) if axes is not None else _rubric_axes(config, request)
    return [_axis_func(batches, key) for key in keys]


def _axis_func(batches: _BatchScorer, key: str) -> RewardFunc:
    async def axis_reward(
        prompts: list[Any], completions: list[Any], completion_ids: list[Any] | None = None, **kwargs: Any
    ) -> list[float | None]:
        answer = await batches.scored(prompts, completions, kwargs)
        values: list[float | None] = []
        for item in _by_index(answer, len(prompts)):
            score = item["scores"].get(key) if item and item.get("status") == "ok" else None
            values.append((float(score) - 1.0) / 4.0 if score is not None else None)
        return values

    # TRL logs each function under its __name__.
    axis_reward.__name__ = axis_reward.__qualname__ = f"rj_{key}"
    return axis_reward


def _rubric_axes(config: ClientConfig, request: dict[str, Any]) -> list[str]:
    """The axis keys of the rubric the server will use, asked once when the functions are made (before training).

    An empty reward request answers with them, and resolves the server's default rubric and judge as a real
    one would.
    """
    headers = {"authorization": f"Bearer {config.api_key}"} if config.api_key else {}
    response = httpx.post(
        f"{config.base_url}/v1/rewards", json={**request, "items": []}, headers=headers, timeout=config.timeout_s
    )
    if response.is_error:
        raise RewardServerError(f"reward server answered HTTP {response.status_code}: {response.text[:500]}")
    return [str(key) for key in response.json()["axes"]]


# Multi-turn rollouts with the patient simulator (a module of its own; re-exported here as documented).
from judge.adapters.trl_patient import PatientRollout as PatientRollout  # noqa: E402
from judge.adapters.trl_patient import patient_rollout as patient_rollout  # noqa: E402
