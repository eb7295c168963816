"""The OpenRLHF remote reward protocol: chat-templated queries in, ``{rewards, scores, extra_logs}`` out.

OpenRLHF (``openrlhf/utils/agent.py``) sends one POST per rollout: ``{"query": [prompt + response as decoded
tokens, special tokens kept], "prompts": [prompt], "labels": [label]}``, with a 180 s timeout and 5 tries.
Here a query is split back into the conversation and the judged assistant turn at its chat-template turn
markers (ChatML/Qwen ``<|im_start|>role … <|im_end|>``, Llama 3 headers), or after its prompt when it has none.
Lists come back in input order. One bad item never fails the request: it gets the configured fallback
reward, and ``extra_logs.judge_failed`` is 1 for it; an axis without a score logs 0 (scores are 1..5).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import orjson
from pydantic import BaseModel, ConfigDict, ValidationError

from judge.errors import LimitExceeded
from judge.rewards.schemas import RewardItemIn
from judge.rewards.service import (
    RewardOutcome,
    deadline_s,
    invalid_item,
    prepare_item,
    resolve_request,
    score_rewards,
)
from judge.runtime import Runtime
from judge.samples import Message, Role
from rubrics.errors import RubricJudgeError
from rubrics.schema import Rubric

_CHATML_START, _CHATML_END = "<|im_start|>", "<|im_end|>"
_LLAMA_START, _LLAMA_HEADER_END, _LLAMA_END = "<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>"
# Tokens a decoded sequence may begin or end with (BOS, EOS, padding, end of turn) in the common chat templates.
_SPECIAL_NAMES = "endoftext|im_end|eot_id|end_of_text|begin_of_text|eom_id|pad"
_EDGE_TOKEN = rf"(?:\s|<\|(?:{_SPECIAL_NAMES})\|>|</?s>|<｜(?:begin|end)▁of▁sentence｜>)"
_EDGE_TOKENS = re.compile(f"^{_EDGE_TOKEN}+|{_EDGE_TOKEN}+$")
_ROLES: dict[str, Role] = {"system": "system", "user": "user", "assistant": "assistant"}
# Base names of the per-item logs; per-axis scores are logged as ``axis_<key>``.
FLAG_LOGS = ("judge_failed", "truncated", "cache_hit", "passed")


class QueryError(ValueError):
    """A query that cannot be split into a conversation and a judged assistant turn."""


class OpenRLHFRequest(BaseModel):
    """What OpenRLHF posts; ``prompts`` and ``labels`` are optional (older clients send only ``query``)."""

    model_config = ConfigDict(extra="ignore")

    query: list[Any]
    prompts: list[Any] | None = None
    labels: list[Any] | None = None


@dataclass(frozen=True)
class ParsedQuery:
    messages: list[Message]
    completion: str


def strip_edges(text: str) -> str:
    """``text`` without leading/trailing white space, BOS/EOS, padding and end-of-turn tokens."""
    return _EDGE_TOKENS.sub("", text)


def _turns(text: str, start: str, header_end: str | None, end: str) -> list[tuple[str, str]]:
    """(role, content) of every turn opened by ``start``; text before the first turn is dropped."""
    turns = []
    for part in text.split(start)[1:]:
        if header_end is not None:
            role, _, content = part.partition(header_end)
            content = content.lstrip("\n")
        else:
            role, _, content = part.partition("\n")
        content = content.split(end, 1)[0]
        turns.append((role.strip(), content))
    return turns


def parse_query(query: str, prompt: str | None = None) -> ParsedQuery:
    """Split a chat-templated ``query`` (prompt + response) into the conversation and the judged turn.

    The judged turn is the last assistant turn, everything before it is the conversation (multi-turn
    dialogues keep every earlier patient and assistant turn). Roles other than system/assistant (tool,
    observation, …) are given to the judge as user turns. Without turn markers, ``prompt`` must be a prefix
    of the query: it becomes the user turn and the rest the judged completion.
    """
    text = strip_edges(query)
    turns: list[tuple[str, str]] | None = None
    if _CHATML_START in text:
        turns = _turns(text, _CHATML_START, None, _CHATML_END)
    elif _LLAMA_START in text:
        turns = _turns(text, _LLAMA_START, _LLAMA_HEADER_END, _LLAMA_END)
    if turns is not None:
        if not turns or turns[-1][0] != "assistant":
            last = turns[-1][0] if turns else "none"
            raise QueryError(f"the query has no assistant turn to judge (its last turn is {last!r})")
        context = [Message(role=_ROLES.get(role, "user"), content=strip_edges(content)) for role, content in turns[:-1]]
        if not context:
            raise QueryError("the query has no conversation before the judged assistant turn")
        return ParsedQuery(context, strip_edges(turns[-1][1]))
    head = strip_edges(prompt) if prompt else ""
    if head and text.startswith(head):
        return ParsedQuery([Message(role="user", content=head)], strip_edges(text[len(head) :]))
    raise QueryError(
        "cannot split the query into prompt and response: it has no chat turn markers (<|im_start|>) "
        "and the prompt is not a prefix of it"
    )


def _reference(label: Any) -> str | None:
    """A label is the reference answer: text as is, other JSON values as JSON, nothing when empty."""
    if label is None:
        return None
    if isinstance(label, str):
        return label if label.strip() else None
    return orjson.dumps(label).decode()


def log_keys(rubric: Rubric) -> list[str]:
    return [*FLAG_LOGS, *(f"axis_{key}" for key in rubric.axis_keys)]


def render(outcomes: list[RewardOutcome], rubric: Rubric, fallback: float) -> dict[str, Any]:
    """OpenRLHF's answer: rewards, scores on [0, 1] (dynamic filtering), per-item logs, in input order."""
    low, span = (0.0, 1.0) if rubric.reward_policy.normalise == "minmax" else (1.0, 4.0)
    rewards: list[float] = []
    scores: list[float] = []
    logs: dict[str, list[float]] = {key: [] for key in log_keys(rubric)}
    for outcome in outcomes:
        failed = outcome.failed or outcome.reward is None
        reward = fallback if failed or outcome.reward is None else outcome.reward
        rewards.append(reward)
        scores.append(min(max((reward - low) / span, 0.0), 1.0))
        logs["judge_failed"].append(1.0 if failed else 0.0)
        logs["truncated"].append(1.0 if outcome.truncated else 0.0)
        logs["cache_hit"].append(1.0 if outcome.cache_hit else 0.0)
        logs["passed"].append(1.0 if outcome.passed else 0.0)
        for key, value in outcome.scores.items():
            # OpenRLHF turns every log into a tensor, so a missing score is logged as 0 (outside 1..5), never null.
            logs[f"axis_{key}"].append(value if value is not None else 0.0)
    return {"rewards": rewards, "scores": scores, "extra_logs": logs}


