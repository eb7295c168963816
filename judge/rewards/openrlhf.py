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
    INTEGRITY_REASONS,
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
# Base names of the per-item logs; per-axis scores are logged as ``axis_<key>``. ``score_expected``: every
# axis of the reward was an expected score; ``score_mixed``: some were, some integers (score_method "mixed");
# ``refused``: an integrity guard refused the item (turn markers, a malformed conversation).
FLAG_LOGS = ("judge_failed", "truncated", "cache_hit", "passed", "score_expected", "score_mixed", "refused")


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


def _split_turns(text: str) -> list[tuple[str, str]] | None:
    if _CHATML_START in text:
        return _turns(text, _CHATML_START, None, _CHATML_END)
    if _LLAMA_START in text:
        return _turns(text, _LLAMA_START, _LLAMA_HEADER_END, _LLAMA_END)
    return None


def _context(turns: list[tuple[str, str]]) -> list[Message]:
    return [Message(role=_ROLES.get(role, "user"), content=strip_edges(content)) for role, content in turns]


def parse_query(query: str, prompt: str | None = None) -> ParsedQuery:
    """Split a chat-templated ``query`` (prompt + response) into the conversation and the judged turn.

    With ``prompt`` a prefix of the query (what OpenRLHF sends), the judged completion is exactly the rest
    (end tokens stripped), never split further: turn markers in it are the policy's, and the item is then
    refused (``turn_markers``), never judged on a part. The conversation is the prompt's turns. Without a
    usable prompt, the query is split at its turn markers: the judged turn is the last assistant turn,
    everything before it is the conversation (multi-turn dialogues keep every earlier patient and assistant
    turn); a prompt that is given but not a prefix must have as many turns as the query has before its
    last one, so that a forged turn cannot slip in. Roles other than system/assistant (tool, observation, …)
    are given to the judge as user turns.
    """
    text = strip_edges(query)
    head = strip_edges(prompt) if prompt else ""
    if head and text.startswith(head):
        completion = strip_edges(text[len(head) :])
        prompt_turns = _split_turns(head)
        if prompt_turns is None:
            return ParsedQuery([Message(role="user", content=head)], completion)
        # A prompt that ends by opening the assistant turn (add_generation_prompt) leaves a last turn that is
        # the start of the completion: empty, or an opened block such as Qwen3's "<think>".
        if prompt_turns and prompt_turns[-1][0] == "assistant":
            completion = strip_edges(prompt_turns[-1][1] + "\n" + completion)
            prompt_turns = prompt_turns[:-1]
        context = _context(prompt_turns)
        if not context:
            raise QueryError("the prompt has no conversation before the judged assistant turn")
        return ParsedQuery(context, completion)
    turns = _split_turns(text)
    if turns is not None and head:
        prompt_turns = _split_turns(head) or []
        if prompt_turns and prompt_turns[-1][0] == "assistant":
            prompt_turns = prompt_turns[:-1]
        if len(turns) != len(prompt_turns) + 1:
            raise QueryError(
                f"turn_markers: the query has {len(turns)} turns where its prompt has {len(prompt_turns)} "
                "before the judged one; the completion may hold forged turns"
            )
    if turns is not None:
        if not turns or turns[-1][0] != "assistant":
            last = turns[-1][0] if turns else "none"
            raise QueryError(f"the query has no assistant turn to judge (its last turn is {last!r})")
        context = _context(turns[:-1])
        if not context:
            raise QueryError("the query has no conversation before the judged assistant turn")
        return ParsedQuery(context, strip_edges(turns[-1][1]))
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
        logs["score_expected"].append(1.0 if outcome.score_method == "expected" else 0.0)
        logs["score_mixed"].append(1.0 if outcome.score_method == "mixed" else 0.0)
        logs["refused"].append(1.0 if outcome.reason in INTEGRITY_REASONS else 0.0)
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
            reason = "turn_markers" if str(exc).startswith("turn_markers") else "input"
            prepared.append(invalid_item(i, None, str(exc), reason=reason))
            continue
        except ValidationError as exc:
            # Text the store cannot hold (NUL): this item is invalid, the others are scored.
            prepared.append(invalid_item(i, None, f"query[{i}]: {exc.errors(include_url=False)[0]['msg']}"))
            continue
        prepared.append(prepare_item(i, item, settings))
    batch = await score_rewards(
        runtime,
        resolved_rubric,
        profile,
        prepared,
        on_failure="null",
        deadline=deadline_s(runtime, None),
        require_expected=settings.reward_require_expected,
    )
    return render(batch.outcomes, resolved_rubric, settings.reward_fallback)
