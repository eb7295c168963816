"""The work of a job, independent of where it runs (a queue worker, or the local CLI): lines in, outcomes out.

``filter``: each line is a sample; it is kept if every axis passes, dropped if one fails, failed if the judge could
not decide (after its retries), invalid if the line is not a sample. ``curate``: each line is a patient
conversation; the generator writes a draft, the judge scores it, a failing draft is refined with the judge's
feedback, up to ``rounds`` drafts. Every outcome carries its output record: one JSONL line, ``line`` first.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson
from pydantic import ValidationError

from judge.errors import RubricJudgeError
from judge.feedback import axis_scores, build_feedback
from judge.jobs.generator import Draft, GenerationFailed, Generator, as_completion, draft_messages, refine_messages
from judge.jobs.schemas import ItemState, JobKind, JobOptions, PromptIn
from judge.jobs.summary import Summary
from judge.jsonl import invalid_json
from judge.profiles import JudgeProfile, with_rationale
from judge.results import render_result
from judge.runtime import Runtime
from judge.samples import Message, Sample, SampleIn, normalise
from judge.scoring.batch import ScoredItem
from judge.service import check_limits
from judge.settings import Settings
from judge.verdicts import Usage
from rubrics.schema import Language, Rubric

log = logging.getLogger(__name__)

# How much of a bad line an invalid record quotes: enough to find it, not a copy of a huge line.
RAW_EXCERPT_CHARS = 200


@dataclass(frozen=True)
class JobPlan:
    """Everything needed to process the lines of one job."""

    kind: JobKind
    rubric: Rubric
    profile: JudgeProfile
    options: JobOptions
    generator: Generator | None = None
    # Makes generation cache keys specific to one job (or one input file), so two jobs never share drafts.
    scope: str = ""

    @property
    def language(self) -> Language:
        return self.options.language or self.rubric.language

    @property
    def judge_profile(self) -> JudgeProfile:
        """The profile as this job judges with it: a rationale mode in the options overrides the profile's."""
        rationale = self.options.rationale
        return with_rationale(self.profile, rationale) if isinstance(rationale, str) else self.profile

    @property
    def include_rationale(self) -> bool:
        return self.options.rationale not in (False, "none")


@dataclass
class ItemOutcome:
    line: int
    state: ItemState
    record: dict[str, Any]
    sample_hash: str | None = None
    verdict_id: str | None = None
    error: str | None = None
    _encoded: bytes | None = field(default=None, repr=False)

    def encoded(self) -> bytes:
        """The output line, without its newline."""
        if self._encoded is None:
            self._encoded = orjson.dumps(self.record, option=orjson.OPT_NON_STR_KEYS)
        return self._encoded


def summarise(outcomes: Sequence[ItemOutcome]) -> Summary:
    summary = Summary()
    for outcome in outcomes:
        summary.add(outcome.record)
    return summary


# --- validation ---------------------------------------------------------------------------------------------


def _validation_message(exc: ValidationError) -> str:
    first = exc.errors()[0]
    where = ".".join(str(p) for p in first.get("loc", ())) or "line"
    return f"{where}: {first.get('msg')}"


def _limit_message(exc: RubricJudgeError) -> str:
    where = (exc.field or "line").removeprefix("samples[0].")
    return f"{where}: {exc.message}"


def parse_line(kind: JobKind, raw: bytes, settings: Settings) -> tuple[SampleIn | PromptIn | None, str | None]:
    """The line as a sample (filter) or a conversation (curate), or the reason it is not one."""
    try:
        if kind == "filter":
            sample = SampleIn.model_validate_json(raw)
            check_limits(settings, [sample])
            return sample, None
        prompt = PromptIn.model_validate_json(raw)
        limit = settings.max_text_chars
        for i, message in enumerate(prompt.conversation()):
            if len(message.content) > limit:
                where = "prompt" if prompt.prompt is not None else f"messages[{i}].content"
                return None, f"{where}: {len(message.content)} characters; the limit is {limit}"
        return prompt, None
    except ValidationError as exc:
        if exc.errors()[0].get("type") == "json_invalid":
            return None, invalid_json(raw) or _validation_message(exc)
        return None, _validation_message(exc)
    except RubricJudgeError as exc:
        return None, _limit_message(exc)


