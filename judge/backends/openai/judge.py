"""The LLM judge: any OpenAI-compatible chat-completions server (OpenAI, vLLM, SGLang, …)."""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

import openai
import orjson
from openai.types.chat import (
    ChatCompletion,
    ChatCompletionAssistantMessageParam,
    ChatCompletionMessageParam,
    ChatCompletionSystemMessageParam,
    ChatCompletionUserMessageParam,
)
from openai.types.chat.chat_completion import Choice
from openai.types.completion_usage import CompletionUsage

from judge.backends.openai.answer_format import (
    group_repair_instruction,
    repair_instruction,
)
from judge.backends.openai.call_failures import CallFailed, classify, judge_completion
from judge.backends.openai.client import CompletionPoster, api_key, pooled_client
from judge.backends.openai.fences import neutralise
from judge.backends.openai.group_answer import parse_group_scores
from judge.backends.openai.group_prompts import RenderedGroupPrompt, render_group_prompts
from judge.backends.openai.hedge import HedgePolicy, hedged
from judge.backends.openai.logprobs import score_distributions
from judge.backends.openai.parse_results import ParseResult
from judge.backends.openai.prompts import RenderedPrompt, render_prompts
from judge.backends.openai.request_body import RequestBodies
from judge.backends.openai.retry import retried
from judge.backends.openai.single_answer import parse_scores
from judge.backends.openai.usage import cached_prompt_tokens, share_usage
from judge.backends.openai.verdict import quoted_objects
from judge.errors import JudgeUnavailable
from judge.metrics import (
    AXIS_STATUS,
    JUDGE_CALL_LATENCY,
    JUDGE_COST,
    JUDGE_HEDGES,
    JUDGE_TOKENS,
    PARSE_FAILURES,
    REPAIRS,
)
from judge.profiles import JudgeProfile
from judge.samples import Sample
from judge.verdicts import AxisResult, AxisStatus, JudgeOutcome, Usage
from rubrics.schema import Rubric

logger = logging.getLogger(__name__)


@dataclass
class _PromptOutcome:
    axes: dict[str, AxisResult]
    usage: Usage
    errors: list[str] = field(default_factory=list)


# The one label of a single sample's results in :meth:`OpenAIJudge._ask`.
_SINGLE = ""


@dataclass
class _Answer:
    """One judge answer read: results per label and axis, the (label, axis) pairs left unscored, what went wrong."""

    results: dict[str, dict[str, AxisResult]]
    failed: list[tuple[str, str]]
    summary: str
    # Answer-level problem (no object of the expected shape).
    error: str | None

    @property
    def ok(self) -> bool:
        return not self.failed


