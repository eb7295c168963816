"""vLLM-compatible classification (``POST /classify``) over a local reward model, for verl's discriminative-RM path.

Each input gets one row of ``probs``: the model's axes in its order, then the rubric's aggregate reward LAST
(what a scalar-reward reader takes). Without activation an axis is its expected score on 1..5; with it, the
probability that the axis passes the rubric's threshold. The reward is the rubric's aggregation of the axis
scores either way (on [0, 1] under minmax normalisation). ``label`` is ``"pass"`` or ``"fail"`` under the
rubric's pass policy (``None`` when an axis could not be scored). Activation follows vLLM's default (applied
unless ``use_activation``/``activation`` is false). Inputs are texts already rendered with the model's chat
template, token ids, or (vLLM's chat form) ``messages`` ending with the judged assistant turn, which the model's
own template renders.

Integrity (issue 9, ``docs/reward-integrity.md``): each input is read back into a conversation and a judged turn
(the ``messages`` form as given; a rendered text or token ids split at their chat-template turn markers, as
``/get_reward`` splits a query without a prompt) and checked as ``/v1/rewards`` checks an item. A judged turn with
chat turn markers (``turn_markers``) or a conversation without a patient turn to answer (``conversation``) is
refused: it is never scored, and its row is the route's failure shape (every entry of ``probs`` null, ``label``
null), never a score of a part. The others aggregate with the same integrity facts as every other route
(:func:`judge.integrity.facts.output_facts`), so a rubric's language and padding gates and its length policy hold.
A text without turn markers cannot be read back; it is scored as before, without those facts.

``model`` names a reward_model judge profile, one of its ``aliases``, the profile's ``reward_model`` value, or a
registered reward-model name. verl sends its ``reward_model.model_path`` (a path or a hub id); such a name (one
with a ``/``) resolves to the reward_model profile when exactly one is configured.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError, field_validator

from judge.errors import JudgeUnavailable
from judge.integrity.facts import output_facts
from judge.profiles import JudgeProfile
from judge.rewards.openrlhf import QueryError, parse_query
from judge.rewards.service import INTEGRITY_REASONS
from judge.runtime import Runtime
from judge.samples import Message, Sample, SampleIn, normalise, split_completion
from reward_model.data import Conversation, ModelInput, TokenIds
from rubrics.aggregation import aggregate
from rubrics.errors import RubricJudgeError
from rubrics.schema import Rubric
from rubrics.storable import check_storable

REWARD_CLASS = "reward"

logger = logging.getLogger(__name__)


class InvalidClassifyRequest(RubricJudgeError):
    status_code = 400


class ClassifyRequest(BaseModel):
    """vLLM's classification request; fields it has that do not apply here (``user``, ``priority``...) are ignored."""

    model_config = ConfigDict(extra="ignore")

    model: str | None = None
    input: str | list[str] | list[int] | list[list[int]] | None = None
    # vLLM's chat form: the conversation with the judged assistant turn last, rendered by the model's template.
    messages: list[dict[str, Any]] | None = None
    use_activation: bool | None = None
    # The older vLLM name of ``use_activation``.
    activation: bool | None = None

    @field_validator("input", "model")
    @classmethod
    def _storable(cls, value: Any) -> Any:
        # Scored inputs are stored with their verdicts and the model is looked up in the store; neither can hold
        # NUL (a 400 naming the field).
        return check_storable(value)

    @property
    def activated(self) -> bool:
        for value in (self.use_activation, self.activation):
            if value is not None:
                return value
        return True

    def items(self) -> list[ModelInput]:
        if self.messages is not None:
            if self.input is not None:
                raise InvalidClassifyRequest("give `input` or `messages`, not both", field="messages")
            return [conversation_of(self.messages)]
        raw = self.input
        if raw is None:
            raise InvalidClassifyRequest("`input` (or `messages`) is required", field="input")
        if isinstance(raw, str):
            return [raw]
        if not raw:
            raise InvalidClassifyRequest("`input` is empty", field="input")
        if all(isinstance(x, str) for x in raw):
            return [str(x) for x in raw]
        if all(isinstance(x, int) for x in raw):
            return [TokenIds(tuple(int(x) for x in raw))]  # type: ignore[arg-type]
        return [TokenIds(tuple(ids)) for ids in raw if isinstance(ids, list)]