async def get_reward(
    runtime: Runtime, request: OpenRLHFRequest, *, rubric: str | None = None, judge: str | None = None
) -> dict[str, Any]:
    """Serve ``POST /get_reward``: rewards for ``query`` in input order (empty lists for an empty query)."""
    settings = runtime.settings
    if not request.query:
        try:
            keys = log_keys(runtime.rubrics.resolve(rubric or settings.reward_rubric))
        except RubricJudgeError:
            keys = list(FLAG_LOGS)
        return {"rewards": [], "scores": [], "extra_logs": {key: [] for key in keys}}
    if len(request.query) > settings.max_samples_per_request:
        # Capped like /v1/rewards (a 413, rendered by the route in OpenRLHF's {"detail": ...} shape).
        raise LimitExceeded(
            f"{len(request.query)} queries in one request; the limit is {settings.max_samples_per_request}",
            field="query",
        )
    resolved_rubric, profile = resolve_request(runtime, rubric, judge)
    prompts = request.prompts or []
    labels = request.labels or []
    prepared = []
    for i, query in enumerate(request.query):
        prompt = prompts[i] if i < len(prompts) and isinstance(prompts[i], str) else None
        if not isinstance(query, str):
            prepared.append(invalid_item(i, None, f"query[{i}] is not a string"))
            continue
        try:
            parsed = parse_query(query, prompt)
            item = RewardItemIn(
                messages=parsed.messages,
                completion=parsed.completion,
                reference=_reference(labels[i] if i < len(labels) else None),
            )
        except QueryError as exc:
            prepared.append(invalid_item(i, None, str(exc)))
            continue
        except ValidationError as exc:
            # Text the store cannot hold (NUL): this item is invalid, the others are scored.
            prepared.append(invalid_item(i, None, f"query[{i}]: {exc.errors(include_url=False)[0]['msg']}"))
            continue
        prepared.append(prepare_item(i, item, settings))
    batch = await score_rewards(
        runtime, resolved_rubric, profile, prepared, on_failure="null", deadline=deadline_s(runtime, None)
    )
    return render(batch.outcomes, resolved_rubric, settings.reward_fallback)