class OpenAIJudge:
    """Scores samples with an LLM behind an OpenAI-compatible chat-completions API.

    Joint mode asks for every axis in one call, isolated mode makes one call per axis (concurrently);
    ``score`` judges one sample (as joint for ``group`` profiles); ``score_group`` judges all responses to one
    prompt in one call (two for a rubric with response-only layers), which the Scorer uses for ``group``
    profiles. A rubric's response-only axes are always judged in calls that show no CoT. ``usage.calls`` counts
    requests made (first asks and repairs), ``usage.retries`` the extra attempts after transient errors.
    """

    def __init__(self, profile: JudgeProfile, client: openai.AsyncOpenAI | None = None) -> None:
        if not profile.model:
            raise JudgeUnavailable(f"judge profile {profile.name!r} names no model", field="model")
        self.profile = profile
        self._model = profile.model
        self._owns_client = client is None
        if client is None:
            client = pooled_client(
                base_url=profile.base_url,
                api_key=api_key(profile),
                timeout_s=profile.timeout_s,
                concurrency=profile.concurrency,
            )
        self._client = client
        # The timeout per request only for an injected client, so that it keeps to the profile's; our own client
        # has it (and the SDK's default JSON content type) already.
        self._poster = CompletionPoster(client, timeout_s=None if self._owns_client else profile.timeout_s)
        self._semaphore = asyncio.Semaphore(profile.concurrency)
        self._hedge = HedgePolicy.for_profile(profile)
        self._bodies = RequestBodies(profile, profile.model)
        # Prometheus children resolved once (a labels() lookup per call and kind adds up at hundreds of calls/s).
        self._token_counters = {kind: JUDGE_TOKENS.labels(judge=profile.name, kind=kind) for kind in _TOKEN_KINDS}
        self._status_counters = {
            status: AXIS_STATUS.labels(judge=profile.name, status=status.value) for status in AxisStatus
        }
        # The cost counter with its prices, when the profile has prices.
        self._cost = (
            (profile.prices, JUDGE_COST.labels(judge=profile.name, currency=profile.prices.currency))
            if profile.prices is not None
            else None
        )
        self._latencies = {
            outcome: JUDGE_CALL_LATENCY.labels(judge=profile.name, outcome=outcome) for outcome in _CALL_OUTCOMES
        }

    async def aclose(self) -> None:
        if self._owns_client:
            await self._client.close()

    async def score(self, sample: Sample, rubric: Rubric) -> JudgeOutcome:
        prompts = render_prompts(sample, rubric, self.profile)
        if len(prompts) == 1:
            outcomes = [await self._judge(prompts[0])]
        else:
            outcomes = list(await asyncio.gather(*(self._judge(prompt) for prompt in prompts)))
        merged: dict[str, AxisResult] = {}
        usage = Usage()
        errors: list[str] = []
        for outcome in outcomes:
            merged.update(outcome.axes)
            usage = usage.add(outcome.usage)
            errors += [e for e in outcome.errors if e not in errors]
        axes = {key: merged[key] for key in rubric.axis_keys}
        self._count_statuses(axes)
        return JudgeOutcome(axes=axes, usage=usage, error="; ".join(errors) or None)

    async def _judge(self, prompt: RenderedPrompt) -> _PromptOutcome:
        """One prompt: ask, parse, repair once if needed. Failures become axis statuses."""
        keys = list(prompt.axis_keys)
        offsets = self.profile.logprobs

        def read(content: str, choice: Choice, quoted: frozenset[bytes]) -> _Answer:
            parsed = parse_scores(content, keys, offsets=offsets, quoted=quoted)
            failed = [(_SINGLE, key) for key in parsed.failed]
            results = {_SINGLE: self._axis_results(parsed, content, choice)}
            return _Answer(results, failed, parsed.error_summary(), parsed.error)

        def instruction(summary: str) -> str:
            return repair_instruction(summary, keys, prompt.language, prompt.rationale)

        results, tally, errors = await self._ask(prompt, (_SINGLE,), None, read, instruction)
        return _PromptOutcome(results[_SINGLE], tally, errors)

    async def score_group(self, samples: list[Sample], rubric: Rubric) -> list[JudgeOutcome]:
        """Judge ``samples`` (responses to one conversation) together; outcomes in the given order.

        The caller chooses the order (labels A, B, … follow it). A rubric with response-only layers takes two
        calls, concurrently (:func:`render_group_prompts`): the CoT's axes with the CoTs shown, the response-only
        axes without them; each candidate's axes are merged from both, and a call that fails leaves its own axes
        unscored (statuses), never the other call's. The calls' usage adds up and is shared out so that the
        outcomes add up to it: the first carries the call count, the retries and the token remainders.
        """
        if not samples:
            return []
        prompts = render_group_prompts(samples, rubric, self.profile)
        if len(prompts) == 1:
            judged = [await self._judge_group(prompts[0])]
        else:
            judged = list(await asyncio.gather(*(self._judge_group(prompt) for prompt in prompts)))
        labels = prompts[0].labels
        by_label: dict[str, dict[str, AxisResult]] = {label: {} for label in labels}
        usage = Usage()
        for results, tally in judged:
            for label in labels:
                by_label[label].update(results[label])
            usage = usage.add(tally)
        outcomes: list[JudgeOutcome] = []
        for label, share in zip(labels, share_usage(usage, len(samples)), strict=True):
            axes = {key: by_label[label][key] for key in rubric.axis_keys}
            self._count_statuses(axes)
            errors = list(dict.fromkeys(a.error for a in axes.values() if a.status is not AxisStatus.ok and a.error))
            outcomes.append(JudgeOutcome(axes=axes, usage=share, error="; ".join(errors) or None))
        return outcomes

    async def _judge_group(self, prompt: RenderedGroupPrompt) -> tuple[dict[str, dict[str, AxisResult]], Usage]:
        """One group prompt: ask, parse per candidate, repair once if needed. Failures become axis statuses."""
        keys, labels = list(prompt.axis_keys), list(prompt.labels)
        offsets = self.profile.logprobs

        def read(content: str, choice: Choice, quoted: frozenset[bytes]) -> _Answer:
            parsed = parse_group_scores(content, labels, keys, offsets=offsets, quoted=quoted)
            results = {label: self._axis_results(parsed.candidates[label], content, choice) for label in labels}
            return _Answer(results, parsed.failed, parsed.error_summary(), parsed.error)

        def instruction(summary: str) -> str:
            return group_repair_instruction(summary, labels, keys, prompt.language, prompt.rationale)

        results, tally, _ = await self._ask(prompt, prompt.labels, labels, read, instruction)
        return results, tally

    async def _ask(
        self,
        prompt: RenderedPrompt | RenderedGroupPrompt,
        labels: tuple[str, ...],
        format_labels: list[str] | None,
        read: Callable[[str, Choice, frozenset[bytes]], _Answer],
        instruction: Callable[[str], str],
    ) -> tuple[dict[str, dict[str, AxisResult]], Usage, list[str]]:
        """Ask, read, and repair once if the answer left axes unscored: the path of single and group prompts.

        Results per label (one, :data:`_SINGLE`, for a single sample) and axis; failures become statuses. The
        messages say what went wrong, for a single sample's ``error``. ``format_labels``: the candidate labels the
        output format names (None for a single sample).
        """
        keys = list(prompt.axis_keys)
        tally = Usage()
        messages: list[ChatCompletionMessageParam] = [
            ChatCompletionSystemMessageParam(role="system", content=prompt.system),
            ChatCompletionUserMessageParam(role="user", content=prompt.user),
        ]

        def every(status: AxisStatus, message: str) -> dict[str, dict[str, AxisResult]]:
            return {label: {key: AxisResult.failed(status, message) for key in keys} for label in labels}

        try:
            choice = await self._complete(
                messages, keys, tally, labels=format_labels, messages_json=self._bodies.messages_json(prompt)
            )
        except CallFailed as failure:
            return every(failure.status, failure.message), tally, [failure.message]
        content = choice.message.content or ""
        if choice.finish_reason == "length":
            message = self._truncated_message()
            return every(AxisStatus.truncated, message), tally, [message]

        quoted = _quoted(prompt)
        first = read(content, choice, quoted)
        results = first.results
        if first.ok:
            return results, tally, []
        PARSE_FAILURES.labels(judge=self.profile.name).inc()
        if not self.profile.repair:
            return results, tally, [first.summary]

        messages += [
            ChatCompletionAssistantMessageParam(role="assistant", content=content),
            ChatCompletionUserMessageParam(role="user", content=instruction(first.summary)),
        ]
        failed = first.failed
        try:
            repair_choice = await self._complete(messages, keys, tally, labels=format_labels)
        except CallFailed as failure:
            REPAIRS.labels(judge=self.profile.name, outcome="failed").inc()
            message = f"{first.summary}; repair call failed: {failure.message}"
            for label, key in failed:
                results[label][key] = AxisResult.failed(AxisStatus.parse_error, message, results[label][key].rationale)
            return results, tally, [message]
        repair_content = repair_choice.message.content or ""
        if repair_choice.finish_reason == "length":
            REPAIRS.labels(judge=self.profile.name, outcome="failed").inc()
            message = self._truncated_message()
            for label, key in failed:
                results[label][key] = AxisResult.failed(AxisStatus.truncated, message)
            return results, tally, [message]

        repaired = read(repair_content, repair_choice, quoted)
        # A complete repaired answer is the verdict, whole: a partial first answer (perhaps a quote the judge
        # half-copied) must not survive beside it. Otherwise the first answer's scores stand for the axes the
        # repair could not give.
        replaced = [(label, key) for label in labels for key in keys] if repaired.ok else failed
        for label, key in replaced:
            results[label][key] = repaired.results[label][key]
        still_failed = [(label, key) for label, key in failed if results[label][key].status is not AxisStatus.ok]
        REPAIRS.labels(judge=self.profile.name, outcome="failed" if still_failed else "ok").inc()
        if not still_failed:
            return results, tally, []
        PARSE_FAILURES.labels(judge=self.profile.name).inc()
        summary = repaired.error or "; ".join(str(results[label][key].error) for label, key in still_failed)
        return results, tally, [summary]

    def _truncated_message(self) -> str:
        return f"judge answer cut at max_tokens={self.profile.max_tokens} (finish_reason=length)"

    def _axis_results(self, parsed: ParseResult, content: str, choice: Choice) -> dict[str, AxisResult]:
        distributions = {}
        if self.profile.logprobs:
            tokens = choice.logprobs.content if choice.logprobs is not None else None
            distributions = score_distributions(content, tokens, parsed)
        results: dict[str, AxisResult] = {}
        for key, axis in parsed.axes.items():
            if axis.score is None:
                results[key] = AxisResult.failed(AxisStatus.parse_error, axis.error or "unparsable", axis.rationale)
                continue
            found = distributions.get(key)
            if not self.profile.logprobs:
                results[key] = AxisResult(score=axis.score, status=AxisStatus.ok, rationale=axis.rationale)
            elif found is None:
                results[key] = AxisResult(
                    score=axis.score, status=AxisStatus.ok, rationale=axis.rationale, score_method="no_logprobs"
                )
            else:
                results[key] = AxisResult(
                    score=axis.score,
                    expected=found.expected,
                    mass=found.mass,
                    probabilities=found.normalised(),
                    status=AxisStatus.ok,
                    rationale=axis.rationale,
                    score_method="logprobs",
                )
        return results

    async def _complete(
        self,
        messages: list[ChatCompletionMessageParam],
        keys: list[str],
        tally: Usage,
        *,
        labels: list[str] | None = None,
        messages_json: bytes | None = None,
    ) -> Choice:
        """One chat completion with retries; raises ``CallFailed`` with the final failure classified.

        ``labels``: a group call's candidate labels (its output format names them). ``messages_json``:
        ``messages`` already serialised (:meth:`_messages_json`).
        """
        profile = self.profile

        def count_retry(_: BaseException) -> None:
            tally.retries += 1

        serialised = messages_json if messages_json is not None else orjson.dumps(messages)
        payload = self._bodies.body(serialised, keys, labels)

        async def send(went_out: asyncio.Event | None) -> ChatCompletion:
            async with self._semaphore:
                if went_out is not None:
                    went_out.set()
                sent = time.perf_counter()
                raw = await self._poster.post(payload)
            if self._hedge is not None:
                self._hedge.observe(time.perf_counter() - sent)
            return judge_completion(raw.content)

        hedge = self._hedge

        async def attempt() -> ChatCompletion:
            if hedge is None:
                return await send(None)
            sent_hedges = 0

            def count_hedge() -> None:
                nonlocal sent_hedges
                sent_hedges += 1
                tally.hedges += 1

            # The metric counts hedge calls (as usage.hedges does): at most one of an attempt's hedges wins.
            hedges = JUDGE_HEDGES.labels
            try:
                completion, hedge_won = await hedged(send, hedge.threshold_s, count_hedge)
            except Exception:
                if sent_hedges:
                    hedges(judge=profile.name, outcome="failed").inc(sent_hedges)
                raise
            if sent_hedges:
                if hedge_won:
                    hedges(judge=profile.name, outcome="won").inc()
                if sent_hedges > hedge_won:
                    hedges(judge=profile.name, outcome="lost").inc(sent_hedges - hedge_won)
            return completion

        tally.calls += 1
        started = time.perf_counter()
        try:
            completion: ChatCompletion = await retried(attempt, profile, on_retry=count_retry)
        except Exception as exc:  # a judge-side failure must become a status, never an exception
            failure = classify(exc, judge=profile.name, timeout_s=profile.timeout_s, base_url=self._client.base_url)
            self._observe(started, "timeout" if failure.status is AxisStatus.timeout else "error")
            raise failure from exc
        if completion.usage is not None:
            self._count_tokens(completion.usage, tally)
        if not completion.choices:
            self._observe(started, "error")
            raise CallFailed(AxisStatus.judge_error, "judge answered with no choices")
        choice = completion.choices[0]
        self._observe(started, "truncated" if choice.finish_reason == "length" else "ok")
        return choice

    def _count_tokens(self, usage: CompletionUsage, tally: Usage) -> None:
        """Add one answer's tokens to the tally and to the judge's Prometheus counters."""
        cached = cached_prompt_tokens(usage)
        tally.prompt_tokens += usage.prompt_tokens
        tally.cached_tokens += cached
        tally.completion_tokens += usage.completion_tokens
        counters = self._token_counters
        counters["prompt"].inc(usage.prompt_tokens)
        if cached:
            counters["cached"].inc(cached)
        counters["completion"].inc(usage.completion_tokens)
        if self._cost is not None:
            prices, counter = self._cost
            counter.inc(prices.amount(usage.prompt_tokens, cached, usage.completion_tokens))

    def _observe(self, started: float, outcome: str) -> None:
        self._latencies[outcome].observe(time.perf_counter() - started)

    def _count_statuses(self, axes: dict[str, AxisResult]) -> None:
        for status, count in Counter(result.status for result in axes.values()).items():
            self._status_counters[status].inc(count)


def _quoted(prompt: RenderedPrompt | RenderedGroupPrompt) -> frozenset[bytes]:
    """JSON objects written inside the prompt's fences (judged texts, conversation): never the verdict.

    Read from the texts the renderer fenced (as the judge sees them, neutralised), not by searching the ~9 KB
    prompt for fences again: that search was ~3 % of the API's CPU per judged sample.
    """
    return quoted_objects([neutralise(text) for text in prompt.fenced if "{" in text])


_TOKEN_KINDS = ("prompt", "cached", "completion")
_CALL_OUTCOMES = ("ok", "truncated", "timeout", "error")
