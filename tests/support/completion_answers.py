"""How the loopback judge turns a behaviour into its HTTP answer: a chat completion (content, logprob tokens,
usage with cached tokens) or an error in the OpenAI shape. A mixin of :class:`OpenAIServer`, whose settings
(``tie_rate``, ``rationale_chars``, ``usage_style`` ...) it reads, as tests change them on a running server."""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable, Iterator
from typing import Any, Literal

import orjson
from starlette.requests import Request
from starlette.responses import Response

from tests.support.chat_request import ChatRequest
from tests.support.judge_behaviours import (
    Behaviour,
    Generation,
    HTTPError,
    Patient,
    Perturbed,
    RawBody,
    Slow,
    Text,
    Truncated,
    Verdict,
)
from tests.support.prefix_cache import PrefixCache, cache_text
from tests.support.score_logprobs import Tokens, logprob_tokens
from tests.support.text_answers import generation_text, patient_text, perturbed_text
from tests.support.verdict_content import (
    Tag,
    confidence,
    group_verdict_pieces,
    resolve_group_scores,
    resolve_scores,
    verdict_pieces,
)

# What a Prometheus (prometheus-eval) absolute grading prompt asks for: a feedback, then "[RESULT] n".
_PROMETHEUS_MARKERS = ("[RESULT]", "Score Rubrics")