def conversation_of(messages: list[dict[str, Any]]) -> Conversation:
    """vLLM's ``messages`` form: everything before the last (assistant) turn is the context; that turn is judged,
    its ``<think>`` block being the CoT."""
    if not messages:
        raise InvalidClassifyRequest("`messages` is empty", field="messages")
    for i, message in enumerate(messages):
        if message.get("role") not in ("system", "user", "assistant") or not isinstance(message.get("content"), str):
            raise InvalidClassifyRequest(
                "each message needs a role (system, user, assistant) and text content", field=f"messages[{i}]"
            )
    if messages[-1]["role"] != "assistant":
        raise InvalidClassifyRequest("the last message must be the assistant turn to score", field="messages")
    reasoning, response = split_completion(messages[-1]["content"])
    context = tuple((str(m["role"]), str(m["content"])) for m in messages[:-1])
    return Conversation(messages=context, reasoning=reasoning.strip(), response=response.strip())


@dataclass(frozen=True, slots=True)
class Judged:
    """What an input says once read back: the sample (for the integrity facts), or why it is refused.

    Both None for a text without chat-template turn markers: it cannot be read back, and is scored as before.
    """

    sample: Sample | None = None
    # "<reason>: <message>", the reason as /v1/rewards gives it (turn_markers, conversation, input).
    refused: str | None = None


def judged_turn(context: list[tuple[str, str]], completion: str) -> Judged:
    """Check a conversation and its raw judged completion as ``/v1/rewards`` checks an item (judge.samples)."""
    try:
        messages = [Message.model_validate({"role": role, "content": content}) for role, content in context]
        return Judged(sample=normalise(SampleIn(messages=messages, completion=completion)))
    except ValidationError as exc:
        errors = exc.errors(include_url=False)
        reason = next((str(e["type"]) for e in errors if e.get("type") in INTEGRITY_REASONS), "input")
        message = next((str(e.get("msg")) for e in errors if e.get("type") == reason), str(errors[0].get("msg")))
        return Judged(refused=message if message.startswith(reason) else f"{reason}: {message}")


def read_back(
    item: ModelInput, messages: list[dict[str, Any]] | None, decode: Callable[[tuple[int, ...]], str]
) -> Judged:
    """The conversation and judged turn of one input; ``messages`` is the request's chat form when it has one.

    The chat form's last turn is checked raw: split at ``</think>`` first, a forged turn written before the CoT
    would vanish from both the CoT and the response. ``decode`` turns token ids back into text.
    """
    if messages is not None:
        context = [(str(m["role"]), str(m["content"])) for m in messages[:-1]]
        return judged_turn(context, str(messages[-1]["content"]))
    if isinstance(item, Conversation):
        return Judged()
    text = decode(item.ids) if isinstance(item, TokenIds) else item
    if not is_rendered_chat(text):
        return Judged()
    try:
        parsed = parse_query(text)
    except QueryError as exc:
        return Judged(refused=f"conversation: {exc}")
    return judged_turn([(m.role, m.content) for m in parsed.messages], parsed.completion)


def is_rendered_chat(text: str) -> bool:
    """Whether ``text`` is rendered with a chat template the splitter reads (ChatML/Qwen, Llama 3)."""
    return "<|im_start|>" in text or "<|start_header_id|>" in text


def _profile_for(profiles: list[JudgeProfile], requested: str | None) -> JudgeProfile | None:
    """The reward_model profile a request's ``model`` means, if any (see the module docstring)."""
    if requested is None:
        return profiles[0] if profiles else None
    for profile in profiles:
        if requested in (profile.name, profile.reward_model, *profile.aliases):
            return profile
    # verl's discriminative-RM client sends reward_model.model_path: a path or a hub id, never a profile name.
    if "/" in requested and len(profiles) == 1:
        return profiles[0]
    return None


def _model_ref(runtime: Runtime, requested: str | None) -> tuple[str, str, bool]:
    """(reference to load, name to echo, whether a path is allowed): a reward_model profile, else a registered name."""
    profiles = [p for p in runtime.profiles.all() if p.backend == "reward_model" and p.reward_model]
    profile = _profile_for(profiles, requested)
    if profile is not None and profile.reward_model is not None:
        # Paths are fine in a profile (the operator's configuration), never straight from a request.
        return profile.reward_model, profile.name, True
    if requested is None:
        raise InvalidClassifyRequest("no `model` given and no reward_model judge profile configured", field="model")
    if "/" in requested and len(profiles) > 1:
        names = ", ".join(p.name for p in profiles)
        raise InvalidClassifyRequest(
            f"model {requested!r} could mean any of the reward_model profiles ({names}): "
            "send a profile name or list this name in one profile's `aliases`",
            field="model",
        )
    return requested, requested, False