def check_line(kind: JobKind, raw: bytes, settings: Settings) -> tuple[str | None, str | None]:
    """(the line as text to store, None) for a good line, (None, reason) for a bad one."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        return None, f"line: not UTF-8 ({exc.reason} at byte {exc.start})"
    _, error = parse_line(kind, raw, settings)
    return (None, error) if error is not None else (text, None)


def invalid_outcome(line: int, raw: bytes | None, error: str) -> ItemOutcome:
    excerpt = None
    if raw is not None:
        # PostgreSQL text holds no NUL; a bad line may have any bytes.
        excerpt = raw[: RAW_EXCERPT_CHARS * 4].decode("utf-8", "replace")[:RAW_EXCERPT_CHARS].replace("\x00", "")
    record = {"line": line, "outcome": ItemState.invalid.value, "error": error, "raw": excerpt}
    return ItemOutcome(line, ItemState.invalid, record, error=error)


# --- filter -------------------------------------------------------------------------------------------------


def _verdict_view(result: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in result.items() if k != "id"}


def _decide(result: dict[str, Any]) -> tuple[ItemState, str | None]:
    passed = result.get("passed")
    if passed is True:
        return ItemState.kept, None
    if passed is False:
        return ItemState.dropped, None
    reason = result.get("error") or result.get("reason") or "the judge could not score every axis"
    return ItemState.failed, str(reason)


async def _filter(runtime: Runtime, plan: JobPlan, items: Sequence[tuple[int, str]]) -> list[ItemOutcome]:
    outcomes: dict[int, ItemOutcome] = {}
    parsed: list[tuple[int, str, Sample]] = []
    for line, text in items:
        sample_in, error = parse_line("filter", text.encode(), runtime.settings)
        if not isinstance(sample_in, SampleIn):
            outcomes[line] = invalid_outcome(line, text.encode(), error or "line: not a sample")
            continue
        parsed.append((line, text, normalise(sample_in)))
    if parsed:
        batch = await runtime.scorer.score(plan.rubric, plan.judge_profile, [s for _, _, s in parsed])
        counted: set[str] = set()
        for (line, text, sample), item in zip(parsed, batch.items, strict=True):
            result = render_result(
                item, plan.rubric, include_rationale=plan.include_rationale, on_missing=plan.options.on_missing
            )
            state, error = _decide(result)
            record: dict[str, Any] = {
                "line": line,
                "outcome": state.value,
                "id": sample.id,
                "sample": orjson.Fragment(text.strip().encode()),
                "verdict": _verdict_view(result),
            }
            if error is not None:
                record["error"] = error
            usage = _judged_usage(item, counted)
            if usage is not None:
                record["usage"] = usage.model_dump()
            outcomes[line] = ItemOutcome(line, state, record, sample.hash, result["verdict_id"], error)
    return [outcomes[line] for line, _ in items]


def _judged_usage(item: ScoredItem, counted: set[str]) -> Usage | None:
    """What judging ``item`` cost, once per distinct sample of a batch; None for cache and store hits."""
    if item.cached or item.key in counted:
        return None
    verdict = item.verdict
    if verdict is None:
        return None
    counted.add(item.key)
    return verdict.usage


# --- curate -------------------------------------------------------------------------------------------------


def _generation_key(plan: JobPlan, line: int, messages: list[dict[str, str]]) -> str:
    assert plan.generator is not None
    body = orjson.dumps(messages_without_nonce(messages))
    digest = hashlib.sha256(f"{plan.generator.profile.hash}:{plan.scope}:{line}:".encode() + body).hexdigest()
    return f"gen:{digest}"


_NONCE = re.compile(r"(<<<(?:END_)?[A-Z_]+_)[0-9a-f]{8,}(>>>)")


def messages_without_nonce(messages: list[dict[str, str]]) -> list[dict[str, str]]:
    """Refinement prompts carry a random fence nonce: blank it so the same request maps to the same key."""
    return [{**m, "content": _NONCE.sub(r"\1\2", m["content"])} for m in messages]


async def _draft(runtime: Runtime, plan: JobPlan, line: int, messages: list[dict[str, str]]) -> Draft:
    """A generation, reused from the cache when a retried chunk asks for the same one again."""
    assert plan.generator is not None
    key = _generation_key(plan, line, messages)
    cached = (await runtime.cache.get_many([key])).get(key)
    if cached is not None:
        try:
            data = orjson.loads(cached)
            return Draft(str(data["reasoning"]), str(data["response"]), Usage())
        except (orjson.JSONDecodeError, KeyError, TypeError):
            log.warning("dropping unreadable cached draft %s", key)
    draft = await plan.generator.generate(messages)
    await runtime.cache.set_many({key: orjson.dumps({"reasoning": draft.reasoning, "response": draft.response})})
    return draft


async def _curate_one(runtime: Runtime, plan: JobPlan, line: int, prompt: PromptIn) -> ItemOutcome:
    conversation = prompt.conversation()
    rounds: list[dict[str, Any]] = []
    lineage: dict[str, Any] = {"round": None, "rounds": rounds}
    base: dict[str, Any] = {"line": line, "outcome": None, "id": prompt.id}
    messages = draft_messages(conversation, plan.language)
    last: tuple[Draft, Sample, dict[str, Any]] | None = None
    for round_no in range(1, plan.options.rounds + 1):
        try:
            draft = await _draft(runtime, plan, line, messages)
            base["generator_usage"] = Usage.model_validate(base.get("generator_usage") or {}).add(draft.usage)
        except GenerationFailed as exc:
            return _curated(
                base, ItemState.failed, conversation, prompt, last, lineage, f"round {round_no}: {exc.message}"
            )
        try:
            sample = normalise(
                SampleIn(
                    id=prompt.id,
                    messages=conversation,
                    reasoning=draft.reasoning,
                    response=draft.response,
                    reference=prompt.reference,
                )
            )
        except ValidationError as exc:
            # A draft an integrity guard refuses (e.g. turn markers): never judged on a part.
            refused = f"round {round_no}: the draft was refused: {_validation_message(exc)}"
            return _curated(base, ItemState.failed, conversation, prompt, last, lineage, refused)
        item: ScoredItem = (await runtime.scorer.score(plan.rubric, plan.judge_profile, [sample])).items[0]
        judged = _judged_usage(item, set())
        if judged is not None:
            base["usage"] = Usage.model_validate(base.get("usage") or {}).add(judged)
        result = render_result(
            item, plan.rubric, include_rationale=plan.include_rationale, on_missing=plan.options.on_missing
        )
        state, reason = _decide(result)
        rounds.append(
            {
                "round": round_no,
                "sample_hash": sample.hash,
                "verdict_id": result["verdict_id"],
                "passed": result["passed"],
                "failing_axes": result["failing_axes"],
                "scores": {key: axis["score"] for key, axis in result["axes"].items()},
            }
        )
        last = (draft, sample, result)
        if state is ItemState.kept:
            lineage["round"] = round_no
            return _curated(base, ItemState.kept, conversation, prompt, last, lineage, None)
        if state is ItemState.failed:
            return _curated(base, ItemState.failed, conversation, prompt, last, lineage, f"round {round_no}: {reason}")
        if round_no == plan.options.rounds:
            break
        assert item.verdict is not None
        feedback = build_feedback(plan.rubric, axis_scores(item.verdict), language=plan.language)
        messages = refine_messages(conversation, draft.reasoning, draft.response, feedback.instructions, plan.language)
    return _curated(base, ItemState.dropped, conversation, prompt, last, lineage, None)


def _curated(
    base: dict[str, Any],
    state: ItemState,
    conversation: list[Message],
    prompt: PromptIn,
    last: tuple[Draft, Sample, dict[str, Any]] | None,
    lineage: dict[str, Any],
    error: str | None,
) -> ItemOutcome:
    """A curation record: SFT-ready ``messages`` (the CoT in a ``<think>`` block), the lineage, the last verdict."""
    record = {**base, "outcome": state.value}
    for name in ("usage", "generator_usage"):
        if isinstance(record.get(name), Usage):
            record[name] = record[name].model_dump()
    sample_hash = verdict_id = None
    if last is not None:
        draft, sample, result = last
        turns = [{"role": m.role, "content": m.content} for m in conversation]
        turns.append({"role": "assistant", "content": as_completion(draft.reasoning, draft.response)})
        record["messages"] = turns
        sample_hash, verdict_id = sample.hash, result["verdict_id"]
    if prompt.reference is not None:
        record["reference"] = prompt.reference
    if prompt.metadata is not None:
        record["metadata"] = prompt.metadata
    record["lineage"] = lineage
    if last is not None:
        record["verdict"] = _verdict_view(last[2])
    if error is not None:
        record["error"] = error
    return ItemOutcome(int(base["line"]), state, record, sample_hash, verdict_id, error)


async def _curate(runtime: Runtime, plan: JobPlan, items: Sequence[tuple[int, str]]) -> list[ItemOutcome]:
    async def one(line: int, text: str) -> ItemOutcome:
        prompt, error = parse_line("curate", text.encode(), runtime.settings)
        if not isinstance(prompt, PromptIn):
            return invalid_outcome(line, text.encode(), error or "line: not a conversation")
        return await _curate_one(runtime, plan, line, prompt)

    return list(await asyncio.gather(*(one(line, text) for line, text in items)))


async def process_items(runtime: Runtime, plan: JobPlan, items: Sequence[tuple[int, str]]) -> list[ItemOutcome]:
    """Outcomes for ``(line, text)`` items, in the same order."""
    if plan.kind == "filter":
        return await _filter(runtime, plan, items)
    return await _curate(runtime, plan, items)