class CompletionAnswers:
    """The answer side of :class:`tests.support.loopback_server.OpenAIServer`, which sets these attributes."""

    tie_rate: float | None
    vary_confidence: bool
    prefix_cache: PrefixCache | None
    usage_style: Literal["openai", "deepseek"]
    rationale_chars: int | None
    count_tokens: Callable[[str], int]
    _ids: Iterator[int]

    async def _sleep(self, seconds: float, http_request: Request) -> None:
        # The server's own: it stops early when the client has gone or the server stops.
        raise NotImplementedError

    def _rationale(self, written: str, request: ChatRequest) -> str | None:
        """The rationale as asked: none, brief (a few characters), or full (``rationale_chars`` long when set)."""
        mode = request.rationale_mode
        if mode == "none":
            return None
        if mode == "brief":
            return written[:20]
        if self.rationale_chars and len(written) < self.rationale_chars:
            return (written * (self.rationale_chars // max(1, len(written)) + 1))[: self.rationale_chars]
        return written

    async def _answer(self, behaviour: Behaviour, request: ChatRequest, http_request: Request) -> Response:
        if isinstance(behaviour, Slow):
            await self._sleep(behaviour.delay_s, http_request)
            return await self._answer(behaviour.then, request, http_request)
        if isinstance(behaviour, HTTPError):
            return self._error(behaviour)
        if isinstance(behaviour, RawBody):
            return Response(behaviour.body, media_type="application/json")
        if isinstance(behaviour, Text):
            return self._completion(request, behaviour.content, behaviour.finish_reason, None)
        # Simulator and perturber requests (judge.simulator) get a patient's answer whatever the default verdict.
        if isinstance(behaviour, Verdict) and request.is_simulator:
            behaviour = Patient()
        elif isinstance(behaviour, Verdict) and request.is_perturber:
            behaviour = Perturbed()
        if isinstance(behaviour, Patient):
            return self._completion(request, patient_text(request, behaviour), "stop", None)
        if isinstance(behaviour, Perturbed):
            return self._completion(request, perturbed_text(request), "stop", None)
        labels = request.candidate_labels
        # A request that asks for no axes is not a judge call: a verdict makes no sense there, a draft does;
        # unless it is a Prometheus-style absolute grading prompt (benchmarks compare with prometheus-eval).
        if isinstance(behaviour, Verdict) and not labels and not request.axis_keys:
            if _PROMETHEUS_MARKERS[0] in request.prompt and _PROMETHEUS_MARKERS[1] in request.prompt:
                grade = 1 + hashlib.sha256(request.prompt.encode()).digest()[0] % 5
                return self._completion(request, f"Feedback: {behaviour.rationale} [RESULT] {grade}", "stop", None)
            behaviour = Generation()
        if isinstance(behaviour, Generation):
            return self._completion(request, generation_text(request, behaviour), behaviour.finish_reason, None)
        if labels and isinstance(behaviour, Truncated):
            group = {label: resolve_scores(behaviour.scores, request, candidate=label) for label in labels}
            content = "".join(text for text, _ in group_verdict_pieces(group, "依据量表逐项核对"))
            return self._completion(request, content[: len(content) // 2], "length", None)
        if labels and isinstance(behaviour, Verdict):
            if behaviour.delay_s:
                await self._sleep(behaviour.delay_s, http_request)
            return self._group_answer(behaviour, request, labels)
        scores = resolve_scores(behaviour.scores, request, tie_rate=self.tie_rate)
        if isinstance(behaviour, Truncated):
            content = "".join(text for text, _ in verdict_pieces(scores, "依据量表逐项核对"))
            return self._completion(request, content[: len(content) // 2], "length", None)
        if behaviour.delay_s:
            await self._sleep(behaviour.delay_s, http_request)
        pieces = verdict_pieces(scores, self._rationale(behaviour.rationale, request))
        if behaviour.style == "fenced":
            pieces = [("```json\n", None), *pieces, ("\n```\n以上是我的评分。", None)]
        elif behaviour.style == "prose":
            pieces = [("好的，评估如下：\n", None), *pieces, ("\n请参考以上评分。", None)]
        elif behaviour.style == "several":
            # A partial draft (first axis only): a complete one that disagrees would be a parse error.
            draft = "".join(text for text, _ in verdict_pieces(dict.fromkeys(list(scores)[:1], 1), "草稿"))
            pieces = [(f'{{"note": "先打草稿"}}\n草稿：{draft}\n最终结果：\n', None), *pieces]
        content = "".join(text for text, _ in pieces)
        send_logprobs = behaviour.logprobs if behaviour.logprobs is not None else request.wants_logprobs
        p_tops: dict[Tag, float] | None = None
        if self.vary_confidence:
            p_tops = {key: confidence(request, key) for key in scores}
        tagged: list[tuple[str, Tag | None]] = list(pieces)
        by_tag: dict[Tag, int] = {key: score for key, score in scores.items()}  # widens the key type to Tag
        logprobs = logprob_tokens(tagged, behaviour, by_tag, request.top_logprobs, p_tops) if send_logprobs else None
        return self._completion(request, content, "stop", logprobs)

    def _group_answer(self, verdict: Verdict, request: ChatRequest, labels: list[str]) -> Response:
        scores = resolve_group_scores(verdict, request, labels, self.tie_rate)
        pieces = group_verdict_pieces(scores, self._rationale(verdict.rationale, request))
        if verdict.style == "fenced":
            pieces = [("```json\n", None), *pieces, ("\n```", None)]
        elif verdict.style == "prose":
            pieces = [("好的，各候选评估如下：\n", None), *pieces, ("\n请参考以上评分。", None)]
        elif verdict.style == "several":
            draft = {label: dict.fromkeys(list(axes)[:1], 1) for label, axes in list(scores.items())[:1]}
            draft_text = "".join(text for text, _ in group_verdict_pieces(draft, "草稿"))
            pieces = [(f"草稿：{draft_text}\n最终结果：\n", None), *pieces]
        content = "".join(text for text, _ in pieces)
        send_logprobs = verdict.logprobs if verdict.logprobs is not None else request.wants_logprobs
        if not send_logprobs:
            return self._completion(request, content, "stop", None)
        flat: dict[Tag, int] = {(label, key): score for label, axes in scores.items() for key, score in axes.items()}
        p_tops: dict[Tag, float] | None = None
        if self.vary_confidence:
            p_tops = {tag: confidence(request, tag[1], tag[0]) for tag in flat if isinstance(tag, tuple)}
        return self._completion(
            request, content, "stop", logprob_tokens(pieces, verdict, flat, request.top_logprobs, p_tops)
        )

    def _completion(self, request: ChatRequest, content: str, finish_reason: str, logprobs: Tokens | None) -> Response:
        prompt_tokens = max(1, self.count_tokens(request.prompt))
        completion_tokens = logprobs.count if logprobs is not None else max(1, self.count_tokens(content))
        body = {
            "id": f"chatcmpl-loopback-{next(self._ids)}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": request.body.get("model", "loopback-judge"),
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": content},
                    "finish_reason": finish_reason,
                    "logprobs": {"content": orjson.Fragment(b"[" + logprobs.json + b"]")}
                    if logprobs is not None
                    else None,
                }
            ],
            "usage": self._usage(request, prompt_tokens, completion_tokens),
        }
        return Response(orjson.dumps(body), media_type="application/json")

    def _usage(self, request: ChatRequest, prompt_tokens: int, completion_tokens: int) -> dict[str, Any]:
        usage: dict[str, Any] = {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens,
        }
        if self.prefix_cache is None:
            return usage
        text = cache_text(request)
        seen = self.prefix_cache.seen_chars(text)
        cached = min(prompt_tokens, self.count_tokens(text[:seen]) if seen else 0)
        if self.usage_style == "deepseek":
            usage.update(prompt_cache_hit_tokens=cached, prompt_cache_miss_tokens=prompt_tokens - cached)
        else:
            usage["prompt_tokens_details"] = {"cached_tokens": cached}
        return usage

    @staticmethod
    def _error(error: HTTPError) -> Response:
        body = {"error": {"message": error.message, "type": error.type, "param": None, "code": error.code}}
        return Response(
            orjson.dumps(body), status_code=error.status, headers=dict(error.headers), media_type="application/json"
        )