def _rubric_of(runtime: Runtime, rubric_hash: str | None, rubric_ref: str | None) -> Rubric:
    rubric = runtime.rubrics.get_by_hash(rubric_hash) if rubric_hash else None
    if rubric is None and rubric_ref:
        rubric = runtime.rubrics.resolve(rubric_ref)
    if rubric is None:
        raise JudgeUnavailable("the reward model names no rubric this server knows", field="model")
    return rubric


async def classify(runtime: Runtime, body: ClassifyRequest) -> dict[str, Any]:
    """The vLLM ``ClassificationResponse`` for ``body``."""
    ref, name, allow_path = _model_ref(runtime, body.model)
    items = body.items()
    engine = await runtime.reward_models.engine(ref, allow_path=allow_path)
    model = engine.model
    vocab = len(model.tokenizer)
    for item in items:
        if isinstance(item, TokenIds) and (not item.ids or min(item.ids) < 0 or max(item.ids) >= vocab):
            raise InvalidClassifyRequest(f"token ids must be non-empty and within 0..{vocab - 1}", field="input")
    rubric = _rubric_of(runtime, model.rubric_hash, model.rubric_ref)
    missing = [k for k in rubric.axis_keys if k not in model.axis_keys]
    if missing:
        raise JudgeUnavailable(f"the reward model has no head for axes {missing}", field="model")
    judged = [read_back(item, body.messages, _decoder(model.tokenizer)) for item in items]
    scored = [item for item, seen in zip(items, judged, strict=True) if seen.refused is None]
    results = iter(await engine.score(scored)) if scored else iter(())
    activated = body.activated
    data: list[dict[str, Any]] = []
    prompt_tokens = 0
    width = len(model.axis_keys) + 1
    for index, seen in enumerate(judged):
        if seen.refused is not None:
            # Refused by an integrity guard: never scored, so no number at all (the route's failure shape).
            logger.info("classify: input %d refused (%s)", index, seen.refused)
            data.append({"index": index, "label": None, "probs": [float("nan")] * width, "num_classes": width})
            continue
        scores = next(results)
        expected = {k: min(5.0, max(1.0, scores.expected_of(k))) for k in scores.axis_keys}
        levels = {k: scores.level_of(k) for k in scores.axis_keys}
        facts = output_facts(seen.sample, rubric).aggregation_kwargs() if seen.sample is not None else {}
        outcome = aggregate(rubric, levels, expected, **facts)
        if activated:
            row = [scores.pass_probability(k, rubric.pass_policy.threshold_for(k)) for k in scores.axis_keys]
        else:
            row = [expected[k] for k in scores.axis_keys]
        row.append(outcome.reward if outcome.reward is not None else float("nan"))
        label = None if outcome.passed is None else ("pass" if outcome.passed else "fail")
        # vLLM's ClassificationData has no `object` field; its clients read `probs` (and `label`).
        data.append({"index": index, "label": label, "probs": row, "num_classes": len(row)})
        prompt_tokens += min(scores.n_tokens, model.max_length)
    return {
        "id": f"classify-{uuid.uuid4().hex}",
        "object": "list",
        "created": int(time.time()),
        "model": name,
        "data": data,
        "usage": {
            "prompt_tokens": prompt_tokens,
            "total_tokens": prompt_tokens,
            "completion_tokens": 0,
            "prompt_tokens_details": None,
        },
    }


def _decoder(tokenizer: Any) -> Callable[[tuple[int, ...]], str]:
    """Token ids -> the text they spell, special tokens (the turn markers) kept."""

    def decode(ids: tuple[int, ...]) -> str:
        return str(tokenizer.decode(list(ids), skip_special_tokens=False))

    return decode


def error_body(message: str, status_code: int, param: str | None = None) -> dict[str, Any]:
    """vLLM's error response shape."""
    kind = {400: "BadRequestError", 401: "UnauthorizedError", 404: "NotFoundError"}.get(
        status_code, "InternalServerError" if status_code >= 500 else "BadRequestError"
    )
    return {"error": {"message": message, "type": kind, "param": param, "code": status_code}}
